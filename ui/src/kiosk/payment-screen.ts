import type { PaymentSession } from "@paylane/protocol/kiosk-api";
import { css, html, LitElement, nothing, svg } from "lit";
import { customElement, property } from "lit/decorators.js";
import { contactless } from "./icons.ts";
import { formatMoney } from "./money.ts";
import { centredColumn, touchStyles } from "./touch-styles.ts";

const terminal = svg`<svg viewBox="0 0 64 64" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="4" stroke-linejoin="round">
  <rect x="16" y="4" width="32" height="56" rx="5" />
  <rect x="22" y="11" width="20" height="14" rx="2" />
  <path d="M24 34h2M31 34h2M38 34h2M24 42h2M31 42h2M38 42h2M24 50h2M31 50h2M38 50h2" stroke-linecap="round" />
</svg>`;

/**
 * A payment session at the daemon, in words for its state: tap a card, pay
 * at the terminal, or wait while it is authorized. Cancel is offered until
 * authorization starts (the daemon refuses it from then on).
 *
 * @fires payment-cancel - Cancel was pressed.
 */
@customElement("paylane-payment-screen")
export class PaymentScreen extends LitElement {
  static override styles = css`
    ${touchStyles}
    :host {
      ${centredColumn}
      gap: clamp(0.5rem, 3vh, 1.5rem);
      background: #000;
      color: #fff;
    }
    svg {
      width: clamp(3rem, 14vh, 8rem);
      height: auto;
      flex: none;
      color: #4cc2ff;
    }
    h1 {
      margin: 0;
      font-size: clamp(2rem, 6vw, 4.5rem);
      line-height: 1.05;
      font-weight: 800;
      text-wrap: balance;
    }
    p {
      margin: 0;
      font-size: clamp(1.25rem, 3.5vw, 2.25rem);
      color: #e6e6e6;
    }
    button.cancel {
      min-width: 12rem;
    }
    .spinner {
      width: clamp(3rem, 14vh, 6rem);
      aspect-ratio: 1;
      box-sizing: border-box;
      border: 0.6rem solid #333;
      border-top-color: #4cc2ff;
      border-radius: 50%;
      animation: spin 0.9s linear infinite;
    }
    @keyframes spin {
      to {
        transform: rotate(360deg);
      }
    }
    @media (prefers-reduced-motion: reduce) {
      .spinner {
        animation-duration: 3s;
      }
    }
  `;

  @property({ attribute: false }) session: PaymentSession | undefined;
  /** The cancel request is on its way. */
  @property({ type: Boolean }) busy = false;
  @property({ attribute: false }) error: string | undefined;

  override render() {
    const s = this.session;
    if (!s) return nothing;
    const amount = formatMoney(s.amount, s.currency);
    const error = this.error
      ? html`<p class="error" role="alert" data-testid="payment-error">${this.error}</p>`
      : nothing;
    if (s.state === "authorizing") {
      return html`<div class="spinner" aria-hidden="true"></div>
        <h1 data-testid="message" role="status">Authorizing…</h1>
        <p data-testid="hint">${s.itemName ? `${s.itemName} · ${amount}` : amount}</p>
        ${error}`;
    }
    const cancel = html`<button class="cancel" data-testid="cancel" ?disabled=${this.busy} @click=${this.cancel}>
      Cancel
    </button>`;
    if (s.state === "awaiting-terminal") {
      return html`${terminal}
        <h1 data-testid="message">Pay ${amount} at the card terminal</h1>
        <p data-testid="hint">Follow the instructions on the terminal</p>
        ${error} ${cancel}`;
    }
    if (s.kind === "topup") {
      return html`${contactless}
        <h1 data-testid="message">Tap your member card</h1>
        <p data-testid="hint">to top up ${amount}</p>
        ${error} ${cancel}`;
    }
    return html`${contactless}
      <h1 data-testid="message">Tap your card to pay ${amount}</h1>
      ${s.itemName ? html`<p data-testid="hint">${s.itemName}</p>` : nothing} ${error} ${cancel}`;
  }

  private cancel(): void {
    this.dispatchEvent(new CustomEvent("payment-cancel", { bubbles: true, composed: true }));
  }
}

declare global {
  interface HTMLElementTagNameMap {
    "paylane-payment-screen": PaymentScreen;
  }
  interface HTMLElementEventMap {
    "payment-cancel": CustomEvent<undefined>;
  }
}
