import type { PaymentResult, TapResult } from "@paylane/protocol/kiosk-api";
import { css, html, LitElement, nothing } from "lit";
import { customElement, property, state } from "lit/decorators.js";
import { postCode, postSimTap, type TapResponse } from "./api.ts";

/** The two ways to present a credential by typing it: same form, different words and endpoint. */
const MODES = {
  /** Stand-in for the NFC reader when the daemon runs a PN532 simulator: places a card on it. */
  card: {
    tag: "Simulated reader",
    label: "Card UID",
    placeholder: "04A1B2C3",
    button: "Tap card",
    ids: { input: "sim-uid", submit: "sim-tap", error: "sim-error" },
    send: (value: string) => postSimTap(value),
  },
  /** Offered while the card reader is unavailable: check in with a booking code. */
  code: {
    tag: "Card reader unavailable",
    label: "Booking code",
    placeholder: "ADA1",
    button: "Check in",
    ids: { input: "code-input", submit: "code-submit", error: "code-error" },
    send: (value: string) => postCode(value),
  },
} satisfies Record<string, { send: (value: string) => Promise<TapResponse> } & Record<string, unknown>>;

/**
 * Type a credential and present it: a card UID on the simulated reader, or a
 * booking code while the reader is unavailable. The daemon validates the
 * value; its problem+json `detail` is shown as is.
 *
 * @fires tap-result - CustomEvent<TapResult | PaymentResult> with the daemon's answer: a
 * check-in, or the result of the payment session the card was tapped for.
 */
@customElement("paylane-sim-reader")
export class SimReader extends LitElement {
  static override styles = css`
    :host {
      display: block;
      padding: 0.5rem 1rem;
      background: #1c1c1c;
      border-top: 2px dashed #555;
      color: #fff;
    }
    form {
      display: flex;
      align-items: center;
      gap: 0.75rem;
    }
    .name {
      display: flex;
      flex-direction: column;
      white-space: nowrap;
    }
    label {
      font-size: clamp(1rem, 2.2vw, 1.25rem);
    }
    input {
      flex: 1;
      min-width: 0;
      min-height: 64px;
      box-sizing: border-box;
      padding: 0 0.75rem;
      font: inherit;
      font-size: clamp(1.25rem, 3vw, 1.75rem);
      font-family: ui-monospace, monospace;
      border: 2px solid #888;
      border-radius: 8px;
      background: #000;
      color: #fff;
    }
    input:focus-visible,
    button:focus-visible {
      outline: 4px solid #4cc2ff;
      outline-offset: 2px;
    }
    button {
      min-height: 64px;
      min-width: 9rem;
      padding: 0 1.5rem;
      font: inherit;
      font-size: clamp(1.25rem, 3vw, 1.75rem);
      font-weight: 700;
      border: none;
      border-radius: 8px;
      background: #4cc2ff;
      color: #000;
      cursor: pointer;
      touch-action: manipulation;
    }
    button:disabled {
      opacity: 0.6;
    }
    .error {
      margin: 0.4rem 0 0;
      color: #ff8a80;
      font-size: clamp(1rem, 2.2vw, 1.25rem);
    }
    .tag {
      color: #bbb;
      font-size: 0.9rem;
    }
  `;

  @property() mode: keyof typeof MODES = "card";
  @state() private uid = "";
  @state() private busy = false;
  @state() private error: string | undefined;

  override render() {
    const m = MODES[this.mode] ?? MODES.card;
    return html`<form @submit=${this.onSubmit}>
        <div class="name">
          <span class="tag">${m.tag}</span>
          <label for="uid">${m.label}</label>
        </div>
        <input
          id="uid"
          data-testid=${m.ids.input}
          autocomplete="off"
          autocapitalize="characters"
          spellcheck="false"
          placeholder=${m.placeholder}
          .value=${this.uid}
          @input=${this.onInput}
          aria-invalid=${this.error ? "true" : "false"}
          aria-describedby="error"
        />
        <button type="submit" data-testid=${m.ids.submit} ?disabled=${this.busy}>${m.button}</button>
      </form>
      ${this.error ? html`<p id="error" class="error" role="alert" data-testid=${m.ids.error}>${this.error}</p>` : nothing}`;
  }

  private onInput(event: Event): void {
    this.uid = (event.target as HTMLInputElement).value;
    this.error = undefined;
  }

  private onSubmit(event: SubmitEvent): void {
    event.preventDefault();
    if (!this.busy) void this.tap();
  }

  private async tap(): Promise<void> {
    this.busy = true;
    this.error = undefined;
    // The daemon owns validation, so even an empty value is sent and its answer shown.
    const res = await (MODES[this.mode] ?? MODES.card).send(this.uid.trim());
    this.busy = false;
    if (!res.ok) {
      this.error = res.error;
      return;
    }
    this.dispatchEvent(
      new CustomEvent<TapResult | PaymentResult>("tap-result", { detail: res.result, bubbles: true, composed: true }),
    );
  }
}

declare global {
  interface HTMLElementTagNameMap {
    "paylane-sim-reader": SimReader;
  }
  interface HTMLElementEventMap {
    "tap-result": CustomEvent<TapResult | PaymentResult>;
  }
}
