import type { PaymentKind, PaymentResult, ReceiptNotice, TapResult } from "@paylane/protocol/kiosk-api";
import { css, html, LitElement, nothing } from "lit";
import { customElement, property, state } from "lit/decorators.js";
import { SetupController } from "../setup/setup-controller.ts";
import { isPaymentResult, postCallStaff } from "./api.ts";
import { LiveController } from "./live-controller.ts";
import { type PaymentChoice, PaymentFlow, type PaymentStep } from "./payment-flow.ts";
import "../setup/diagnostics-screen.ts";
import "../setup/setup-screen.ts";
import "./amount-keypad.ts";
import "./attract-screen.ts";
import "./mode-screen.ts";
import "./offline-badge.ts";
import "./pay-menu.ts";
import "./payment-result-screen.ts";
import "./payment-screen.ts";
import "./result-screen.ts";
import "./sim-reader.ts";

export type ScreenName =
  | "starting"
  | "setup"
  | "diagnostics"
  | "attract"
  | "maintenance"
  | "out-of-service"
  | TapResult["outcome"]
  | Exclude<PaymentStep["name"], "result">
  | PaymentResult["outcome"];

/**
 * The kiosk's touch UI: a live view of the local daemon, one screen at a time.
 * Tapping a card checks in; Pay and Top up lead through a payment (see
 * PaymentFlow), which the daemon runs and this follows.
 *
 * @fires paylane-result - CustomEvent<TapResult>, once per distinct result shown.
 * @fires paylane-payment-result - CustomEvent<PaymentResult>, once per payment result shown.
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

  /**
   * A payment screen left untouched this long is given up: a session is
   * cancelled at the daemon and the attract screen returns, so no half-done
   * payment waits for the next card.
   */
  @property({ type: Number, attribute: "idle-ms" }) idleMs = 60_000;

  /** How often the setup state is asked for while the kiosk is not enrolled. */
  @property({ type: Number, attribute: "setup-poll-ms" }) setupPollMs = 1000;

  /** The result on screen, if any; cleared by the timer. */
  @state() private shown: TapResult | undefined;

  /** The call-staff button's last outcome, shown in the footer. */
  @state() private staffCall: "idle" | "calling" | "called" | "failed" = "idle";

  /** The latest receipt notice; shown with the result it belongs to. */
  @state() private receipt: ReceiptNotice | undefined;

  /** A technician opened the diagnostics (`#diagnostics`, the setup screen's button, or a long press on the kiosk id). */
  @state() private diagnostics = location.hash === "#diagnostics";
  /** The daemon's refusal of the claim code just sent. */
  @state() private claimRefusal: string | undefined;

  private readonly live = new LiveController(this, {
    onResult: (r) => this.show(r),
    onReceipt: (r) => {
      this.receipt = r;
    },
    // Prices and readiness change when the kiosk syncs; a state change is a cheap moment to look.
    onState: () => void this.payments.refreshCatalog(),
    onPayment: (msg) => {
      if (msg.type === "payment-result") this.showPayment(msg.result);
      else this.payments.onLive(msg);
    },
  });
  private readonly payments = new PaymentFlow(this, {
    idleMs: () => this.screenIdleMs(),
    resultMs: () => this.holdMs(),
  });
  /** Until enrolled the daemon answers setup routes only: the setup screen instead of the live view. */
  private readonly setup = new SetupController(this, {
    pollMs: () => (this.setupPollMs > 0 ? this.setupPollMs : 1000),
    running: () => this.live.connected,
    // A fresh page for the enrolled kiosk: the daemon may have restarted into it, with a new local
    // token, and the live view connects at once instead of after its backoff.
    onDone: () => location.reload(),
  });
  private returnTimer: ReturnType<typeof setTimeout> | undefined;
  private longPressTimer: ReturnType<typeof setTimeout> | undefined;

  override connectedCallback(): void {
    super.connectedCallback();
    window.addEventListener("hashchange", this.onHashChange);
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    window.removeEventListener("hashchange", this.onHashChange);
    clearTimeout(this.returnTimer);
    this.returnTimer = undefined;
    clearTimeout(this.longPressTimer);
    this.shown = undefined;
  }

  /** Whenever the live view is down, the daemon may be in setup mode: ask it. */
  override updated(): void {
    if (!this.live.connected) this.setup.check();
  }

  private readonly onHashChange = (): void => {
    this.diagnostics = location.hash === "#diagnostics";
  };

  private openDiagnostics(): void {
    location.hash = "diagnostics";
  }

  private closeDiagnostics(): void {
    history.replaceState(null, "", location.pathname + location.search);
    this.diagnostics = false;
  }

  /** Holding the kiosk id for two seconds opens the diagnostics: out of a walk-up user's way. */
  private onIdPress(event: PointerEvent): void {
    if (event.type === "pointerdown") this.longPressTimer = setTimeout(() => this.openDiagnostics(), 2000);
    else clearTimeout(this.longPressTimer);
  }

  private async onClaim(event: CustomEvent<string>): Promise<void> {
    this.claimRefusal = undefined;
    this.claimRefusal = await this.setup.claim(event.detail);
  }

  /** Which screen is up; exposed as `data-screen` for tests and kiosk monitoring. */
  get screen(): ScreenName {
    if (this.diagnostics) return "diagnostics";
    if (this.setup.active) return "setup";
    if (!this.live.connected) return "starting";
    if (this.shown) return this.shown.outcome;
    const step = this.payments.step;
    if (step?.name === "result") return step.result.outcome;
    if (step) return step.name;
    // A payment already under way finishes first; then ops' mode takes the screen.
    const mode = this.live.state?.screen?.mode;
    return mode === "maintenance" || mode === "out-of-service" ? mode : "attract";
  }

  /** Ops may set the idle timeout (desired configuration); the `idle-ms` attribute is the default. */
  private screenIdleMs(): number {
    const seconds = this.live.state?.screen?.idleTimeoutSeconds;
    return seconds && seconds > 0 ? seconds * 1000 : this.idleMs;
  }

  private show(result: TapResult): void {
    // A check-in ends a payment that had not started at the daemon (a menu, the keypad, a result).
    if (this.payments.step && !this.payments.session) this.payments.exit();
    this.shown = result;
    clearTimeout(this.returnTimer);
    this.returnTimer = setTimeout(() => {
      this.returnTimer = undefined;
      this.shown = undefined;
    }, this.holdMs());
    this.dispatchEvent(new CustomEvent<TapResult>("paylane-result", { detail: result, bubbles: true, composed: true }));
  }

  /** A payment result, from the live socket or the simulated tap's answer: shown once, over any check-in. */
  private showPayment(result: PaymentResult): void {
    if (!this.payments.acceptResult(result)) return;
    clearTimeout(this.returnTimer);
    this.returnTimer = undefined;
    this.shown = undefined;
    this.dispatchEvent(
      new CustomEvent<PaymentResult>("paylane-payment-result", { detail: result, bubbles: true, composed: true }),
    );
  }

  /** A bad `result-ms` (typo, negative) must not make results flash by unseen. */
  private holdMs(): number {
    return Number.isFinite(this.resultMs) && this.resultMs > 0 ? this.resultMs : 5000;
  }

  private async onCallStaff(): Promise<void> {
    this.staffCall = "calling";
    this.staffCall = (await postCallStaff()) ? "called" : "failed";
  }

  private onTapResult(event: CustomEvent<TapResult | PaymentResult>): void {
    // The same result also arrives over the WebSocket; each is shown once.
    const result = event.detail;
    if (isPaymentResult(result)) this.showPayment(result);
    else this.live.acceptResult(result);
  }

  /** Any touch or key while paying restarts the idle countdown. */
  private onActivity(): void {
    this.payments.touch();
  }

  private onPaymentStart(event: CustomEvent<PaymentKind>): void {
    this.payments.start(event.detail);
  }

  private onPaymentChoose(event: CustomEvent<PaymentChoice>): void {
    void this.payments.choose(event.detail);
  }

  /** Pay and Top up are offered once the catalog is ready and a card can be tapped and recorded. */
  private canPay(): { pay: boolean; topup: boolean } {
    const state = this.live.state;
    const catalog = this.payments.catalog;
    const usable = this.payments.ready && state?.storage !== "failing" && state?.reader.state !== "disconnected";
    return {
      pay: usable,
      // A top-up is paid at the terminal: not offered while its line is down (hot-plug), back once it returns.
      topup:
        usable && catalog?.topups === true && catalog.topupAmounts.length > 0 && state?.terminal !== "disconnected",
    };
  }

  override render() {
    const state = this.live.state;
    const screen = this.screen;
    return html`<main
        data-testid="screen"
        data-screen=${screen}
        data-payment=${this.payments.session?.state ?? nothing}
        aria-live="polite"
        @pointerdown=${this.onActivity}
        @keydown=${this.onActivity}
        @payment-start=${this.onPaymentStart}
        @payment-choose=${this.onPaymentChoose}
        @payment-keypad=${() => this.payments.openKeypad()}
        @payment-back=${() => this.payments.back()}
        @payment-cancel=${() => void this.payments.cancel()}
        @setup-claim=${this.onClaim}
        @open-diagnostics=${this.openDiagnostics}
        @close-diagnostics=${this.closeDiagnostics}
      >
        ${this.renderScreen(screen)}
      </main>
      ${
        state?.reader.state === "disconnected"
          ? html`<paylane-sim-reader mode="code" @tap-result=${this.onTapResult}></paylane-sim-reader>`
          : state?.reader.simulated
            ? html`<paylane-sim-reader @tap-result=${this.onTapResult}></paylane-sim-reader>`
            : nothing
      }
      <footer>
        <span
          data-testid="kiosk-id"
          @pointerdown=${this.onIdPress}
          @pointerup=${this.onIdPress}
          @pointerleave=${this.onIdPress}
          @pointercancel=${this.onIdPress}
          >${state ? `${state.site} / ${state.device}` : "PayLane kiosk"}</span
        >
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
    if (screen === "diagnostics") return html`<paylane-diagnostics-screen></paylane-diagnostics-screen>`;
    if (screen === "setup") {
      return html`<paylane-setup-screen
        .state=${this.setup.state}
        .error=${this.setup.error}
        ?busy=${this.setup.busy}
        .refusal=${this.claimRefusal}
        .accepted=${this.setup.accepted}
      ></paylane-setup-screen>`;
    }
    if (screen === "starting") {
      return html`<div class="starting"><h1 data-testid="message">Kiosk starting…</h1></div>`;
    }
    if ((screen === "maintenance" || screen === "out-of-service") && !this.shown) {
      return html`<paylane-mode-screen
        mode=${screen}
        .texts=${this.live.state?.screen?.texts ?? {}}
      ></paylane-mode-screen>`;
    }
    if (this.shown) {
      return html`<paylane-result-screen .result=${this.shown} .receipt=${this.receipt}></paylane-result-screen>`;
    }
    const flow = this.payments;
    const step = flow.step;
    switch (step?.name) {
      case "pay":
      case "topup":
        return html`<paylane-pay-menu
          .catalog=${flow.catalog}
          kind=${step.name === "topup" ? "topup" : "purchase"}
          ?busy=${flow.busy}
          .error=${flow.error}
        ></paylane-pay-menu>`;
      case "amount":
        return html`<paylane-amount-keypad
          currency=${flow.catalog?.currency ?? "EUR"}
          .max=${flow.catalog?.maxAmount ?? 0}
          ?busy=${flow.busy}
          .error=${flow.error}
        ></paylane-amount-keypad>`;
      case "payment":
        return html`<paylane-payment-screen
          .session=${step.session}
          ?busy=${flow.busy}
          .error=${flow.error}
        ></paylane-payment-screen>`;
      case "result":
        return html`<paylane-payment-result-screen
          .result=${step.result}
          .receipt=${this.receipt}
        ></paylane-payment-result-screen>`;
      default: {
        const can = this.canPay();
        return html`<paylane-attract-screen
          .welcome=${this.live.state?.screen?.texts?.welcome ?? ""}
          .reader=${this.live.state?.reader.state ?? "ok"}
          .storage=${this.live.state?.storage ?? "ok"}
          ?pay=${can.pay}
          ?topup=${can.topup}
        ></paylane-attract-screen>`;
      }
    }
  }
}

declare global {
  interface HTMLElementTagNameMap {
    "paylane-kiosk": KioskApp;
  }
  interface HTMLElementEventMap {
    "paylane-result": CustomEvent<TapResult>;
    "paylane-payment-result": CustomEvent<PaymentResult>;
  }
}
