import type { SetupState } from "@paylane/protocol/setup-api";
import { css, html, LitElement, nothing } from "lit";
import { customElement, property, state } from "lit/decorators.js";
import { cross, tick } from "../kiosk/icons.ts";
import { touchStyles } from "../kiosk/touch-styles.ts";
import "./claim-entry.ts";
import { failureWords } from "./failure-words.ts";

/** The steps of an enrolment as the daemon reports them (`enrolment.step`: the last one done), in words. */
const STEPS = [
  ["key", "Kiosk key made"],
  ["request", "Claim code sent to the cloud"],
  ["registered", "Registered with the cloud"],
  ["connected", "Connected to the fleet"],
] as const;

/** What the right-hand side shows. */
type Panel = "entry" | "enrolling" | "failed" | "enrolled";

/**
 * The first-boot screen, until the kiosk is enrolled: who the kiosk is (site,
 * device, key fingerprint, cloud), whether it has a network, and the claim
 * code — typed or scanned, or the one baked into the image — then the
 * enrolment's progress, or why it failed and how to fix it, with Try again.
 *
 * @fires setup-claim - CustomEvent<string> (from the code entry): the code's digits, to send.
 * @fires open-diagnostics - Diagnostics was pressed.
 */
@customElement("paylane-setup-screen")
export class SetupScreen extends LitElement {
  static override styles = css`
    ${touchStyles}
    :host {
      display: grid;
      grid-template-columns: minmax(0, 1fr) minmax(0, 25rem);
      gap: 1.25rem;
      height: 100%;
      box-sizing: border-box;
      padding: 0.6rem 1rem;
      background: #000;
      color: #fff;
    }
    .about {
      display: flex;
      flex-direction: column;
      gap: 0.5rem;
      min-height: 0;
      min-width: 0;
    }
    h1 {
      margin: 0;
      font-size: 1.9rem;
      font-weight: 800;
    }
    dl {
      display: grid;
      grid-template-columns: auto minmax(0, 1fr);
      gap: 0.3rem 0.75rem;
      margin: 0;
      font-size: 1.05rem;
    }
    dt {
      color: #bbb;
    }
    dd {
      margin: 0;
      font-weight: 600;
      overflow-wrap: anywhere;
    }
    .mono {
      font-family: "DejaVu Sans Mono", ui-monospace, monospace;
    }
    .online {
      color: #69f0ae;
    }
    .offline {
      color: #ffd54f;
    }
    .about .actions {
      margin-top: auto;
      display: flex;
      gap: 0.75rem;
    }
    .panel {
      display: flex;
      flex-direction: column;
      gap: 0.6rem;
      min-height: 0;
      min-width: 0;
    }
    paylane-claim-entry {
      flex: 1;
    }
    .panel svg {
      width: 4rem;
      height: 4rem;
      flex: none;
    }
    h2 {
      margin: 0;
      font-size: 1.6rem;
      font-weight: 800;
    }
    .panel p {
      margin: 0;
      font-size: 1.15rem;
      line-height: 1.35;
    }
    .panel .fix {
      color: #e6e6e6;
    }
    .panel .fix strong {
      color: #fff;
    }
    .failed svg {
      color: #ff8a80;
    }
    .enrolled svg {
      color: #69f0ae;
    }
    .failed button {
      margin-top: auto;
    }
    ol {
      display: flex;
      flex-direction: column;
      gap: 0.5rem;
      margin: 0;
      padding: 0;
      list-style: none;
      font-size: 1.2rem;
    }
    li {
      display: flex;
      align-items: center;
      gap: 0.6rem;
      color: #777;
    }
    li .mark {
      width: 1.6rem;
      text-align: center;
      font-weight: 800;
    }
    li.done {
      color: #fff;
    }
    li.done .mark {
      color: #69f0ae;
    }
    li.now {
      color: #4cc2ff;
      font-weight: 700;
    }
  `;

  @property({ attribute: false }) state: SetupState | undefined;
  /** Why the daemon cannot be asked right now, if it cannot. */
  @property({ attribute: false }) error: string | undefined;
  /** A claim code is on its way. */
  @property({ type: Boolean }) busy = false;
  /** The daemon's refusal of the code just sent. */
  @property({ attribute: false }) refusal: string | undefined;
  /** How many claim codes the daemon has taken so far (counted by the app). */
  @property({ type: Number }) accepted = 0;

  /** `accepted` when Try again was pressed: the code entry is back until the daemon takes another code. */
  @state() private retryAt: number | undefined;

  /** Reflected for tests and styles: which panel is up. */
  get panel(): Panel {
    const s = this.state;
    if (!s) return "enrolling";
    const { state } = s.enrolment;
    if (s.enrolled || state === "enrolled") return "enrolled";
    if (state === "enrolling") return "enrolling";
    if (this.retryAt === this.accepted) return "entry";
    if (state === "failed") return "failed";
    // A code in the image: the kiosk enrols by itself; the keypad is for after a failure.
    return s.claimInImage ? "enrolling" : "entry";
  }

  override render() {
    const panel = this.panel;
    return html`<section class="about">
        <h1 data-testid="message">Set up this kiosk</h1>
        ${this.state ? this.renderAbout(this.state) : html`<p data-testid="setup-loading">${this.error ?? "Asking the kiosk…"}</p>`}
        <div class="actions">
          <button data-testid="open-diagnostics" @click=${this.openDiagnostics}>Diagnostics</button>
        </div>
      </section>
      <section class="panel ${panel}" data-testid="setup-panel" data-panel=${panel} aria-live="polite">
        ${this.renderPanel(panel)}
      </section>`;
  }

  private renderAbout(s: SetupState) {
    const { online, addresses } = s.network;
    return html`<dl data-testid="setup-about">
      <dt>Site</dt>
      <dd data-testid="setup-site">${s.site}</dd>
      <dt>Device</dt>
      <dd data-testid="setup-device">${s.device}</dd>
      <dt>Key</dt>
      <dd class="mono" data-testid="setup-fingerprint">${s.fingerprint}</dd>
      <dt>Network</dt>
      <dd data-testid="setup-network" class=${online ? "online" : "offline"}>
        ${
          online
            ? `Online${addresses.length ? ` · ${addresses.join(", ")}` : ""}`
            : "No network: plug in Ethernet or check the Wi-Fi settings in the image"
        }
      </dd>
      <dt>Cloud</dt>
      <dd data-testid="setup-cloud">${s.cloudUrl}</dd>
    </dl>`;
  }

  private renderPanel(panel: Panel) {
    const s = this.state;
    switch (panel) {
      case "entry":
        return html`<paylane-claim-entry ?busy=${this.busy} .refusal=${this.refusal}></paylane-claim-entry>`;
      case "failed": {
        const words = s ? failureWords(s) : { message: "", fix: "" };
        return html`${cross}
          <h2 data-testid="setup-status">Enrolment failed</h2>
          <p data-testid="failure-message">${words.message}</p>
          <p class="fix" data-testid="failure-fix"><strong>To fix:</strong> ${words.fix}</p>
          <button class="primary" data-testid="try-again" @click=${() => (this.retryAt = this.accepted)}>Try again</button>`;
      }
      case "enrolled":
        return html`${tick}
          <h2 data-testid="setup-status">Enrolled</h2>
          <p>This kiosk is now part of site ${s?.site}. Starting the kiosk…</p>`;
      default:
        return this.renderProgress();
    }
  }

  private renderProgress() {
    const s = this.state;
    const done = STEPS.findIndex(([step]) => step === s?.enrolment.step);
    const title = s?.claimInImage ? "Enrolling with the code from the image…" : "Enrolling…";
    return html`<h2 data-testid="setup-status">${s ? title : "Kiosk starting…"}</h2>
      ${
        s
          ? html`<ol data-testid="setup-steps">
              ${STEPS.map(([step, words], i) => {
                const mark = i <= done ? "✓" : i === done + 1 ? "…" : "";
                const cls = i <= done ? "done" : i === done + 1 ? "now" : "";
                return html`<li class=${cls} data-step=${step}><span class="mark" aria-hidden="true">${mark}</span>${words}</li>`;
              })}
            </ol>`
          : nothing
      }`;
  }

  private openDiagnostics(): void {
    this.dispatchEvent(new CustomEvent("open-diagnostics", { bubbles: true, composed: true }));
  }
}

declare global {
  interface HTMLElementTagNameMap {
    "paylane-setup-screen": SetupScreen;
  }
  interface HTMLElementEventMap {
    "open-diagnostics": CustomEvent<void>;
  }
}
