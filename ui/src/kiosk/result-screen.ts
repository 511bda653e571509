import type { ReceiptNotice, TapOutcome, TapResult } from "@paylane/protocol/kiosk-api";
import { css, html, LitElement, nothing, type SVGTemplateResult, svg } from "lit";
import { customElement, property } from "lit/decorators.js";
import { cross, resultIcon, tick } from "./icons.ts";
import { receiptStyles, renderReceipt } from "./receipt.ts";
import { type MessageSize, messageSize, messageStyles, tones } from "./result-styles.ts";
import { centredColumn } from "./touch-styles.ts";

interface View {
  icon: SVGTemplateResult;
  message: string;
  hint?: string;
}

const question = resultIcon(svg`<path d="M24 25a8 8 0 1 1 11 7.5c-2 1-3 2.5-3 4.5v1" /><path d="M32 46v.5" />`);

/**
 * What to say for each outcome. Fixed sentences are the UI's to word (and one
 * day translate); a refusal's reason only the daemon knows, so it shows the
 * daemon's message.
 */
function view(result: TapResult): View {
  switch (result.outcome) {
    case "welcome":
      return { icon: tick, message: result.name ? `Welcome, ${result.name}` : result.message };
    case "already":
      return { icon: tick, message: "Already checked in today", ...(result.name ? { hint: result.name } : {}) };
    case "unknown":
      return { icon: question, message: "Card not recognised", hint: "Please ask at the desk" };
    case "refused":
      return { icon: cross, message: result.message, hint: "Please ask at the desk" };
  }
}

/** The answer to one tap, coloured by outcome so it reads before the words do. */
@customElement("paylane-result-screen")
export class ResultScreen extends LitElement {
  static override styles = css`
    :host {
      ${centredColumn}
      gap: clamp(0.5rem, 3vh, 2rem);
      /* Longer names and reasons step down so they still fit a 7" screen in two or three lines. */
      --message-l: clamp(2.5rem, 8.5vw, 7rem);
      --message-m: clamp(2rem, 6vw, 5rem);
      --message-s: clamp(1.5rem, 4.5vw, 3.75rem);
    }
    :host([outcome="welcome"]) {
      ${tones.done}
    }
    :host([outcome="already"]) {
      ${tones.noted}
    }
    :host([outcome="unknown"]) {
      ${tones.unknown}
    }
    :host([outcome="refused"]) {
      ${tones.refused}
    }
    svg {
      width: clamp(4rem, 24vh, 11rem);
      height: auto;
      flex: none;
    }
    ${messageStyles}
    :host([size="s"]) svg {
      width: clamp(3rem, 15vh, 7rem);
    }
    p {
      margin: 0;
      font-size: clamp(1.25rem, 4vw, 3rem);
      font-weight: 600;
    }
    ${receiptStyles}
  `;

  @property({ attribute: false }) result: TapResult | undefined;

  /** This result's receipt, once the printer has answered; a QR code is shown when nothing was printed. */
  @property({ attribute: false }) receipt: ReceiptNotice | undefined;

  /** Reflected so the stylesheet can colour the whole screen. */
  @property({ reflect: true }) outcome: TapOutcome | undefined;

  /** Reflected: the message's length class, so long text gets a smaller size. */
  @property({ reflect: true }) size: MessageSize = "l";

  private view: View | undefined;

  override willUpdate(): void {
    this.outcome = this.result?.outcome;
    this.view = this.result && view(this.result);
    this.size = messageSize(this.view?.message ?? "");
  }

  override render() {
    const v = this.view;
    if (!v) return nothing;
    return html`${v.icon}
      <h1 data-testid="message">${v.message}</h1>
      ${v.hint ? html`<p data-testid="hint">${v.hint}</p>` : nothing}
      ${renderReceipt(this.receipt, this.result?.id)}`;
  }
}

declare global {
  interface HTMLElementTagNameMap {
    "paylane-result-screen": ResultScreen;
  }
}
