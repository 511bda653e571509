import { css } from "lit";

/**
 * What a result screen's colour says, read before its words are: each at
 * least 7:1 contrast with its text (WCAG AAA). Check-ins and payments share
 * them, so approved looks like welcome and declined like refused.
 */
export const tones = {
  /** Done: checked in, paid, topped up. */
  done: css`
    background: #0a5c2b;
    color: #fff;
  `,
  /** Nothing to do: already checked in today. */
  noted: css`
    background: #0b3f73;
    color: #fff;
  `,
  /** A card nobody knows. */
  unknown: css`
    background: #ffc107;
    color: #000;
  `,
  /** Refused or declined. */
  refused: css`
    background: #8e0015;
    color: #fff;
  `,
};

export type Tone = keyof typeof tones;

export type MessageSize = "l" | "m" | "s";

/** The length class of a result's message (reflected as `size`), so long text gets a smaller heading. */
export function messageSize(message: string): MessageSize {
  return message.length <= 22 ? "l" : message.length <= 40 ? "m" : "s";
}

/**
 * The heading of a result screen (check-in or payment): large and heavy,
 * wrapping anywhere rather than overflowing, and stepping down by `size` so
 * longer names and reasons still fit a 7" screen in two or three lines. Each
 * screen sets the three sizes as `--message-l`, `--message-m`, `--message-s`.
 */
export const messageStyles = css`
  h1 {
    margin: 0;
    font-size: var(--message-l);
    line-height: 1.05;
    font-weight: 800;
    overflow-wrap: anywhere;
    text-wrap: balance;
  }
  :host([size="m"]) h1 {
    font-size: var(--message-m);
  }
  :host([size="s"]) h1 {
    font-size: var(--message-s);
  }
`;
