import type { KioskState, PaymentKind } from "@paylane/protocol/kiosk-api";
import { css, html, LitElement, nothing } from "lit";
import { customElement, property } from "lit/decorators.js";
import { contactless } from "./icons.ts";
import { touchStyles } from "./touch-styles.ts";

/**
 * The idle screen: one instruction, readable at arm's length. Tapping a card
 * checks in; Pay and Top up, when the kiosk takes payments, start a payment.
 *
 * @fires payment-start - CustomEvent<PaymentKind>: Pay (`purchase`) or Top up (`topup`) was pressed.
 */
@customElement("paylane-attract-screen")
export class AttractScreen extends LitElement {
  static override styles = css`
    ${touchStyles}
    :host {
      display: flex;
      flex-direction: column;
      align-items: center;
      justify-content: center;
      gap: clamp(0.5rem, 3vh, 2rem);
      height: 100%;
      text-align: center;
      color: #fff;
      background: #000;
    }
    svg {
      width: clamp(4rem, 22vh, 12rem);
      height: auto;
      color: #4cc2ff;
    }
    h1 {
      margin: 0;
      font-size: clamp(2.75rem, 10vw, 8rem);
      line-height: 1.05;
      font-weight: 800;
      letter-spacing: -0.01em;
    }
    p {
      margin: 0;
      font-size: clamp(1.25rem, 3.5vw, 2.5rem);
      color: #e6e6e6;
    }
    p.warn {
      color: #ffd54f;
    }
    p.welcome {
      color: #4cc2ff;
      font-weight: 700;
    }
    .actions {
      display: flex;
      gap: 1rem;
      margin-top: clamp(0rem, 2vh, 1rem);
    }
    .actions button {
      min-width: 10rem;
    }
    /* Room for the buttons on a 7" screen: the symbol gives way first. */
    :host([payments]) svg {
      width: clamp(3rem, 15vh, 9rem);
    }
  `;

  /** Ops' welcome line above the instruction (desired configuration `screenTexts.welcome`); empty: none. */
  @property({ attribute: false }) welcome = "";

  /** State of the card reader; a missing reader changes the hint, not the screen. */
  @property({ attribute: false }) reader: KioskState["reader"]["state"] = "ok";

  /** "failing": the kiosk cannot record anything right now; it says so before anyone taps. */
  @property({ attribute: false }) storage: KioskState["storage"] = "ok";

  /** The Pay button is offered (the catalog is ready). */
  @property({ type: Boolean }) pay = false;

  /** The Top up button is offered (a payment terminal is attached). */
  @property({ type: Boolean }) topup = false;

  /** Reflected while either button shows, so the layout makes room. */
  @property({ type: Boolean, reflect: true }) payments = false;

  override willUpdate(): void {
    this.payments = this.pay || this.topup;
  }

  override render() {
    const hint =
      this.storage === "failing"
        ? html`<p class="warn" data-testid="hint">This kiosk cannot record check-ins right now. Please ask at the desk.</p>`
        : this.reader === "disconnected"
          ? html`<p class="warn" data-testid="hint">Card reader unavailable. Enter your booking code below.</p>`
          : html`<p data-testid="hint">Hold it flat against the reader to check in</p>`;
    return html`${contactless}
      ${this.welcome ? html`<p class="welcome" data-testid="welcome">${this.welcome}</p>` : nothing}
      <h1 data-testid="message">Tap your card</h1>
      ${hint}
      ${
        this.payments
          ? html`<div class="actions">
              ${this.pay ? html`<button class="primary" data-testid="pay" @click=${() => this.start("purchase")}>Pay</button>` : nothing}
              ${this.topup ? html`<button data-testid="topup" @click=${() => this.start("topup")}>Top up</button>` : nothing}
            </div>`
          : nothing
      }`;
  }

  private start(kind: PaymentKind): void {
    this.dispatchEvent(new CustomEvent<PaymentKind>("payment-start", { detail: kind, bubbles: true, composed: true }));
  }
}

declare global {
  interface HTMLElementTagNameMap {
    "paylane-attract-screen": AttractScreen;
  }
  interface HTMLElementEventMap {
    "payment-start": CustomEvent<PaymentKind>;
  }
}
