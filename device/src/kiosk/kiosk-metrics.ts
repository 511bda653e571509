/** The kiosk's Prometheus metrics: counters follow the bus, gauges read the stores when scraped. */
import { Counter, Gauge, type Registry } from "prom-client";
import type { Journal } from "../journal.ts";
import type { PaymentDesk } from "../payments/payment-desk.ts";
import { type KioskBus, type KioskEvents, listen } from "./events.ts";
import type { KioskKit } from "./kit.ts";
import type { Part } from "./lifecycle.ts";

export interface KioskMetricsDeps {
  journal: Journal;
  payments: PaymentDesk;
}

export class KioskMetrics implements Part {
  readonly name = "metrics";
  readonly #bus: KioskBus;
  #unlisten = () => {};
  readonly #taps: Counter<"outcome">;
  readonly #payments: Counter<"kind" | "outcome" | "authorization">;

  constructor(kit: KioskKit, registry: Registry, o: KioskMetricsDeps) {
    this.#bus = kit.bus;
    const registers = [registry];
    this.#taps = new Counter({
      name: "paylane_device_taps_total",
      help: "Card taps by outcome",
      labelNames: ["outcome"],
      registers,
    });
    this.#payments = new Counter({
      name: "paylane_device_payments_total",
      help: "Payments and top-ups answered at this kiosk, by kind, outcome and authorization",
      labelNames: ["kind", "outcome", "authorization"],
      registers,
    });
    new Gauge({
      name: "paylane_device_offline_exposure_minor",
      help: "Offline payments approved here and not yet reconciled by the cloud, minor units of the site currency",
      registers,
      async collect() {
        this.set((await o.payments.exposure())?.offlineExposure ?? 0);
      },
    });
    new Gauge({
      name: "paylane_device_journal_backlog",
      help: "Journal entries not yet acknowledged by the cloud",
      registers,
      async collect() {
        this.set((await o.journal.stats()).backlog);
      },
    });
  }

  start(): void {
    this.#unlisten = listen(this.#bus, { "tap-decided": this.#onTap, "payment-progressed": this.#onPayment });
  }

  stop(): void {
    this.#unlisten();
  }

  readonly #onTap = (...[result]: KioskEvents["tap-decided"]) => this.#taps.inc({ outcome: result.outcome });

  readonly #onPayment = (...[progress]: KioskEvents["payment-progressed"]) => {
    if (progress.step !== "answered") return;
    const { kind, outcome, authorization } = progress.result;
    this.#payments.inc({ kind, outcome, authorization: authorization ?? "none" });
  };
}
