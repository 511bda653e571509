/**
 * What the kiosk's panel shows a walk-up user without a screen: a beep for
 * yes, the refusal tone for no, the door relay for a welcome, and the status
 * LED (fault beats offline beats busy beats idle). It only listens to the bus.
 */
import type { LedPattern } from "../hardware/gpio/status-led.ts";
import type { Peripherals } from "../peripherals.ts";
import type { StorageMonitor } from "../storage-monitor.ts";
import type { Uplink } from "../uplink.ts";
import { type KioskBus, type KioskEvents, listen } from "./events.ts";
import type { KioskKit } from "./kit.ts";
import type { Part } from "./lifecycle.ts";

export interface PanelSignalsDeps {
  peripherals: Peripherals;
  storage: StorageMonitor;
  uplink: Uplink;
}

export class PanelSignals implements Part {
  readonly name = "panel signals";
  readonly #bus: KioskBus;
  readonly #o: PanelSignalsDeps;
  /** Decisions in progress, for the status LED's "busy". */
  #deciding = 0;
  #unlisten = () => {};

  constructor(kit: KioskKit, deps: PanelSignalsDeps) {
    this.#bus = kit.bus;
    this.#o = deps;
  }

  start(): void {
    const show = () => this.#showStatus();
    this.#unlisten = listen(this.#bus, {
      "tap-decided": this.#onTap,
      "payment-progressed": this.#onPayment,
      "decision-busy": this.#onBusy,
      "peripheral-changed": show,
      "storage-changed": show,
      "cloud-link-changed": show,
    });
    this.#showStatus();
  }

  stop(): void {
    this.#unlisten();
  }

  readonly #onTap = (...[result]: KioskEvents["tap-decided"]) => {
    const gpio = this.#o.peripherals.gpio;
    if (result.outcome === "welcome" || result.outcome === "already") gpio?.beep();
    else gpio?.refuse();
    if (result.outcome === "welcome") gpio?.unlock();
  };

  readonly #onPayment = (...[progress]: KioskEvents["payment-progressed"]) => {
    if (progress.step !== "answered") return;
    const gpio = this.#o.peripherals.gpio;
    if (progress.result.outcome === "approved") gpio?.beep();
    else gpio?.refuse();
  };

  readonly #onBusy = (...[busy]: KioskEvents["decision-busy"]) => {
    this.#deciding += busy ? 1 : -1;
    this.#showStatus();
  };

  #showStatus(): void {
    const gpio = this.#o.peripherals.gpio;
    if (!gpio) return;
    let pattern: LedPattern = "idle";
    if (this.#o.peripherals.readerState === "disconnected" || this.#o.storage.status.state === "failing")
      pattern = "fault";
    else if (!this.#o.uplink.online) pattern = "offline";
    else if (this.#deciding > 0) pattern = "busy";
    gpio.status(pattern);
  }
}
