import { css, html, LitElement, nothing, type SVGTemplateResult, svg } from "lit";
import { customElement, property } from "lit/decorators.js";
import type { PaymentResult, ReceiptNotice } from "../kiosk-api.ts";
import { formatMoney } from "./money.ts";
import { receiptStyles, renderReceipt } from "./receipt.ts";

const icon = (path: SVGTemplateResult) =>
  svg`<svg viewBox="0 0 64 64" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="6" stroke-linecap="round" stroke-linejoin="round">
    <circle cx="32" cy="32" r="28" stroke-width="4" />${path}</svg>`;

const tick = icon(svg`<path d="M19 33l9 9 17-19" />`);
const cross = icon(svg`<path d="M22 22l20 20M42 22L22 42" />`);

/**
 * What a decline means for the member, in the UI's words. The daemon's
 * message (shown above it) has the particulars, such as the balance or the
 * offline limit.
 */
function declineHint(result: PaymentResult): string {
  const topup = result.kind === "topup";
  switch (result.reason) {
    case "insufficient-funds":
      return "Your wallet balance is too low. Top up, or choose a smaller amount.";
    case "offline-limit":
      return "This kiosk is offline and can only take small payments. Try a smaller amount or pay at the desk.";
    case "wallet-blocked":
      return "This wallet cannot pay right now. Please ask at the desk.";
    case "unknown-card":
    case "unknown-member":
      return "Card not recognised. Please ask at the desk.";
    case "member-revoked":
      return "This membership cannot pay. Please ask at the desk.";
    case "terminal-declined":
      return "The card terminal declined the payment. Nothing was added to your wallet.";
    default:
      return topup
        ? "Nothing was added to your wallet. Please ask at the desk."
        : "Nothing was charged. Please ask at the desk.";
  }
}

/** Approved or declined: the outcome's colour, the daemon's sentence, the amount and the new balance. */
@customElement("paylane-payment-result-screen")
export class PaymentResultScreen extends LitElement {
  static override styles = css`
    :host {
      display: block;
      height: 100%;
    }
    /* The check-in screens' colours: at least 7:1 contrast with white (WCAG AAA). */
    :host([outcome="approved"]) {
      background: #0a5c2b;
      color: #fff;
    }
    :host([outcome="declined"]) {
      background: #8e0015;
      color: #fff;
    }
    .body {
      display: flex;
      flex-direction: column;
      align-items: center;
      /* safe: an overlong message pushes down, never off the top. */
      justify-content: safe center;
      gap: clamp(0.4rem, 2.5vh, 1.5rem);
      height: 100%;
      padding: 0 5vw;
      box-sizing: border-box;
      text-align: center;
    }
    svg {
      width: clamp(3rem, 16vh, 8rem);
      height: auto;
      flex: none;
    }
    h1 {
      margin: 0;
      font-size: clamp(2.25rem, 7vw, 5.5rem);
      line-height: 1.05;
      font-weight: 800;
      overflow-wrap: anywhere;
      text-wrap: balance;
    }
    :host([size="m"]) h1 {
      font-size: clamp(1.75rem, 5vw, 4rem);
    }
    :host([size="s"]) h1 {
      font-size: clamp(1.4rem, 4vw, 3rem);
    }
    p {
      margin: 0;
      font-size: clamp(1.1rem, 3.2vw, 2.25rem);
      font-weight: 600;
    }
    .details {
      display: flex;
      flex-wrap: wrap;
      justify-content: center;
      gap: 0.25rem 1.5rem;
    }
    .reason {
      font-size: clamp(1rem, 2.8vw, 2rem);
      font-weight: 500;
    }
    .balance {
      font-weight: 800;
    }
    .note {
      font-size: clamp(1rem, 2.5vw, 1.5rem);
      font-weight: 400;
    }
    ${receiptStyles}
    .receipt img {
      width: clamp(5rem, 20vh, 10rem);
    }
  `;

  @property({ attribute: false }) result: PaymentResult | undefined;
  /** This result's receipt, once the printer has answered. */
  @property({ attribute: false }) receipt: ReceiptNotice | undefined;
  @property({ reflect: true }) outcome: PaymentResult["outcome"] | undefined;
  @property({ reflect: true }) size: "l" | "m" | "s" = "l";

  override willUpdate(): void {
    this.outcome = this.result?.outcome;
    const length = this.result?.message.length ?? 0;
    this.size = length <= 22 ? "l" : length <= 40 ? "m" : "s";
  }

  override render() {
    const r = this.result;
    if (!r) return nothing;
    const money = (amount: number) => formatMoney(amount, r.currency);
    const what = html`<span data-testid="amount">${money(r.amount)}</span>${
      r.itemName ? html` · <span data-testid="item">${r.itemName}</span>` : nothing
    }`;
    if (r.outcome === "approved") {
      const offline = r.authorization === "offline";
      return html`<div class="body" role="status">
        ${tick}
        <h1 data-testid="message">${r.message}</h1>
        <p class="details">
          <span>${r.kind === "topup" ? "Top-up" : "Paid"} ${what}</span>
          ${
            r.balance === undefined
              ? nothing
              : html`<span class="balance" data-testid="balance"
                  >New balance ${money(r.balance)}${offline ? " (offline)" : ""}</span
                >`
          }
        </p>
        ${
          offline
            ? html`<p class="note" data-testid="offline-note">
                Approved by this kiosk while offline: the new balance is its estimate.
              </p>`
            : nothing
        }
        ${renderReceipt(this.receipt, r.id)}
      </div>`;
    }
    return html`<div class="body" role="alert">
      ${cross}
      <h1 data-testid="message">${r.message}</h1>
      <p class="reason" data-testid="reason">${declineHint(r)}</p>
      <p class="details note"><span>${r.kind === "topup" ? "Top-up" : "Payment"} of ${what} declined</span></p>
    </div>`;
  }
}

declare global {
  interface HTMLElementTagNameMap {
    "paylane-payment-result-screen": PaymentResultScreen;
  }
}
