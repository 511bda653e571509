/**
 * Cards placed on the simulated PN532 (tests, demos, POST /api/sim/tap): one
 * at a time, the way a card must leave the field before the next is placed.
 */
import type { PaymentResult, TapResult } from "@paylane/protocol/kiosk-api";
import type { Pn532Simulator } from "../hardware/pn532/simulator.ts";
import type { Timers } from "../timers.ts";
import type { KioskBus, KioskEvents } from "./events.ts";
import type { KioskKit } from "./kit.ts";

/** How long a tap waits for the reader to see a simulated card. */
const SIMULATED_TAP_TIMEOUT_MS = 5000;

export class SimulatedTaps {
  readonly #bus: KioskBus;
  readonly #timers: Timers;
  readonly #reader: () => Pn532Simulator | undefined;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(kit: Pick<KioskKit, "bus" | "timers">, reader: () => Pn532Simulator | undefined) {
    this.#bus = kit.bus;
    this.#timers = kit.timers;
    this.#reader = reader;
  }

  /**
   * Places a card, waits for whatever the kiosk answers (check-in or
   * payment), takes the card away and waits until the reader has seen the
   * empty field, so the same card can be tapped next.
   */
  present(uid: string): Promise<TapResult | PaymentResult> {
    const sim = this.#reader();
    if (!sim) return Promise.reject(new Error("this kiosk's reader is not simulated"));
    const run = this.#queue.then(async () => {
      const answered = this.#answerTo(uid);
      sim.placeCard(uid);
      try {
        return await answered;
      } finally {
        sim.removeCard();
        await this.#within(sim.nextPoll(), SIMULATED_TAP_TIMEOUT_MS);
      }
    });
    this.#queue = run.catch(() => {});
    return run;
  }

  /**
   * The kiosk's answer to this card: its check-in, or the payment it paid
   * (a code typed on screen meanwhile is another credential's answer).
   */
  #answerTo(uid: string): Promise<TapResult | PaymentResult> {
    const card = sameUid(uid);
    return new Promise((resolve, reject) => {
      const done = () => {
        this.#timers.clearTimeout(timer);
        this.#bus.off("tap-decided", onTap);
        this.#bus.off("payment-progressed", onPayment);
      };
      const timer = this.#timers.setTimeout(() => {
        done();
        reject(new Error(`the reader did not report the card within ${SIMULATED_TAP_TIMEOUT_MS} ms`));
      }, SIMULATED_TAP_TIMEOUT_MS);
      const onTap = (...[result, credential]: KioskEvents["tap-decided"]) => {
        if (credential.type !== "card" || !card(credential.uid)) return;
        done();
        resolve(result);
      };
      const onPayment = (...[p]: KioskEvents["payment-progressed"]) => {
        if (p.step !== "answered") return;
        done();
        resolve(p.result);
      };
      this.#bus.on("tap-decided", onTap);
      this.#bus.on("payment-progressed", onPayment);
    });
  }

  /** `p`, or nothing once `ms` passed (a reader that stopped polling must not wedge the next tap). */
  async #within(p: Promise<void>, ms: number): Promise<void> {
    let timer: unknown;
    await Promise.race([p, new Promise<void>((resolve) => (timer = this.#timers.setTimeout(resolve, ms)))]);
    this.#timers.clearTimeout(timer);
  }
}

/** Whether a UID is `uid`, whatever its case or separators ("04:a2:…" is "04A2…"). */
function sameUid(uid: string): (other: string) => boolean {
  const norm = (u: string) => u.replace(/[^0-9a-f]/gi, "").toUpperCase();
  const want = norm(uid);
  return (other) => norm(other) === want;
}
