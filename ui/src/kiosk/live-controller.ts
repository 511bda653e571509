import type { KioskState, LiveMessage, ReceiptNotice, TapResult } from "@paylane/protocol/kiosk-api";
import type { ReactiveController, ReactiveControllerHost } from "lit";
import { liveUrl, parseLiveMessage, resultKey } from "./api.ts";

export interface LiveOptions {
  /** WebSocket URL; defaults to `/api/live` on the page's origin. */
  url?: string;
  /** First reconnect delay; doubles per failed attempt up to `maxBackoffMs`. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Called once per distinct result, whichever way (WebSocket or HTTP) it came first. */
  onResult?: (result: TapResult) => void;
  /** What became of a result's receipt (printed, or offered as a QR code). */
  onReceipt?: (receipt: ReceiptNotice) => void;
  /** Every `state` message, the first on each connection included. */
  onState?: (state: KioskState) => void;
  /** `payment`, `payment-result` and `payment-ended` messages, as they come. */
  onPayment?: (msg: PaymentMessage) => void;
}

export type PaymentMessage = Extract<LiveMessage, { type: "payment" | "payment-result" | "payment-ended" }>;

/** Results remembered for de-duplication; a tap arrives at most twice, close together. */
const SEEN_LIMIT = 64;

/**
 * Keeps a live view of the kiosk daemon: opens WS /api/live when the host
 * connects, reconnects with backoff while the daemon restarts, and closes
 * everything when the host disconnects.
 *
 * `state` is undefined until the daemon's first `state` message on the
 * current socket, and again as soon as the socket drops, so the host never
 * renders a stale picture of a daemon it cannot hear.
 */
export class LiveController implements ReactiveController {
  state: KioskState | undefined;
  lastResult: TapResult | undefined;

  private readonly host: ReactiveControllerHost;
  private readonly options: LiveOptions;
  private socket: WebSocket | undefined;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private attempt = 0;
  private readonly seen: string[] = [];

  constructor(host: ReactiveControllerHost, options: LiveOptions = {}) {
    this.host = host;
    this.options = options;
    host.addController(this);
  }

  /** True while the daemon is reachable and has told us its state. */
  get connected(): boolean {
    return this.state !== undefined;
  }

  hostConnected(): void {
    this.open();
  }

  hostDisconnected(): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const socket = this.socket;
    // Cleared first so the close listener knows this close was ours and does not reconnect.
    this.socket = undefined;
    socket?.close();
    this.state = undefined;
  }

  /**
   * Accept a result from outside the socket (the simulated tap's HTTP answer).
   * Returns false when this result was already seen.
   */
  acceptResult(result: TapResult): boolean {
    const key = resultKey(result);
    if (this.seen.includes(key)) return false;
    this.seen.push(key);
    if (this.seen.length > SEEN_LIMIT) this.seen.shift();
    this.lastResult = result;
    this.options.onResult?.(result);
    this.host.requestUpdate();
    return true;
  }

  private open(): void {
    this.retryTimer = undefined;
    let socket: WebSocket;
    try {
      socket = new WebSocket(this.options.url ?? liveUrl());
    } catch {
      // Only a malformed URL throws here; retrying keeps the behaviour uniform.
      this.scheduleReconnect();
      return;
    }
    this.socket = socket;
    socket.addEventListener("message", (event: MessageEvent<unknown>) => {
      if (this.socket !== socket) return;
      const msg = parseLiveMessage(event.data);
      if (!msg) {
        console.warn("paylane-kiosk: ignoring an unknown live message", event.data);
        return;
      }
      if (msg.type === "state") {
        // A state proves the daemon is up and serving, so the next outage starts from a short delay again.
        this.attempt = 0;
        this.state = msg.state;
        this.options.onState?.(msg.state);
        this.host.requestUpdate();
      } else if (msg.type === "result") {
        this.acceptResult(msg.result);
      } else if (msg.type === "receipt") {
        this.options.onReceipt?.(msg.receipt);
        this.host.requestUpdate();
      } else {
        this.options.onPayment?.(msg);
        this.host.requestUpdate();
      }
    });
    // An `error` event is always followed by `close`, so `close` alone drives reconnection.
    socket.addEventListener("close", () => {
      if (this.socket !== socket) return;
      this.socket = undefined;
      this.state = undefined;
      this.host.requestUpdate();
      this.scheduleReconnect();
    });
  }

  private scheduleReconnect(): void {
    const min = this.options.minBackoffMs ?? 250;
    const max = this.options.maxBackoffMs ?? 5000;
    const ceiling = Math.min(max, min * 2 ** this.attempt);
    this.attempt += 1;
    // Jitter so that several UIs on one daemon (e.g. a kiosk plus a service laptop) do not retry in lockstep.
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.retryTimer = setTimeout(() => this.open(), delay);
  }
}
