/**
 * Where a walk-up user's action becomes a decision: a card or a code checks
 * in (or pays, while a payment waits for a card), and a staff call is
 * journaled. What happened goes on the bus; LEDs, screens and receipts follow.
 */
import type { Credential, StaffCallBody } from "@paylane/protocol";
import type { PaymentResult, TapResult } from "@paylane/protocol/kiosk-api";
import type { CheckinDesk } from "../checkin-desk.ts";
import type { Journal } from "../journal.ts";
import type { PaymentDesk } from "../payments/payment-desk.ts";
import type { PeripheralHandlers } from "../peripherals.ts";
import type { OperatingMode } from "./kiosk-mode.ts";
import type { KioskKit } from "./kit.ts";

export interface FrontDeskDeps {
  checkin: CheckinDesk;
  payments: PaymentDesk;
  journal: Journal;
  /** Outside "in-service" (maintenance, out of service) walk-up users are refused politely. */
  mode?: Pick<OperatingMode, "serving" | "refusal">;
}

export class FrontDesk {
  readonly #k: KioskKit;
  readonly #o: FrontDeskDeps;

  constructor(kit: KioskKit, deps: FrontDeskDeps) {
    this.#k = kit;
    this.#o = deps;
  }

  /**
   * A card on the reader: it pays while a payment waits for one (a customer
   * already paying finishes, whatever the mode), otherwise it checks in.
   */
  onCard(uid: string): Promise<TapResult | PaymentResult> {
    const { payments } = this.#o;
    return payments.awaitingCard ? this.#busy(() => payments.onCard(uid)) : this.decide({ type: "card", uid });
  }

  /** One check-in decision from any credential source; refused politely outside service, nothing journaled. */
  async decide(credential: Credential): Promise<TapResult> {
    const mode = this.#o.mode;
    if (mode && !mode.serving) {
      const refusal = mode.refusal();
      this.#k.log.info({ via: credential.type }, "credential presented outside service: refused politely");
      this.#k.bus.emit("tap-decided", refusal, credential);
      return refusal;
    }
    const result = await this.#busy(() => this.#o.checkin.decide(credential));
    // The UID identifies a card, not a payment instrument, but it still stays out of info logs.
    this.#k.log.info({ outcome: result.outcome, seq: result.seq, via: credential.type }, "credential presented");
    this.#k.bus.emit("tap-decided", result, credential);
    return result;
  }

  /** Journals a staff call (an alert for ops, delivered exactly once like any entry). */
  callStaff(source: StaffCallBody["source"]): Promise<void> {
    return this.#k.work.track(this.#callStaff(source));
  }

  async #callStaff(source: StaffCallBody["source"]): Promise<void> {
    const body: StaffCallBody = { source };
    await this.#o.journal.append("staff-call", body, this.#k.now());
    this.#k.log.warn({ source }, "staff called");
    this.#k.bus.emit("staff-called", body);
  }

  /** Runs a decision with "busy" on the bus meanwhile; stopping the kiosk waits for it. */
  #busy<T>(decide: () => Promise<T>): Promise<T> {
    const { bus } = this.#k;
    const run = async () => {
      bus.emit("decision-busy", true);
      try {
        return await decide();
      } finally {
        bus.emit("decision-busy", false);
      }
    };
    return this.#k.work.track(run());
  }
}

/** What the peripherals report: a card goes to the desk, the button calls staff, changes go on the bus. */
export function peripheralHandlers({ bus, log }: KioskKit, desk: FrontDesk): PeripheralHandlers {
  return {
    onCard: (uid) => desk.onCard(uid),
    onCallStaff: () =>
      void desk.callStaff("button").catch((err: Error) => log.error({ err: err.message }, "staff call not journaled")),
    onChange: () => bus.emit("peripheral-changed", "state"),
    onPaper: () => bus.emit("peripheral-changed", "paper"),
  };
}
