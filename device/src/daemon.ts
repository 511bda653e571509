/**
 * The kiosk daemon, as a composition root: it opens the stores, builds the
 * parts and hands them to each other, then starts them in dependency order;
 * `stop()` undoes it in reverse. What happens at the kiosk travels on one
 * typed bus (kiosk/events.ts); docs/architecture.md draws the parts.
 */
import type { KioskMode } from "@paylane/protocol";
import { collectServiceMetrics, createLogger } from "@paylane/protocol/service";
import type { Hono } from "hono";
import type { Logger } from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { CheckinDesk } from "./checkin-desk.ts";
import { CommandLog } from "./command-log.ts";
import type { DeviceConfig } from "./config.ts";
import type { FirmataIo } from "./hardware/gpio/johnny-five.ts";
import type { Journal } from "./journal.ts";
import { journalRecoveryAlert } from "./journal-recovery.ts";
import { CloudLink, kioskCloudClient } from "./kiosk/cloud-link.ts";
import { CommandDesk } from "./kiosk/command-desk.ts";
import { ConfigDesk } from "./kiosk/config-desk.ts";
import { CustomerPresence } from "./kiosk/customer-presence.ts";
import { createKioskBus } from "./kiosk/events.ts";
import { FrontDesk, peripheralHandlers } from "./kiosk/front-desk.ts";
import { journalCompaction } from "./kiosk/journal-compaction.ts";
import { kioskCommands } from "./kiosk/kiosk-commands.ts";
import { KioskMetrics } from "./kiosk/kiosk-metrics.ts";
import { OperatingMode } from "./kiosk/kiosk-mode.ts";
import { KioskStatus } from "./kiosk/kiosk-status.ts";
import type { KioskKit } from "./kiosk/kit.ts";
import { Lifecycle } from "./kiosk/lifecycle.ts";
import { LocalApiServer } from "./kiosk/local-api-server.ts";
import { OfflineCaps } from "./kiosk/offline-caps.ts";
import { PanelSignals } from "./kiosk/panel-signals.ts";
import { endWaitingPayment, openTill } from "./kiosk/payments.ts";
import { Receipts } from "./kiosk/receipts.ts";
import { type KioskParts, RunningKiosk } from "./kiosk/running-kiosk.ts";
import { SimulatedTaps } from "./kiosk/simulated-taps.ts";
import { kioskStorageMonitor, openStores } from "./kiosk/stores.ts";
import { TelemetryPublisher } from "./kiosk/telemetry-publisher.ts";
import { PaymentBusyError } from "./payments/payment-desk.ts";
import { Peripherals } from "./peripherals.ts";
import { ReplicaSync } from "./replica-sync.ts";
import { SettingsStore } from "./settings-store.ts";
import { realTimers, type Timers } from "./timers.ts";
import { WorkInProgress } from "./work.ts";

export { DEVICE_VERSION } from "./version.ts";

export interface DaemonOptions {
  config: DeviceConfig;
  logger?: Logger;
  now?: () => Date;
  timers?: Timers;
  /** For gpio.backend "johnny-five": the Firmata io (tests pass mock-firmata). */
  firmataIo?: FirmataIo;
  /** Called before each online authorization attempt with the payment's key (tests: every retry reuses it). */
  onPaymentAttempt?: (key: string, attempt: number) => void;
  /** Process and Node.js runtime metrics on `/metrics` too (paylane-device's setting; lint-clean, see collectServiceMetrics). */
  defaultMetrics?: boolean;
  /** Opens the journal; tests wrap it to inject faults. */
  openJournal?: (path: string) => Promise<Journal>;
  /** `cmd/reboot`: asks the process to restart (main exits with a code its supervisor restarts). Unset: refused. */
  restart?: () => void;
  /** `cmd/rotate-logs`: reopens the log file. Unset (logging to stdout): refused with why. */
  reopenLogs?: () => void;
  /** `cmd/rotate-credentials` (device/src/setup/rotation.ts). Unset (no device key): refused with why. */
  rotateCredentials?: () => Promise<{ result: object; afterAnswer?: () => void }>;
  /** The setup API's routes, served once enrolled too (diagnostics, the enrolment's state). */
  setupRoutes?: (peripherals: Peripherals) => Hono;
}

export class KioskDaemon extends RunningKiosk {
  readonly metrics = new MetricsRegistry();
  readonly events = createKioskBus();
  readonly #o: DaemonOptions;
  readonly #log: Logger;
  readonly #lifecycle: Lifecycle;

  constructor(o: DaemonOptions) {
    super({ site: o.config.site, device: o.config.device });
    this.#o = o;
    this.#log = (o.logger ?? createLogger("paylane-device")).child(this.address);
    this.#lifecycle = new Lifecycle(this.#log);
  }

  /** Starts everything (once, however often called); a start that fails stops what it had started. */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = await this.#lifecycle.launch(() => this.#compose());
    this.#log.info({ port: this.port }, "kiosk daemon started");
  }

  /** Stops in reverse start order, after a start in progress; a second call returns the same stop. */
  stop(): Promise<void> {
    // From the first moment of the stop the daemon reads as stopped: nothing starts on a store being closed.
    return this.#lifecycle.shutdown(() => (this.running = undefined));
  }

  /** The part a stop in progress is stopping (for a stop that hangs), else undefined. */
  get stoppingPart(): string | undefined {
    return this.#lifecycle.stoppingPart;
  }

  /** Builds the parts, each handed what it uses, and starts them: the order of `life.start` is the dependency order. */
  async #compose(): Promise<KioskParts> {
    const { config: c, timers = realTimers, now = () => new Date() } = this.#o;
    this.metrics.clear(); // a second start registers its metrics again
    if (this.#o.defaultMetrics) collectServiceMetrics(this.metrics);
    const [life, bus, log] = [this.#lifecycle, this.events, this.#log];
    const kit: KioskKit = { config: c, bus, work: new WorkInProgress(), timers, now, log, bootedAt: now() };
    const cloud = kioskCloudClient(kit, this.#o.onPaymentAttempt);
    const { journal, recovered, replica, wallets, terminal } = await openStores(kit, cloud, life, this.#o.openJournal);

    const storage = kioskStorageMonitor(kit, journal);
    // Kept in the journal's file: a restart comes back in the mode, and with the settings, it was told.
    const settings = await SettingsStore.open(journal.db);
    const mode = await OperatingMode.open(kit, settings);
    const offlineCaps = new OfflineCaps();
    const presence = new CustomerPresence(kit);
    const sync = new ReplicaSync({ cloud, replica, wallets, logger: log, timers, now, refreshMs: c.replicaRefreshMs });
    const link = new CloudLink(kit, {
      ...{ journal, cloud, sync, resolvePending: () => payments.resolvePending() },
      onCommand: (name, payload) => commands.onCommand(name, payload),
      onDesiredConfig: (payload) => configDesk.onDesiredConfig(payload),
    });
    const { uplink } = link;
    const isOnline = () => uplink.online;
    const lowerOfflineLimits = offlineCaps.lower;
    const payments = await openTill(kit, { journal, replica, wallets, cloud, terminal, isOnline, lowerOfflineLimits });
    const peripherals = new Peripherals({ config: c, logger: log, timers, now, firmataIo: this.#o.firmataIo });
    const checkin = new CheckinDesk({ journal, replica, now, isOnline });
    const desk = new FrontDesk(kit, { checkin, payments, journal, mode });
    const handlers = peripheralHandlers(kit, desk);
    const status = new KioskStatus(kit, {
      journal,
      replica,
      sync,
      uplink,
      peripherals,
      storage,
      screen: () => mode.screen,
      terminal: () => terminal.health(),
    });
    const telemetry = new TelemetryPublisher(kit, {
      ...{ journal, replica, payments, peripherals, storage, uplink },
      terminal: () => terminal.health(),
      settings: (): { mode: KioskMode; configVersion: number } => ({
        mode: mode.mode,
        configVersion: configDesk.version,
      }),
    });
    const configDesk = new ConfigDesk(kit, { store: settings, mode, offlineCaps, telemetry, uplink });
    const commands = new CommandDesk(kit, {
      log: await CommandLog.open(journal.db),
      publish: (result) => uplink.publishCommandResult(result),
      handlers: kioskCommands(kit, {
        ...{ presence, mode, peripherals, terminal: terminal.terminal, replica, uplink },
        ...{ restart: this.#o.restart, reopenLogs: this.#o.reopenLogs, rotateCredentials: this.#o.rotateCredentials },
      }),
    });
    const taps = new SimulatedTaps(kit, () => peripherals.simulators.reader);
    const api = new LocalApiServer(kit, status, {
      metrics: this.metrics,
      simulatedTap: c.reader.type === "pn532-simulator" ? (uid) => taps.present(uid) : undefined,
      catalog: () => payments.catalog(),
      startPayment: (req) => {
        if (!mode.serving)
          throw new PaymentBusyError(`this kiosk is in ${mode.mode}: payments start once it is back in service`);
        return payments.start(req);
      },
      cancelPayment: () => payments.cancel(),
      enterCode: (code) => desk.decide({ type: "code", code }),
      callStaff: () => desk.callStaff("screen"),
      selfTest: () => kit.work.track(peripherals.selfTest()),
      settleTerminal: terminal.terminal?.endOfDay ? () => kit.work.track(payments.settleTerminal()) : undefined,
      setup: this.#o.setupRoutes?.(peripherals),
    });

    await life.start([
      storage,
      // No-op starts: placed here so that, at stop, work in progress ends after its sources stop, before the stores close.
      { name: "work in progress", start: noop, stop: () => kit.work.idle() },
      { name: "payment desk", start: noop, stop: () => endWaitingPayment(payments) },
      presence,
      new KioskMetrics(kit, this.metrics, { journal, payments }),
      new Receipts(kit, { peripherals, replica }),
      { name: "peripherals", start: () => peripherals.start(handlers), stop: () => peripherals.stop() },
      new PanelSignals(kit, { peripherals, storage, uplink }),
      api,
      { name: "replica sync", start: () => sync.start(), stop: () => sync.stop() },
      // Before the link: the kept settings apply before the broker is reached, and commands have a desk to land on.
      configDesk,
      commands,
      link,
      telemetry,
      journalCompaction(kit, journal),
    ]);
    if (recovered) await journalRecoveryAlert(journal, recovered, now());
    return {
      ...{ journal, uplink, payments, peripherals, sync, terminal, desk, status, api, telemetry, taps },
      ...{ mode, commands, configDesk },
    };
  }
}

const noop = () => {};
