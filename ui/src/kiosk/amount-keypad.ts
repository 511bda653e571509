import { css, html, LitElement, nothing } from "lit";
import { customElement, property, state } from "lit/decorators.js";
import { deleteDigit, formatMoney, typeDigit } from "./money.ts";
import type { PaymentChoice } from "./payment-flow.ts";
import { choicePageStyles, touchStyles } from "./touch-styles.ts";

const DIGITS = [1, 2, 3, 4, 5, 6, 7, 8, 9] as const;

/**
 * "Other amount": a keypad that types an amount cash-register style, each
 * digit shifting it one place left in minor units (2, 5, 0 is €2.50), so the
 * amount is an integer from the first key to the POST. Up to `max`.
 *
 * @fires payment-choose - CustomEvent<PaymentChoice> with `{amount}` in minor units.
 * @fires payment-back - Back was pressed.
 */
@customElement("paylane-amount-keypad")
export class AmountKeypad extends LitElement {
  static override styles = css`
    ${touchStyles}
    ${choicePageStyles}
    :host {
      gap: clamp(0.4rem, 2vh, 1rem);
    }
    h1 {
      /* the offline badge sits in the top right corner */
      padding-right: 7rem;
    }
    .body {
      flex: 1;
      min-height: 0;
      display: grid;
      grid-template-columns: minmax(0, 1fr) minmax(0, 1fr);
      gap: clamp(0.75rem, 3vw, 2rem);
    }
    .side {
      display: flex;
      flex-direction: column;
      gap: clamp(0.4rem, 2vh, 1rem);
      min-height: 0;
    }
    output {
      display: block;
      padding: 0.25rem 0.75rem;
      border: 2px solid #888;
      border-radius: 8px;
      font-size: clamp(2.25rem, 8vw, 4.5rem);
      font-weight: 800;
      font-variant-numeric: tabular-nums;
      text-align: right;
    }
    .limit {
      margin: 0;
      color: #bbb;
      font-size: clamp(1rem, 2.2vw, 1.25rem);
    }
    .actions {
      margin-top: auto;
      display: flex;
      gap: 0.75rem;
    }
    .actions .primary {
      flex: 1;
    }
    .keys {
      display: grid;
      grid-template-columns: repeat(3, 1fr);
      grid-template-rows: repeat(4, minmax(64px, 1fr));
      gap: 0.5rem;
      min-height: 0;
    }
    .keys button {
      padding: 0;
      font-size: clamp(1.5rem, 4vw, 2.25rem);
    }
  `;

  @property() currency = "EUR";
  /** The largest amount that may be typed, minor units. */
  @property({ type: Number }) max = 0;
  @property({ type: Boolean }) busy = false;
  @property({ attribute: false }) error: string | undefined;

  /** The amount typed so far, minor units. */
  @state() amount = 0;
  /** The last digit was refused for going over `max`. */
  @state() private over = false;

  override render() {
    const max = formatMoney(this.max, this.currency);
    return html`<h1 id="title" data-testid="message">Other amount</h1>
      <div class="body">
      <div class="side">
        <output data-testid="amount" aria-labelledby="title" aria-live="polite">${formatMoney(this.amount, this.currency)}</output>
        ${
          this.over
            ? html`<p class="error" role="alert" data-testid="amount-limit">The most you can pay here is ${max}</p>`
            : html`<p class="limit">Up to ${max}</p>`
        }
        ${this.error ? html`<p class="error" role="alert" data-testid="payment-error">${this.error}</p>` : nothing}
        <div class="actions">
          <button data-testid="back" ?disabled=${this.busy} @click=${this.back}>Back</button>
          <button
            class="primary"
            data-testid="amount-pay"
            ?disabled=${this.busy || this.amount < 1}
            @click=${this.pay}
          >
            Pay ${this.amount > 0 ? formatMoney(this.amount, this.currency) : ""}
          </button>
        </div>
      </div>
      <div class="keys" role="group" aria-label="Keypad">
        ${DIGITS.map((d) => this.key(d))}
        <button data-testid="key-clear" aria-label="Clear the amount" ?disabled=${this.busy} @click=${this.clear}>
          C
        </button>
        ${this.key(0)}
        <button data-testid="key-delete" aria-label="Delete the last digit" ?disabled=${this.busy} @click=${this.delete}>
          ⌫
        </button>
      </div>
      </div>`;
  }

  private key(digit: number) {
    return html`<button data-testid=${`key-${digit}`} ?disabled=${this.busy} @click=${() => this.type(digit)}>
      ${digit}
    </button>`;
  }

  private type(digit: number): void {
    const next = typeDigit(this.amount, digit, this.max);
    this.over = next === undefined;
    if (next !== undefined) this.amount = next;
  }

  private delete(): void {
    this.amount = deleteDigit(this.amount);
    this.over = false;
  }

  private clear(): void {
    this.amount = 0;
    this.over = false;
  }

  private pay(): void {
    if (this.amount < 1) return;
    this.dispatchEvent(
      new CustomEvent<PaymentChoice>("payment-choose", {
        detail: { amount: this.amount },
        bubbles: true,
        composed: true,
      }),
    );
  }

  private back(): void {
    this.dispatchEvent(new CustomEvent("payment-back", { bubbles: true, composed: true }));
  }
}

declare global {
  interface HTMLElementTagNameMap {
    "paylane-amount-keypad": AmountKeypad;
  }
}
