import type { ReceiptNotice } from "@paylane/protocol/kiosk-api";
import { type CSSResultGroup, css, html, LitElement, nothing, type SVGTemplateResult, type TemplateResult } from "lit";
import { property } from "lit/decorators.js";
import { receiptStyles, renderReceipt } from "./receipt.ts";
import { type MessageSize, messageSize, messageStyles, type Tone, tones } from "./result-styles.ts";
import { centredColumn } from "./touch-styles.ts";

/** What a result screen shows: every result has a tone, an icon and a heading; the rest is its own. */
export interface ResultView {
  tone: Tone;
  icon: SVGTemplateResult;
  /** The heading, the sentence the member reads first. */
  message: string;
  /** How a screen reader announces it: `status` (politely) or `alert`; none for a check-in. */
  role?: "status" | "alert";
  /** What follows the heading: a hint, the amount and balance. */
  details?: TemplateResult | undefined;
  /** The transaction whose receipt this screen tells about (none: no receipt line). */
  receiptId?: string | undefined;
}

/**
 * The one layout of a result, a check-in's or a payment's: the screen in the
 * outcome's tone, its icon, the heading sized to fit, the details, then what
 * became of the receipt. A subclass says only what to show (`view`) and sets
 * the sizes as custom properties: `--gap`, `--icon`, `--icon-s` (long
 * headings), `--text`, `--receipt-qr` and the heading's `--message-l/m/s`.
 */
export abstract class ResultScreenBase<R> extends LitElement {
  static override styles: CSSResultGroup = css`
    :host {
      display: block;
      height: 100%;
    }
    :host([tone="done"]) {
      ${tones.done}
    }
    :host([tone="noted"]) {
      ${tones.noted}
    }
    :host([tone="unknown"]) {
      ${tones.unknown}
    }
    :host([tone="refused"]) {
      ${tones.refused}
    }
    .body {
      ${centredColumn}
      gap: var(--gap);
    }
    svg {
      width: var(--icon);
      height: auto;
      flex: none;
    }
    :host([size="s"]) svg {
      width: var(--icon-s, var(--icon));
    }
    ${messageStyles}
    p {
      margin: 0;
      font-size: var(--text);
      font-weight: 600;
    }
    ${receiptStyles}
    .receipt img {
      width: var(--receipt-qr, clamp(6rem, 22vh, 12rem));
    }
  `;

  @property({ attribute: false }) result: R | undefined;

  /** This result's receipt, once the printer has answered; a QR code is shown when nothing was printed. */
  @property({ attribute: false }) receipt: ReceiptNotice | undefined;

  /** Reflected so the stylesheet can colour the whole screen. */
  @property({ reflect: true }) tone: Tone | undefined;

  /** Reflected: the heading's length class, so long text gets a smaller size. */
  @property({ reflect: true }) size: MessageSize = "l";

  private shown: ResultView | undefined;

  /** What to show for this result. */
  protected abstract view(result: R): ResultView;

  override willUpdate(): void {
    this.shown = this.result === undefined ? undefined : this.view(this.result);
    this.tone = this.shown?.tone;
    this.size = messageSize(this.shown?.message ?? "");
  }

  override render() {
    const v = this.shown;
    if (!v) return nothing;
    return html`<div class="body" role=${v.role ?? nothing}>
      ${v.icon}
      <h1 data-testid="message">${v.message}</h1>
      ${v.details ?? nothing} ${renderReceipt(this.receipt, v.receiptId)}
    </div>`;
  }
}
