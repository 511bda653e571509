/**
 * Publishes the kiosk's `telemetry` every `everyMs`, and at once when a
 * peripheral's health or the printer's paper changes (ops should see "paper
 * out" or a board reconnecting before a user does).
 */
import type { KioskMode } from "@paylane/protocol";
import { readBoardHealth } from "../board-health.ts";
import type { TerminalHealth } from "../hardware/terminal/factory.ts";
import type { Journal } from "../journal.ts";
import type { PaymentDesk } from "../payments/payment-desk.ts";
import type { Peripherals } from "../peripherals.ts";
import type { Replica } from "../replica.ts";
import type { StorageMonitor } from "../storage-monitor.ts";
import { kioskTelemetry } from "../telemetry.ts";
import type { Uplink } from "../uplink.ts";
import { DEVICE_VERSION } from "../version.ts";
import { type KioskEvents, listen } from "./events.ts";
import { Every } from "./every.ts";
import type { KioskKit } from "./kit.ts";
import type { Part } from "./lifecycle.ts";

export interface TelemetrySources {
  journal: Journal;
  replica: Replica;
  payments: PaymentDesk;
  peripherals: Peripherals;
  storage: StorageMonitor;
  uplink: Uplink;
  /** The card terminal's health; null: none configured. */
  terminal?: () => TerminalHealth | null;
  /** The operating mode and the configuration version in force (kiosk-mode.ts, config-desk.ts). */
  settings?: () => { mode: KioskMode; configVersion: number };
}

export class TelemetryPublisher implements Part {
  readonly name = "telemetry";
  readonly #k: KioskKit;
  readonly #o: TelemetrySources;
  readonly #every: Every;
  #unlisten = () => {};

  constructor(kit: KioskKit, sources: TelemetrySources) {
    this.#k = kit;
    this.#o = sources;
    this.#every = new Every(kit, this.name, kit.config.telemetryMs, () => this.#send());
  }

  start(): void {
    this.#unlisten = listen(this.#k.bus, { "peripheral-changed": this.#onPeripheral });
    this.#every.start();
  }

  stop(): void {
    this.#unlisten();
    this.#every.stop();
  }

  /** How often telemetry goes out; ops change it live (desired configuration `telemetryIntervalSeconds`). */
  get intervalMs(): number {
    return this.#every.everyMs;
  }

  setIntervalMs(ms: number): void {
    if (ms === this.#every.everyMs) return;
    this.#every.setEveryMs(ms);
    this.#k.log.info({ intervalMs: ms }, "telemetry interval changed");
  }

  /** Publishes now instead of at the next tick. */
  sendNow(): Promise<void> {
    return this.#every.runNow();
  }

  readonly #onPeripheral = (..._: KioskEvents["peripheral-changed"]) => {
    void this.sendNow();
  };

  async #send(): Promise<void> {
    const { uplink } = this.#o;
    // Telemetry is QoS 0 and never queued: while the broker is away, nothing to read for.
    if (!uplink.brokerConnected) return;
    uplink.publishTelemetry(
      kioskTelemetry({
        now: this.#k.now(),
        bootedAt: this.#k.bootedAt,
        journal: await this.#o.journal.stats(),
        replica: await this.#o.replica.info(),
        peripherals: this.#o.peripherals.health(),
        storage: this.#o.storage.status.state,
        payments: await this.#o.payments.exposure(),
        board: await readBoardHealth(this.#k.config.dataDir),
        deviceVersion: DEVICE_VERSION,
        ackLatencySeconds: uplink.takeSlowestAckSeconds(),
        ...(this.#o.terminal ? { terminal: this.#o.terminal() } : {}),
        ...this.#o.settings?.(),
      }),
    );
  }
}
