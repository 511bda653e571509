import { css, html, LitElement, nothing } from "lit";
import { customElement, property, state } from "lit/decorators.js";
import type { ReceiptNotice, TapResult } from "../kiosk-api.ts";
import { postCallStaff } from "./api.ts";
import { LiveController } from "./live-controller.ts";
import "./attract-screen.ts";
import "./offline-badge.ts";
import "./result-screen.ts";
import "./sim-reader.ts";

export type ScreenName = "starting" | "attract" | TapResult["outcome"];

/**
 * The kiosk's touch UI: a live view of the local daemon, one screen at a time.
 *
 * @fires paylane-result - CustomEvent<TapResult>, once per distinct result shown.
 */
@customElement("paylane-kiosk")
export class KioskApp extends LitElement {
  static override styles = css`
    :host {
      display: grid;
      grid-template-rows: minmax(0, 1fr) auto auto;
      height: 100%;
      position: relative;
      overflow: hidden;
      background: #000;
      color: #fff;
      font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
      user-select: none;
      -webkit-user-select: none;
    }
    main {
      min-height: 0;
    }
    main > * {
      height: 100%;
    }
    .starting {
      display: flex;
      align-items: center;
      justify-content: center;
      height: 100%;
      text-align: center;
    }
    .starting h1 {
      margin: 0;
      font-size: clamp(2rem, 7vw, 5rem);
      font-weight: 700;
      color: #ccc;
    }
    .badge {
      position: absolute;
      top: clamp(0.5rem, 2vh, 1rem);
      right: clamp(0.5rem, 2vw, 1rem);
    }
    .call-staff {
      min-height: 48px;
      padding: 0 1rem;
      font: inherit;
      font-weight: 700;
      border: 2px solid #ffd54f;
      border-radius: 8px;
      background: #000;
      color: #ffd54f;
      touch-action: manipulation;
    }
    footer {
      align-items: center;
      display: flex;
      justify-content: space-between;
      gap: 1rem;
      padding: 0.25rem 1rem;
      font-size: clamp(0.8rem, 1.8vw, 1rem);
      color: #bbb;
      background: #111;
    }
  `;

  /** How long a result stays up before the attract screen returns. */
  @property({ type: Number, attribute: "result-ms" }) resultMs = 5000;

  /** The result on screen, if any; cleared by the timer. */
  @state() private shown: TapResult | undefined;

  /** The call-staff button's last outcome, shown in the footer. */
  @state() private staffCall: "idle" | "calling" | "called" | "failed" = "idle";

  /** The latest receipt notice; shown with the result it belongs to. */
  @state() private receipt: ReceiptNotice | undefined;

  private readonly live = new LiveController(this, {
    onResult: (r) => this.show(r),
    onReceipt: (r) => {
      this.receipt = r;
    },
  });
  private returnTimer: ReturnType<typeof setTimeout> | undefined;

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    clearTimeout(this.returnTimer);
    this.returnTimer = undefined;
    this.shown = undefined;
  }

  /** Which screen is up; exposed as `data-screen` for tests and kiosk monitoring. */
  get screen(): ScreenName {
    if (!this.live.connected) return "starting";
    return this.shown?.outcome ?? "attract";
  }

  private show(result: TapResult): void {
    this.shown = result;
    clearTimeout(this.returnTimer);
    this.returnTimer = setTimeout(() => {
      this.returnTimer = undefined;
      this.shown = undefined;
    }, this.holdMs());
    this.dispatchEvent(new CustomEvent<TapResult>("paylane-result", { detail: result, bubbles: true, composed: true }));
  }

  /** A bad `result-ms` (typo, negative) must not make results flash by unseen. */
  private holdMs(): number {
    return Number.isFinite(this.resultMs) && this.resultMs > 0 ? this.resultMs : 5000;
  }

  private async onCallStaff(): Promise<void> {
    this.staffCall = "calling";
    this.staffCall = (await postCallStaff()) ? "called" : "failed";
  }

  private onTapResult(event: CustomEvent<TapResult>): void {
    // The same result also arrives over the WebSocket; the controller shows it once.
    this.live.acceptResult(event.detail);
  }

  override render() {
    const state = this.live.state;
    const screen = this.screen;
    return html`<main data-testid="screen" data-screen=${screen} aria-live="polite">${this.renderScreen(screen)}</main>
      ${
        state?.reader.state === "disconnected"
          ? html`<paylane-sim-reader mode="code" @tap-result=${this.onTapResult}></paylane-sim-reader>`
          : state?.reader.simulated
            ? html`<paylane-sim-reader @tap-result=${this.onTapResult}></paylane-sim-reader>`
            : nothing
      }
      <footer>
        <span data-testid="kiosk-id">${state ? `${state.site} / ${state.device}` : "PayLane kiosk"}</span>
        ${state ? html`<span data-testid="backlog">Backlog ${state.backlog}</span>` : nothing}
        ${
          state
            ? html`<button
                class="call-staff"
                data-testid="call-staff"
                ?disabled=${this.staffCall === "calling"}
                @click=${this.onCallStaff}
              >
                ${
                  this.staffCall === "called"
                    ? "Staff is on the way"
                    : this.staffCall === "failed"
                      ? "Could not call staff. Try again"
                      : "Call staff"
                }
              </button>`
            : nothing
        }
      </footer>
      <paylane-offline-badge class="badge" ?offline=${state?.online === false}></paylane-offline-badge>`;
  }

  private renderScreen(screen: ScreenName) {
    if (screen === "starting") {
      return html`<div class="starting"><h1 data-testid="message">Kiosk starting…</h1></div>`;
    }
    if (screen === "attract" || !this.shown) {
      return html`<paylane-attract-screen
        .reader=${this.live.state?.reader.state ?? "ok"}
        .storage=${this.live.state?.storage ?? "ok"}
      ></paylane-attract-screen>`;
    }
    return html`<paylane-result-screen .result=${this.shown} .receipt=${this.receipt}></paylane-result-screen>`;
  }
}

declare global {
  interface HTMLElementTagNameMap {
    "paylane-kiosk": KioskApp;
  }
  interface HTMLElementEventMap {
    "paylane-result": CustomEvent<TapResult>;
  }
}
