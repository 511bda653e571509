import type { TapResult } from "@paylane/protocol/kiosk-api";
import { css, html, svg } from "lit";
import { customElement } from "lit/decorators.js";
import { cross, resultIcon, tick } from "./icons.ts";
import { ResultScreenBase, type ResultView } from "./result-view.ts";

const question = resultIcon(svg`<path d="M24 25a8 8 0 1 1 11 7.5c-2 1-3 2.5-3 4.5v1" /><path d="M32 46v.5" />`);

const hint = (text: string) => html`<p data-testid="hint">${text}</p>`;

/** The answer to one tap, coloured by outcome so it reads before the words do. */
@customElement("paylane-result-screen")
export class CheckinResultScreen extends ResultScreenBase<TapResult> {
  static override styles = [
    ResultScreenBase.styles,
    css`
      :host {
        --gap: clamp(0.5rem, 3vh, 2rem);
        --icon: clamp(4rem, 24vh, 11rem);
        --icon-s: clamp(3rem, 15vh, 7rem);
        --text: clamp(1.25rem, 4vw, 3rem);
        /* Longer names and reasons step down so they still fit a 7" screen in two or three lines. */
        --message-l: clamp(2.5rem, 8.5vw, 7rem);
        --message-m: clamp(2rem, 6vw, 5rem);
        --message-s: clamp(1.5rem, 4.5vw, 3.75rem);
      }
    `,
  ];

  /**
   * What to say for each outcome. Fixed sentences are the UI's to word (and one
   * day translate); a refusal's reason only the daemon knows, so it shows the
   * daemon's message.
   */
  protected view(result: TapResult): ResultView {
    const receiptId = result.id;
    switch (result.outcome) {
      case "welcome":
        return {
          tone: "done",
          icon: tick,
          message: result.name ? `Welcome, ${result.name}` : result.message,
          receiptId,
        };
      case "already": {
        const details = result.name ? hint(result.name) : undefined;
        return { tone: "noted", icon: tick, message: "Already checked in today", details, receiptId };
      }
      case "unknown":
        return {
          tone: "unknown",
          icon: question,
          message: "Card not recognised",
          details: hint("Please ask at the desk"),
          receiptId,
        };
      case "refused":
        return {
          tone: "refused",
          icon: cross,
          message: result.message,
          details: hint("Please ask at the desk"),
          receiptId,
        };
    }
  }
}

declare global {
  interface HTMLElementTagNameMap {
    "paylane-result-screen": CheckinResultScreen;
  }
}
