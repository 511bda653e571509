import type { Catalog, PaymentKind } from "@paylane/protocol/kiosk-api";
import { css, html, LitElement, nothing } from "lit";
import { customElement, property } from "lit/decorators.js";
import { formatMoney } from "./money.ts";
import type { PaymentChoice } from "./payment-flow.ts";
import { choicePageStyles, touchStyles } from "./touch-styles.ts";

/**
 * What to pay: the price list and "Other amount" (`purchase`), or the
 * suggested top-up amounts (`topup`). A choice is sent to the daemon by the
 * app; while it is on its way the buttons are disabled, and a refusal's
 * sentence is shown above them.
 *
 * @fires payment-choose - CustomEvent<PaymentChoice>: an item or a top-up amount was chosen.
 * @fires payment-keypad - "Other amount" was pressed.
 * @fires payment-back - Back was pressed.
 */
@customElement("paylane-pay-menu")
export class PayMenu extends LitElement {
  static override styles = css`
    ${touchStyles}
    ${choicePageStyles}
    :host {
      gap: clamp(0.5rem, 2vh, 1rem);
    }
    header {
      display: flex;
      align-items: center;
      gap: 1rem;
      /* the offline badge sits in the top right corner */
      padding-right: 7rem;
    }
    .choices {
      flex: 1;
      min-height: 0;
      overflow-y: auto;
      display: grid;
      grid-template-columns: repeat(auto-fill, minmax(11rem, 1fr));
      grid-auto-rows: minmax(72px, auto);
      gap: 0.75rem;
      align-content: start;
    }
    .choices button {
      display: flex;
      flex-direction: column;
      align-items: center;
      justify-content: center;
      gap: 0.15rem;
      padding: 0.5rem 0.75rem;
    }
    .price {
      font-size: 0.85em;
      font-weight: 600;
      color: #4cc2ff;
    }
    .topup .amount {
      font-size: 1.2em;
    }
    button.other {
      border-style: dashed;
    }
    .how {
      margin: 0;
      color: #e6e6e6;
      font-size: clamp(1rem, 2.5vw, 1.5rem);
    }
  `;

  @property({ attribute: false }) catalog: Catalog | undefined;
  @property() kind: PaymentKind = "purchase";
  @property({ type: Boolean }) busy = false;
  @property({ attribute: false }) error: string | undefined;

  override render() {
    const c = this.catalog;
    const title = this.kind === "topup" ? "Top up your wallet" : "Choose what to pay";
    return html`<header>
        <button data-testid="back" ?disabled=${this.busy} @click=${this.back}>Back</button>
        <h1 data-testid="message">${title}</h1>
      </header>
      ${this.error ? html`<p class="error" role="alert" data-testid="payment-error">${this.error}</p>` : nothing}
      ${c ? (this.kind === "topup" ? this.renderTopups(c) : this.renderItems(c)) : nothing}`;
  }

  private renderItems(c: Catalog) {
    return html`<div class="choices" role="group" aria-label="Price list">
      ${c.items.map(
        (item) => html`<button
          data-testid=${`item-${item.id}`}
          ?disabled=${this.busy}
          @click=${() => this.choose({ itemId: item.id })}
        >
          <span>${item.name}</span> <span class="price">${formatMoney(item.price, c.currency)}</span>
        </button>`,
      )}
      <button class="other" data-testid="other-amount" ?disabled=${this.busy} @click=${this.keypad}>
        Other amount
      </button>
    </div>`;
  }

  private renderTopups(c: Catalog) {
    return html`<p class="how">Choose an amount, tap your member card, then pay it at the card terminal.</p>
      <div class="choices topup" role="group" aria-label="Top-up amounts">
      ${c.topupAmounts.map(
        (amount) => html`<button
          data-testid=${`topup-${amount}`}
          ?disabled=${this.busy}
          @click=${() => this.choose({ amount })}
        >
          <span class="amount">${formatMoney(amount, c.currency)}</span>
        </button>`,
      )}
    </div>`;
  }

  private choose(choice: PaymentChoice): void {
    this.dispatchEvent(
      new CustomEvent<PaymentChoice>("payment-choose", { detail: choice, bubbles: true, composed: true }),
    );
  }

  private keypad(): void {
    this.dispatchEvent(new CustomEvent("payment-keypad", { bubbles: true, composed: true }));
  }

  private back(): void {
    this.dispatchEvent(new CustomEvent("payment-back", { bubbles: true, composed: true }));
  }
}

declare global {
  interface HTMLElementTagNameMap {
    "paylane-pay-menu": PayMenu;
  }
  interface HTMLElementEventMap {
    "payment-choose": CustomEvent<PaymentChoice>;
    "payment-keypad": CustomEvent<undefined>;
    "payment-back": CustomEvent<undefined>;
  }
}
