import type { Catalog, PaymentKind, PaymentResult, PaymentSession } from "@paylane/protocol/kiosk-api";
import type { ReactiveController, ReactiveControllerHost } from "lit";
import { type Answer, getCatalog, postCancelPayment, postPayment, postTopup } from "./api.ts";
import type { PaymentMessage } from "./live-controller.ts";

/** Where the member is in a payment; undefined is "not paying" (the attract screen). */
export type PaymentStep =
  /** The price list, with "Other amount". */
  | { name: "pay" }
  /** The keypad for another amount. */
  | { name: "amount" }
  /** The top-up amounts. */
  | { name: "topup" }
  /** A session at the daemon: tap a card, authorizing, or pay at the terminal. */
  | { name: "payment"; session: PaymentSession }
  /** Approved or declined, until `resultMs` has passed. */
  | { name: "result"; result: PaymentResult };

export type PaymentChoice = { itemId: string } | { amount: number };

export interface PaymentFlowOptions {
  /** A payment screen left untouched this long is given up (a session is cancelled first). */
  idleMs: () => number;
  /** How long a payment result stays up. */
  resultMs: () => number;
  /** How often the price list is fetched again (it changes when the kiosk syncs). */
  catalogPollMs?: number;
}

/** Session ids remembered (ended, results shown); sessions come one at a time, so a few suffice. */
const REMEMBER_LIMIT = 32;

function remember(list: string[], id: string): void {
  if (list.includes(id)) return;
  list.push(id);
  if (list.length > REMEMBER_LIMIT) list.shift();
}

/**
 * The payment side of the kiosk: the catalog, the step the member is on, the
 * session at the daemon and the two timers that keep a payment from being
 * left half-done (idle: cancel and go back; result: back after a while).
 *
 * The daemon owns the session; this follows it from the POST answer and the
 * live messages, whichever comes first, and never shows one session twice.
 */
export class PaymentFlow implements ReactiveController {
  catalog: Catalog | undefined;
  step: PaymentStep | undefined;
  /** A request to the daemon is in flight: the buttons that would send another are disabled. */
  busy = false;
  /** Why the last request failed, for the screen to show. */
  error: string | undefined;

  private readonly host: ReactiveControllerHost;
  private readonly options: PaymentFlowOptions;
  private idleTimer: ReturnType<typeof setTimeout> | undefined;
  private resultTimer: ReturnType<typeof setTimeout> | undefined;
  private pollTimer: ReturnType<typeof setTimeout> | undefined;
  private catalogLoading = false;
  /** A refresh was asked for while one was in flight: its answer may predate the change. */
  private catalogStale = false;
  private connected = false;
  /** Sessions that are over, so a late `payment` message cannot bring one back. */
  private readonly ended: string[] = [];
  /** Sessions whose result was shown: the HTTP answer and the live push are one result. */
  private readonly results: string[] = [];

  constructor(host: ReactiveControllerHost, options: PaymentFlowOptions) {
    this.host = host;
    this.options = options;
    host.addController(this);
  }

  hostConnected(): void {
    this.connected = true;
    void this.refreshCatalog();
  }

  hostDisconnected(): void {
    this.connected = false;
    clearTimeout(this.pollTimer);
    this.pollTimer = undefined;
    this.clearTimers();
    this.step = undefined;
    this.busy = false;
    this.error = undefined;
  }

  /** The session on screen, if any. */
  get session(): PaymentSession | undefined {
    return this.step?.name === "payment" ? this.step.session : undefined;
  }

  /** Payments can be started: the daemon has its prices and wallets. */
  get ready(): boolean {
    return this.catalog?.ready === true;
  }

  /** Fetch the catalog now (and again every `catalogPollMs`). A failed fetch hides payments until the next. */
  async refreshCatalog(): Promise<void> {
    if (!this.connected) return;
    if (this.catalogLoading) {
      this.catalogStale = true;
      return;
    }
    this.catalogLoading = true;
    clearTimeout(this.pollTimer);
    do {
      this.catalogStale = false;
      const res: Answer<Catalog> = await getCatalog();
      if (!this.connected) break;
      this.catalog = res.ok ? res.result : undefined;
    } while (this.catalogStale);
    this.catalogLoading = false;
    if (!this.connected) return;
    this.pollTimer = setTimeout(() => void this.refreshCatalog(), this.options.catalogPollMs ?? 30_000);
    this.host.requestUpdate();
  }

  /** The attract screen's Pay or Top up button. */
  start(kind: PaymentKind): void {
    if (!this.ready) return;
    this.go(kind === "topup" ? { name: "topup" } : { name: "pay" });
  }

  /** "Other amount" on the price list. */
  openKeypad(): void {
    if (this.step?.name === "pay") this.go({ name: "amount" });
  }

  /** Back: from the keypad to the price list, from a list to the attract screen. */
  back(): void {
    if (this.busy) return;
    if (this.step?.name === "amount") this.go({ name: "pay" });
    else if (this.step?.name === "pay" || this.step?.name === "topup") this.exit();
  }

  /** An item, a typed amount or a top-up amount was chosen: ask the daemon for a session. */
  async choose(choice: PaymentChoice): Promise<void> {
    const step = this.step?.name;
    if (this.busy || (step !== "pay" && step !== "amount" && step !== "topup")) return;
    this.busy = true;
    this.error = undefined;
    this.host.requestUpdate();
    const res = step === "topup" && "amount" in choice ? await postTopup(choice.amount) : await postPayment(choice);
    this.busy = false;
    // The member went back, or the session's live messages got here first (and maybe already ended it).
    if (this.step?.name !== step) {
      // A session made after the member had left: cancel it, so no later tap pays for it.
      if (res.ok && this.step === undefined && !this.ended.includes(res.result.id)) void postCancelPayment();
      this.host.requestUpdate();
      return;
    }
    if (res.ok) this.onSession(res.result);
    else this.error = res.error;
    this.touch();
    this.host.requestUpdate();
  }

  /** Cancel: the session is cancelled at the daemon first, so no card tapped later pays for it. */
  async cancel(): Promise<void> {
    const session = this.session;
    if (!session) {
      this.exit();
      return;
    }
    if (this.busy || session.state === "authorizing") return;
    this.busy = true;
    this.error = undefined;
    this.host.requestUpdate();
    const res = await postCancelPayment();
    this.busy = false;
    if (this.session?.id !== session.id) {
      // A result or an end arrived meanwhile and has its own screen.
      this.host.requestUpdate();
      return;
    }
    if (res.ok) {
      remember(this.ended, session.id);
      this.exit();
    } else if (res.status === 409) {
      // The card is being authorized: the result decides, and cancelling is no longer offered.
      this.step = { name: "payment", session: { ...session, state: "authorizing" } };
      this.touch();
    } else {
      // Stay on the session (it is still live at the daemon); the idle timer tries again.
      this.error = `Could not cancel: ${res.error}`;
      this.touch();
    }
    this.host.requestUpdate();
  }

  /** Any touch or key on a payment screen: the idle countdown starts again. */
  touch(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    const step = this.step?.name;
    if (step === undefined || step === "result") return;
    const ms = this.options.idleMs();
    this.idleTimer = setTimeout(() => this.onIdle(), Number.isFinite(ms) && ms > 0 ? ms : 60_000);
  }

  /** A live message about payments. */
  onLive(msg: PaymentMessage): void {
    if (msg.type === "payment") {
      this.onSession(msg.session);
    } else if (msg.type === "payment-result") {
      this.acceptResult(msg.result);
    } else {
      remember(this.ended, msg.sessionId);
      if (this.session?.id === msg.sessionId) this.exit();
    }
    this.host.requestUpdate();
  }

  /**
   * A payment result, from the live socket or from the simulated tap's HTTP
   * answer. Returns false when this session's result is already shown.
   */
  acceptResult(result: PaymentResult): boolean {
    // Shown even for a session this screen had given up on: whoever tapped must see what happened.
    if (this.results.includes(result.sessionId)) return false;
    remember(this.results, result.sessionId);
    remember(this.ended, result.sessionId);
    this.clearTimers();
    this.busy = false;
    this.error = undefined;
    this.step = { name: "result", result };
    this.resultTimer = setTimeout(() => this.exit(), this.options.resultMs());
    this.host.requestUpdate();
    return true;
  }

  /** Back to the attract screen. */
  exit(): void {
    this.clearTimers();
    this.step = undefined;
    this.busy = false;
    this.error = undefined;
    this.host.requestUpdate();
  }

  private onSession(session: PaymentSession): void {
    if (this.ended.includes(session.id)) return;
    this.step = { name: "payment", session };
    this.error = undefined;
    // A change of state is the member doing something (a card tapped, a terminal reached).
    this.touch();
  }

  private onIdle(): void {
    this.idleTimer = undefined;
    const session = this.session;
    if (!session) {
      this.exit();
      return;
    }
    if (session.state === "authorizing" || this.busy) {
      // Not cancellable now; the result ends it. Check again later.
      this.touch();
      return;
    }
    void this.cancel();
  }

  private go(step: PaymentStep): void {
    clearTimeout(this.resultTimer);
    this.resultTimer = undefined;
    this.step = step;
    this.error = undefined;
    this.touch();
    this.host.requestUpdate();
  }

  private clearTimers(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    clearTimeout(this.resultTimer);
    this.resultTimer = undefined;
  }
}
