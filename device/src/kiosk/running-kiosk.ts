/**
 * What the owner of a running kiosk (main, tests, benches, demos) reaches:
 * its parts, and a few conveniences for simulated cards. The daemon
 * (daemon.ts) builds the parts; this only hands them out.
 */
import type { StaffCallBody } from "@paylane/protocol";
import type { KioskState, PaymentResult, TapResult } from "@paylane/protocol/kiosk-api";
import type { TerminalSetup } from "../hardware/terminal/factory.ts";
import type { Journal } from "../journal.ts";
import type { PaymentDesk } from "../payments/payment-desk.ts";
import type { Peripherals } from "../peripherals.ts";
import type { ReplicaSync } from "../replica-sync.ts";
import type { Uplink } from "../uplink.ts";
import type { CommandDesk } from "./command-desk.ts";
import type { ConfigDesk } from "./config-desk.ts";
import type { FrontDesk } from "./front-desk.ts";
import type { OperatingMode } from "./kiosk-mode.ts";
import type { KioskStatus } from "./kiosk-status.ts";
import type { LocalApiServer } from "./local-api-server.ts";
import type { SimulatedTaps } from "./simulated-taps.ts";
import type { TelemetryPublisher } from "./telemetry-publisher.ts";

export interface KioskParts {
  journal: Journal;
  uplink: Uplink;
  payments: PaymentDesk;
  peripherals: Peripherals;
  sync: ReplicaSync;
  terminal: TerminalSetup;
  desk: FrontDesk;
  status: KioskStatus;
  api: LocalApiServer;
  telemetry: TelemetryPublisher;
  taps: SimulatedTaps;
  mode: OperatingMode;
  commands: CommandDesk;
  configDesk: ConfigDesk;
}

export abstract class RunningKiosk {
  protected running: KioskParts | undefined;

  constructor(readonly address: { site: string; device: string }) {}

  #parts(): KioskParts {
    if (!this.running) throw new Error("daemon is not started");
    return this.running;
  }

  get journal(): Journal {
    return this.#parts().journal;
  }

  get uplink(): Uplink {
    return this.#parts().uplink;
  }

  get payments(): PaymentDesk {
    return this.#parts().payments;
  }

  get peripherals(): Peripherals {
    return this.#parts().peripherals;
  }

  get replicaSync(): ReplicaSync {
    return this.#parts().sync;
  }

  /** The operating mode (in service, maintenance, out of service) and the screen's settings. */
  get mode(): OperatingMode {
    return this.#parts().mode;
  }

  /** Where `cmd/{name}` is answered. */
  get commands(): CommandDesk {
    return this.#parts().commands;
  }

  /** Where the desired configuration is applied and reported. */
  get configDesk(): ConfigDesk {
    return this.#parts().configDesk;
  }

  /** The local API's port. */
  get port(): number {
    return this.#parts().api.port;
  }

  /** The in-process simulated card terminal (terminal.type "zvt-simulator"), for tests and demos. */
  get terminalSimulator() {
    return this.running?.terminal.simulator;
  }

  /** The screen's view of the kiosk. */
  state(): Promise<KioskState> {
    return this.#parts().status.state();
  }

  /** Places a card on the simulated reader and waits for whatever the kiosk answers (check-in or payment). */
  present(uid: string): Promise<TapResult | PaymentResult> {
    return this.#parts().taps.present(uid);
  }

  /** A simulated tap that must check in. */
  async tap(uid: string): Promise<TapResult> {
    const answer = await this.present(uid);
    if ("sessionId" in answer) throw new Error("the card paid for the payment in progress instead of checking in");
    return answer;
  }

  /** A simulated tap for the payment waiting for a card (see `payments.start`). */
  async tapToPay(uid: string): Promise<PaymentResult> {
    const answer = await this.present(uid);
    if (!("sessionId" in answer)) throw new Error("no payment was waiting for the card: it checked in instead");
    return answer;
  }

  /** Journals a staff call (an alert for ops, delivered exactly once like any entry). */
  callStaff(source: StaffCallBody["source"]): Promise<void> {
    return this.#parts().desk.callStaff(source);
  }

  /** Exercises every peripheral (the relay is checked, never pulsed). */
  selfTest() {
    return this.#parts().peripherals.selfTest();
  }

  /** Publishes telemetry now instead of at the next tick (tests, and after a change ops should see at once). */
  sendTelemetryNow(): Promise<void> {
    return this.#parts().telemetry.sendNow();
  }
}
