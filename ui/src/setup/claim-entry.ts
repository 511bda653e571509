import { CLAIM_CODE_DIGITS, parseClaimCode } from "@paylane/protocol/setup-api";
import { css, html, LitElement } from "lit";
import { customElement, property, state } from "lit/decorators.js";
import { touchStyles } from "../kiosk/touch-styles.ts";
import { sentence } from "./failure-words.ts";

const DIGITS = [1, 2, 3, 4, 5, 6, 7, 8, 9] as const;
const GROUP = 5;

/**
 * "Scan or enter your claim code": the code in groups of five, a keypad and
 * Enrol, enabled once all 20 digits are in and the check digit matches (a
 * typo is refused here, before anything is sent). A barcode scanner is a
 * keyboard that types the code and Enter, so keys typed anywhere on the page
 * go into the code too (dashes and spaces skipped; Escape clears).
 *
 * @fires setup-claim - CustomEvent<string>: the code's 20 digits, to send.
 */
@customElement("paylane-claim-entry")
export class ClaimEntry extends LitElement {
  static override styles = css`
    ${touchStyles}
    :host {
      display: flex;
      flex-direction: column;
      gap: 0.4rem;
      min-height: 0;
    }
    label {
      font-size: 1.25rem;
      font-weight: 700;
    }
    output {
      display: flex;
      justify-content: space-between;
      padding: 0.2rem 0.6rem;
      border: 2px solid #888;
      border-radius: 8px;
      font-family: "DejaVu Sans Mono", ui-monospace, monospace;
      font-size: 1.6rem;
      font-weight: 700;
      letter-spacing: 0.02em;
    }
    output .todo {
      color: #555;
    }
    .hint,
    .error {
      min-height: 2.6em;
      margin: 0;
      font-size: 1rem;
      line-height: 1.3;
    }
    .hint {
      color: #bbb;
    }
    .error {
      font-size: 1rem;
    }
    .keys {
      flex: 1;
      min-height: 0;
      display: grid;
      grid-template-columns: repeat(3, minmax(0, 1fr));
      grid-template-rows: repeat(4, minmax(48px, 1fr));
      gap: 0.4rem;
    }
    .keys button {
      min-height: 48px;
      padding: 0;
      font-size: 1.75rem;
    }
    .keys button.primary {
      font-size: 1.35rem;
    }
  `;

  /** A claim is on its way: nothing is typed or sent meanwhile. */
  @property({ type: Boolean }) busy = false;
  /** The daemon's refusal of the code sent; cleared by the next key. */
  @property({ attribute: false }) refusal: string | undefined;

  /** The digits typed so far. */
  @state() digits = "";

  override connectedCallback(): void {
    super.connectedCallback();
    window.addEventListener("keydown", this.onKey);
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    window.removeEventListener("keydown", this.onKey);
  }

  /** The code's check, once it is complete; undefined while it is still being typed. */
  private get check(): ReturnType<typeof parseClaimCode> | undefined {
    return this.digits.length === CLAIM_CODE_DIGITS ? parseClaimCode(this.digits) : undefined;
  }

  override render() {
    const check = this.check;
    const problem = check && !check.ok ? sentence(check.error) : this.refusal;
    return html`<label id="claim-label" data-testid="claim-label">Scan or enter your claim code</label>
      <output data-testid="claim-code" data-code=${this.digits} aria-labelledby="claim-label">${this.groups()}</output>
      ${
        problem
          ? html`<p class="error" role="alert" data-testid="claim-error">${problem}</p>`
          : html`<p class="hint" data-testid="claim-hint">
              ${
                check?.ok
                  ? "Press Enrol."
                  : `${this.digits.length} of ${CLAIM_CODE_DIGITS} digits, from the claim sheet or its QR code.`
              }
            </p>`
      }
      <div class="keys" role="group" aria-label="Keypad">
        ${DIGITS.map((d) => this.key(d))}
        <button
          data-testid="key-backspace"
          aria-label="Backspace"
          ?disabled=${this.busy || this.digits.length === 0}
          @click=${this.backspace}
        >
          ⌫
        </button>
        ${this.key(0)}
        <button class="primary" data-testid="enrol" ?disabled=${this.busy || !check?.ok} @click=${this.enrol}>
          Enrol
        </button>
      </div>`;
  }

  /** Four groups of five: the digits typed, then a dot for each still to come. */
  private groups() {
    return Array.from({ length: CLAIM_CODE_DIGITS / GROUP }, (_, g) => {
      const typed = this.digits.slice(g * GROUP, (g + 1) * GROUP);
      return html`<span>${typed}<span class="todo" aria-hidden="true">${"·".repeat(GROUP - typed.length)}</span></span>`;
    });
  }

  private key(digit: number) {
    return html`<button
      data-testid=${`key-${digit}`}
      ?disabled=${this.busy || this.digits.length >= CLAIM_CODE_DIGITS}
      @click=${() => this.type(String(digit))}
    >
      ${digit}
    </button>`;
  }

  private readonly onKey = (event: KeyboardEvent): void => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (/^\d$/.test(event.key)) this.type(event.key);
    else if (event.key === "Backspace") this.backspace();
    else if (event.key === "Escape") this.edit("");
    else if (event.key === "Enter") this.enrol();
    else return;
    event.preventDefault();
  };

  private type(digit: string): void {
    if (this.busy || this.digits.length >= CLAIM_CODE_DIGITS) return;
    this.edit(this.digits + digit);
  }

  private backspace(): void {
    if (!this.busy) this.edit(this.digits.slice(0, -1));
  }

  private edit(digits: string): void {
    this.digits = digits;
    this.refusal = undefined;
  }

  private enrol(): void {
    if (this.busy || !this.check?.ok) return;
    this.dispatchEvent(new CustomEvent<string>("setup-claim", { detail: this.digits, bubbles: true, composed: true }));
  }
}

declare global {
  interface HTMLElementTagNameMap {
    "paylane-claim-entry": ClaimEntry;
  }
  interface HTMLElementEventMap {
    "setup-claim": CustomEvent<string>;
  }
}
