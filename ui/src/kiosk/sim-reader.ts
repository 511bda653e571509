import { css, html, LitElement, nothing } from "lit";
import { customElement, state } from "lit/decorators.js";
import type { TapResult } from "../kiosk-api.ts";
import { postSimTap } from "./api.ts";

/**
 * Stand-in for the NFC reader when the daemon runs a simulated one: type a
 * card UID and tap. The daemon validates the UID; its problem+json `detail`
 * is shown as is.
 *
 * @fires tap-result - CustomEvent<TapResult> with the daemon's answer to the tap.
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

  @state() private uid = "";
  @state() private busy = false;
  @state() private error: string | undefined;

  override render() {
    return html`<form @submit=${this.onSubmit}>
        <div class="name">
          <span class="tag">Simulated reader</span>
          <label for="uid">Card UID</label>
        </div>
        <input
          id="uid"
          data-testid="sim-uid"
          autocomplete="off"
          spellcheck="false"
          placeholder="04A1B2C3"
          .value=${this.uid}
          @input=${this.onInput}
          aria-invalid=${this.error ? "true" : "false"}
          aria-describedby="error"
        />
        <button type="submit" data-testid="sim-tap" ?disabled=${this.busy}>Tap card</button>
      </form>
      ${this.error ? html`<p id="error" class="error" role="alert" data-testid="sim-error">${this.error}</p>` : nothing}`;
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
    // The daemon owns UID validation, so even an empty UID is sent and its answer shown.
    const res = await postSimTap(this.uid.trim());
    this.busy = false;
    if (!res.ok) {
      this.error = res.error;
      return;
    }
    this.dispatchEvent(new CustomEvent<TapResult>("tap-result", { detail: res.result, bubbles: true, composed: true }));
  }
}

declare global {
  interface HTMLElementTagNameMap {
    "paylane-sim-reader": SimReader;
  }
  interface HTMLElementEventMap {
    "tap-result": CustomEvent<TapResult>;
  }
}
