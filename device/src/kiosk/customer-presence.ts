/**
 * Whether a customer is at the kiosk right now: a decision being made, or a
 * payment session open (waiting for a card, being authorized, at the
 * terminal). `reboot` waits for a quiet moment so nobody is cut off mid-payment.
 */
import { type KioskEvents, listen } from "./events.ts";
import type { KioskKit } from "./kit.ts";
import type { Part } from "./lifecycle.ts";

export class CustomerPresence implements Part {
  readonly name = "customer presence";
  readonly #k: KioskKit;
  #deciding = 0;
  #session: string | undefined;
  #waiters: Array<() => void> = [];
  #unlisten = () => {};

  constructor(kit: KioskKit) {
    this.#k = kit;
  }

  start(): void {
    this.#unlisten = listen(this.#k.bus, { "decision-busy": this.#onBusy, "payment-progressed": this.#onPayment });
  }

  stop(): void {
    this.#unlisten();
    this.#wake(); // nobody waits on a kiosk that is stopping
  }

  get busy(): boolean {
    return this.#deciding > 0 || this.#session !== undefined;
  }

  /** Resolves at once when nobody is being served, else when the current customer is done. */
  quiet(): Promise<void> {
    if (!this.busy) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  readonly #onBusy = (...[busy]: KioskEvents["decision-busy"]) => {
    this.#deciding = Math.max(0, this.#deciding + (busy ? 1 : -1));
    this.#settle();
  };

  readonly #onPayment = (...[p]: KioskEvents["payment-progressed"]) => {
    if (p.step === "session") this.#session = p.session.id;
    else this.#session = undefined;
    this.#settle();
  };

  #settle(): void {
    // A payment's answer and the end of its decision arrive together: wait for the same turn to finish.
    if (!this.busy) queueMicrotask(() => !this.busy && this.#wake());
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }
}
