import type { DiagnosticCheck, Diagnostics } from "@paylane/protocol/setup-api";
import { css, html, LitElement, nothing } from "lit";
import { customElement, state } from "lit/decorators.js";
import { touchStyles } from "../kiosk/touch-styles.ts";
import { getDiagnostics, postTestReceipt } from "./api.ts";
import { sentence } from "./failure-words.ts";

/** The checks in the order a technician works through them, in words. */
const ROWS = [
  ["reader", "Card reader"],
  ["printer", "Receipt printer"],
  ["gpio", "GPIO"],
  ["cloud", "Cloud"],
  ["clock", "Clock"],
] as const;

/** The printer's paper, where the daemon knows it. */
const PAPER = { ok: "paper ok", low: "paper low", out: "paper out", unknown: "paper unknown" } as const;

/**
 * For a technician, at first boot and after (the setup screen's Diagnostics
 * button, or `#diagnostics`): a row per check with ✓ or ✗ and the daemon's
 * detail, Refresh, and a test receipt with what became of it.
 *
 * @fires close-diagnostics - Close was pressed.
 */
@customElement("paylane-diagnostics-screen")
export class DiagnosticsScreen extends LitElement {
  static override styles = css`
    ${touchStyles}
    :host {
      display: flex;
      flex-direction: column;
      gap: 0.5rem;
      height: 100%;
      box-sizing: border-box;
      padding: 0.6rem 1rem;
      background: #000;
      color: #fff;
    }
    header {
      display: flex;
      align-items: baseline;
      gap: 1rem;
      /* the offline badge sits in the top right corner */
      padding-right: 7rem;
    }
    h1 {
      margin: 0;
      font-size: 1.9rem;
      font-weight: 800;
    }
    .at {
      color: #bbb;
      font-size: 1rem;
    }
    ul {
      flex: 1;
      min-height: 0;
      overflow-y: auto;
      display: flex;
      flex-direction: column;
      gap: 0.35rem;
      margin: 0;
      padding: 0;
      list-style: none;
    }
    li {
      display: grid;
      grid-template-columns: 2.25rem 10rem minmax(0, 1fr);
      align-items: center;
      gap: 0.5rem;
      min-height: 2.6rem;
      padding: 0 0.5rem;
      border-radius: 8px;
      background: #141414;
      font-size: 1.15rem;
    }
    .mark {
      font-size: 1.6rem;
      font-weight: 800;
      text-align: center;
    }
    li.ok .mark {
      color: #69f0ae;
    }
    li.fail {
      background: #2a0a0a;
    }
    li.fail .mark {
      color: #ff8a80;
    }
    .name {
      font-weight: 700;
    }
    .detail {
      color: #e6e6e6;
      overflow-wrap: anywhere;
    }
    .receipt {
      min-height: 1.4em;
      margin: 0;
      font-size: 1.15rem;
      font-weight: 600;
    }
    .receipt.printed {
      color: #69f0ae;
    }
    .actions {
      display: flex;
      gap: 0.75rem;
    }
    .actions .primary {
      margin-left: auto;
    }
  `;

  @state() private report: Diagnostics | undefined;
  @state() private error: string | undefined;
  @state() private loading = false;
  @state() private printing = false;
  @state() private receipt: { printed: boolean; detail: string } | undefined;

  override connectedCallback(): void {
    super.connectedCallback();
    void this.refresh();
  }

  override render() {
    const at = this.report ? new Date(this.report.at) : undefined;
    return html`<header>
        <h1 data-testid="message">Diagnostics</h1>
        ${
          at && !Number.isNaN(at.getTime())
            ? html`<span class="at" data-testid="diagnostics-at">Checked at ${at.toLocaleTimeString()}</span>`
            : nothing
        }
      </header>
      ${this.error ? html`<p class="error" role="alert" data-testid="diagnostics-error">${this.error}</p>` : nothing}
      <ul data-testid="diagnostics" aria-busy=${this.loading ? "true" : "false"}>
        ${this.report ? ROWS.map(([key, name]) => this.row(key, name, this.report?.[key])) : nothing}
      </ul>
      <p
        class="receipt ${this.receipt?.printed ? "printed" : "error"}"
        role="status"
        data-testid="receipt-result"
      >
        ${this.receipt ? `${this.receipt.printed ? "✓" : "✗"} ${sentence(this.receipt.detail)}` : ""}
      </p>
      <div class="actions">
        <button data-testid="close-diagnostics" @click=${this.close}>Close</button>
        <button data-testid="refresh-diagnostics" ?disabled=${this.loading} @click=${this.refresh}>Refresh</button>
        <button class="primary" data-testid="test-receipt" ?disabled=${this.printing} @click=${this.printTest}>
          ${this.printing ? "Printing…" : "Print test receipt"}
        </button>
      </div>`;
  }

  private row(key: string, name: string, check: (DiagnosticCheck & { paper?: keyof typeof PAPER }) | undefined) {
    if (!check) return nothing;
    const paper = check.paper && !check.detail.includes("paper") ? ` (${PAPER[check.paper]})` : "";
    return html`<li class=${check.ok ? "ok" : "fail"} data-testid=${`check-${key}`} data-ok=${String(check.ok)}>
      <span class="mark" role="img" aria-label=${check.ok ? "OK" : "Problem"}>${check.ok ? "✓" : "✗"}</span>
      <span class="name">${name}</span>
      <span class="detail">${check.detail}${paper}</span>
    </li>`;
  }

  private async refresh(): Promise<void> {
    this.loading = true;
    const answer = await getDiagnostics();
    this.loading = false;
    if (answer.ok) {
      this.report = answer.result;
      this.error = undefined;
    } else {
      this.error = answer.error;
    }
  }

  private async printTest(): Promise<void> {
    this.printing = true;
    const answer = await postTestReceipt();
    this.printing = false;
    this.receipt = answer.ok ? answer.result : { printed: false, detail: answer.error };
  }

  private close(): void {
    this.dispatchEvent(new CustomEvent("close-diagnostics", { bubbles: true, composed: true }));
  }
}

declare global {
  interface HTMLElementTagNameMap {
    "paylane-diagnostics-screen": DiagnosticsScreen;
  }
  interface HTMLElementEventMap {
    "close-diagnostics": CustomEvent<void>;
  }
}
