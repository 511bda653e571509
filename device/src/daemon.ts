/**
 * The kiosk daemon: composes the journal, replica, peripherals (reader,
 * printer, GPIO), check-in desk, MQTT uplink, replica sync and local API.
 * The constructor only stores its options; `start()` opens everything and
 * `stop()` undoes it in reverse.
 */

import { EventEmitter } from "node:events";
import { mkdir } from "node:fs/promises";
import { basename, join } from "node:path";
import type { Credential, Entry, JournalRecoveredBody, StaffCallBody } from "@paylane/protocol";
import { type Listening, listen } from "@paylane/protocol/service";
import type { KioskState, PaymentResult, PaymentSession, ReceiptNotice, TapResult } from "@paylane/protocol/kiosk-api";
import pino, { type Logger } from "pino";
import { Counter, Gauge, Registry as MetricsRegistry } from "prom-client";
import { CheckinDesk } from "./checkin-desk.ts";
import type { DeviceConfig } from "./config.ts";
import type { FirmataIo } from "./hardware/gpio/johnny-five.ts";
import type { LedPattern } from "./hardware/gpio/status-led.ts";
import type { Receipt } from "./hardware/printer/receipt.ts";
import { createTerminal, type TerminalSetup } from "./hardware/terminal/factory.ts";
import { Journal } from "./journal.ts";
import { openOrRecoverJournal } from "./journal-recovery.ts";
import { CloudStream, RollbackGuard } from "./journal-rollback.ts";
import { assertLoopbackHost, createLocalApi } from "./local-api.ts";
import { issueLocalApiToken } from "./local-api-token.ts";
import { OnlineAuthorizer } from "./payments/online-authorizer.ts";
import { PaymentBusyError, PaymentDesk, type ReceiptFacts } from "./payments/payment-desk.ts";
import { WalletReplica } from "./payments/wallet-replica.ts";
import { Peripherals, type SelfTestReport } from "./peripherals.ts";
import { receiptQrDataUrl } from "./receipt-qr.ts";
import { Replica } from "./replica.ts";
import { ReplicaSync } from "./replica-sync.ts";
import { StorageMonitor, type StorageStatus } from "./storage-monitor.ts";
import { kioskTelemetry } from "./telemetry.ts";
import { realTimers, type Timers } from "./timers.ts";
import { Uplink } from "./uplink.ts";

export const DEVICE_VERSION = "0.1.0";

/** What the daemon tells its owner (the UI socket, tests): typed, so listeners cannot drift. */
export interface DaemonEvents {
  state: [KioskState];
  result: [TapResult];
  receipt: [ReceiptNotice];
  acked: [number];
  /** A staff call was journaled (button or screen). */
  "staff-call": [StaffCallBody];
  "payment-session": [PaymentSession];
  "payment-result": [PaymentResult];
  "payment-ended": [string, "cancelled" | "timeout"];
  /** The journal was behind the cloud and moved past its seqs (journal-rollback.ts). */
  "journal-rolled-back": [Entry];
  /** The cloud holds other entries than this kiosk's at these seqs; ours are kept. */
  "journal-conflicts": [number[]];
}

export interface DaemonOptions {
  config: DeviceConfig;
  logger?: Logger;
  now?: () => Date;
  timers?: Timers;
  /** For gpio.backend "johnny-five": the Firmata io (tests pass mock-firmata). */
  firmataIo?: FirmataIo;
  /** Called before each online authorization attempt with the payment's key (tests: every retry reuses it). */
  onPaymentAttempt?: (key: string, attempt: number) => void;
  /** Opens the journal; tests wrap it to inject write errors (disk full). */
  openJournal?: (path: string) => Promise<Journal>;
}

/** How long `tap()` waits for the reader to see a simulated card. */
const SIMULATED_TAP_TIMEOUT_MS = 5000;

export class KioskDaemon {
  readonly #config: DeviceConfig;
  readonly #log: Logger;
  readonly #now: () => Date;
  readonly #timers: Timers;
  readonly metrics = new MetricsRegistry();
  readonly events = new EventEmitter<DaemonEvents>();
  #journal: Journal | undefined;
  #replica: Replica | undefined;
  #wallets: WalletReplica | undefined;
  #payments: PaymentDesk | undefined;
  #terminal: TerminalSetup | undefined;
  #paymentsCounter: Counter<"kind" | "outcome" | "authorization"> | undefined;
  #uplink: Uplink | undefined;
  #sync: ReplicaSync | undefined;
  #http: Listening | undefined;
  #api: ReturnType<typeof createLocalApi> | undefined;
  #telemetryTimer: unknown;
  #compactTimer: unknown;
  /** "failing" while the journal cannot make writes durable; check-ins are refused, the UI says why. */
  #storage: StorageMonitor | undefined;
  #bootedAt: Date | undefined;
  #hw: Peripherals | undefined;
  #desk: CheckinDesk | undefined;
  /** Decisions in progress, for the status LED's "busy". */
  #deciding = 0;
  /** Simulated taps run one at a time: a card must leave the field before the next is placed. */
  #tapQueue: Promise<unknown> = Promise.resolve();
  /** Work in progress that uses the journal or the replicas: `stop()` waits for it before closing them. */
  readonly #work = new Set<Promise<unknown>>();
  #stopping: Promise<void> | undefined;
  readonly #firmataIo: FirmataIo | undefined;
  readonly #openJournal: (path: string) => Promise<Journal>;
  readonly #onPaymentAttempt: DaemonOptions["onPaymentAttempt"];

  constructor(o: DaemonOptions) {
    this.#config = o.config;
    this.#log = (o.logger ?? pino({ name: "paylane-device", timestamp: pino.stdTimeFunctions.isoTime })).child({
      site: o.config.site,
      device: o.config.device,
    });
    this.#now = o.now ?? (() => new Date());
    this.#timers = o.timers ?? realTimers;
    this.#firmataIo = o.firmataIo;
    this.#openJournal = o.openJournal ?? ((path) => Journal.open(path));
    this.#onPaymentAttempt = o.onPaymentAttempt;
  }

  get peripherals(): Peripherals {
    if (!this.#hw) throw new Error("daemon is not started");
    return this.#hw;
  }

  get address() {
    return { site: this.#config.site, device: this.#config.device };
  }

  get port(): number {
    if (!this.#http) throw new Error("daemon is not started");
    return this.#http.port;
  }

  get journal(): Journal {
    if (!this.#journal) throw new Error("daemon is not started");
    return this.#journal;
  }

  get uplink(): Uplink {
    if (!this.#uplink) throw new Error("daemon is not started");
    return this.#uplink;
  }

  get payments(): PaymentDesk {
    if (!this.#payments) throw new Error("daemon is not started");
    return this.#payments;
  }

  /** The in-process simulated card terminal (terminal.type "zvt-simulator"), for tests and demos. */
  get terminalSimulator() {
    return this.#terminal?.simulator;
  }

  get replicaSync(): ReplicaSync {
    if (!this.#sync) throw new Error("daemon is not started");
    return this.#sync;
  }

  /**
   * Opens everything in order. A start that fails stops what it had already
   * started before it rejects, so nothing is left holding a port, a serial
   * device or the event loop. A stopped daemon can be started again.
   */
  async start(): Promise<void> {
    await this.#stopping;
    // Registered again at every start: a second start in one process must not register a metric twice.
    this.metrics.clear();
    try {
      await this.#start();
    } catch (err) {
      await this.stop().catch((stopErr: Error) =>
        this.#log.warn({ err: stopErr.message }, "stopping what had started failed too"),
      );
      throw err;
    }
  }

  async #start(): Promise<void> {
    const c = this.#config;
    const address = this.address;
    this.#bootedAt = this.#now();
    assertLoopbackHost(c.http.host);
    await mkdir(c.dataDir, { recursive: true });
    const stream = new CloudStream({ address, secret: c.secret, cloudUrl: c.cloudUrl });
    const { journal, recovered } = await openOrRecoverJournal(join(c.dataDir, "journal.db"), {
      fetchAckedSeq: () => stream.ackedSeq(),
      logger: this.#log,
      now: this.#now,
      open: this.#openJournal,
    });
    this.#journal = journal;
    const storage = new StorageMonitor({
      journal,
      timers: this.#timers,
      logger: this.#log,
      probeMs: c.storageProbeMs,
      onChange: () => {
        void this.#pushState();
        this.#showStatus();
      },
    });
    this.#storage = storage;
    const replica = await Replica.open(join(c.dataDir, "replica.db"));
    this.#replica = replica;
    const wallets = await WalletReplica.open(join(c.dataDir, "wallets.db"));
    this.#wallets = wallets;
    const terminal = await createTerminal(c.terminal, { timers: this.#timers, logger: this.#log });
    this.#terminal = terminal;

    const taps = new Counter({
      name: "paylane_device_taps_total",
      help: "Card taps by outcome",
      labelNames: ["outcome"],
      registers: [this.metrics],
    });
    const payments = new Counter({
      name: "paylane_device_payments_total",
      help: "Payments and top-ups answered at this kiosk, by kind, outcome and authorization",
      labelNames: ["kind", "outcome", "authorization"],
      registers: [this.metrics],
    });
    this.#paymentsCounter = payments;
    const daemon = this;
    new Gauge({
      name: "paylane_device_offline_exposure_minor",
      help: "Offline payments approved here and not yet reconciled by the cloud, minor units of the site currency",
      registers: [this.metrics],
      collect: async function collect() {
        this.set((await daemon.#payments?.exposure())?.offlineExposure ?? 0);
      },
    });
    new Gauge({
      name: "paylane_device_journal_backlog",
      help: "Journal entries not yet acknowledged by the cloud",
      registers: [this.metrics],
      collect: async function collect() {
        this.set((await journal.stats()).backlog);
      },
    });

    const sync = new ReplicaSync({
      address,
      secret: c.secret,
      cloudUrl: c.cloudUrl,
      replica,
      wallets,
      logger: this.#log,
      timers: this.#timers,
      now: this.#now,
      refreshMs: c.replicaRefreshMs,
    });
    this.#sync = sync;
    const rollback = new RollbackGuard({
      journal,
      stream,
      logger: this.#log,
      now: this.#now,
      onMoved: (entry) => {
        this.#uplink?.notifyAppended();
        this.#uplink?.sendConflicts();
        this.events.emit("journal-rolled-back", entry);
      },
      onConflicts: (seqs) => {
        this.#uplink?.sendConflicts();
        this.events.emit("journal-conflicts", seqs);
      },
    });
    const checkRollback = () => {
      const check = rollback.check();
      void this.#track(check).catch((err: Error) =>
        this.#log.warn({ err: err.message }, "could not compare the journal with the cloud's; again when it is back"),
      );
    };
    let wasOnline = false;
    const uplink = new Uplink({
      address,
      secret: c.secret,
      url: c.mqttUrl,
      journal,
      version: DEVICE_VERSION,
      bootedAt: this.#bootedAt,
      logger: this.#log,
      timers: this.#timers,
      now: this.#now,
      batchSize: c.batchSize,
      ackTimeoutMs: c.ackTimeoutMs,
      onAcked: (upTo) => this.events.emit("acked", upTo),
      onCloudAhead: (upTo) => this.#track(rollback.catchUp(upTo, "ack")),
      verifyHeld: (after, upTo) => this.#track(rollback.verifyHeld(after, upTo)),
      onConflicts: (seqs) => this.events.emit("journal-conflicts", seqs),
      onChange: () => {
        // Pull the replicas again whenever the cloud comes (back) online, and settle interrupted payments.
        if (uplink.online && !wasOnline) {
          checkRollback();
          void sync.syncNow();
          const pending = this.#payments?.resolvePending();
          if (pending)
            void this.#track(pending).catch((err: Error) =>
              this.#log.warn({ err: err.message }, "interrupted payments could not be resolved yet"),
            );
        }
        wasOnline = uplink.online;
        void this.#pushState();
      },
    });
    this.#uplink = uplink;
    const desk = new CheckinDesk({
      journal,
      replica,
      now: this.#now,
      isOnline: () => uplink.online,
      onJournaled: () => uplink.notifyAppended(),
      onStorageFailure: (err) => storage.failed(err),
    });
    this.#desk = desk;
    this.#payments = new PaymentDesk({
      journal,
      members: replica,
      wallets,
      online: new OnlineAuthorizer({
        address,
        secret: c.secret,
        cloudUrl: c.cloudUrl,
        timers: this.#timers,
        timeoutMs: c.payments.onlineTimeoutMs,
        onAttempt: this.#onPaymentAttempt,
      }),
      isOnline: () => uplink.online,
      terminal: terminal.terminal,
      now: this.#now,
      timers: this.#timers,
      logger: this.#log,
      idleMs: c.payments.idleMs,
      topupAmounts: c.payments.topupAmounts,
      onJournaled: () => uplink.notifyAppended(),
      onStorageFailure: (err) => storage.failed(err),
      onSession: (session) => {
        this.#api?.broadcast({ type: "payment", session });
        this.events.emit("payment-session", session);
      },
      onResult: (result, receipt) => this.#paymentAnswered(result, receipt),
      onEnded: (sessionId, reason) => {
        this.#api?.broadcast({ type: "payment-ended", sessionId, reason });
        this.events.emit("payment-ended", sessionId, reason);
      },
    });
    const hw = new Peripherals({
      config: c,
      logger: this.#log,
      timers: this.#timers,
      now: this.#now,
      firmataIo: this.#firmataIo,
    });
    this.#hw = hw;

    if (c.reader.type === "pn532-simulator") {
      this.#log.warn(
        "reader.type is pn532-simulator: cards are simulated, POST /api/sim/tap is on (never on a kiosk in service)",
      );
    }
    const api = createLocalApi({
      token: await issueLocalApiToken(c.dataDir),
      state: () => this.state(),
      health: async () => ({
        status: uplink.online ? "ok" : "degraded",
        broker: uplink.brokerConnected,
        cloud: uplink.cloudOnline,
        mqttError: uplink.lastError ?? null,
        replicaError: sync.lastError ?? null,
        peripherals: hw.health(),
        storage: storage.status,
        ...(await journal.stats()),
      }),
      metrics: this.metrics,
      simulatedTap: c.reader.type === "pn532-simulator" ? (uid) => this.present(uid) : undefined,
      catalog: () => this.payments.catalog(),
      startPayment: (req) => this.payments.start(req),
      cancelPayment: () => this.payments.cancel(),
      enterCode: (code) => this.#decide({ type: "code", code }, taps),
      callStaff: () => this.callStaff("screen"),
      selfTest: () => this.selfTest(),
      settleTerminal: terminal.terminal?.endOfDay ? () => this.payments.settleTerminal() : undefined,
      status: async () => {
        const stats = await journal.stats();
        const info = await replica.info();
        const now = this.#now().getTime();
        const age = (iso: string | null) => (iso ? `${Math.round((now - Date.parse(iso)) / 1000)} s` : null);
        const peripherals = hw.health();
        return {
          site: c.site,
          device: c.device,
          rows: [
            ["Cloud", uplink.online ? "online" : uplink.brokerConnected ? "broker up, cloud away" : "offline"],
            ["Journal backlog", `${stats.backlog} entries (last seq ${stats.lastSeq}, acked ${stats.ackedUpTo})`],
            ...(stats.conflicts > 0
              ? [
                  ["Journal conflicts", `${stats.conflicts} entries held by the cloud under other ids: ask ops`] as [
                    string,
                    unknown,
                  ],
                ]
              : []),
            ["Oldest unacked entry", age(stats.oldestUnackedAt) ?? "none waiting"],
            ["Storage", storage.status.state === "ok" ? "ok" : `failing: ${storage.status.lastError ?? ""}`],
            [
              "Member replica",
              `version ${info.version}, ${info.members} members, synced ${age(info.syncedAt) ?? "never"} ago`,
            ],
            ["Card reader", peripherals.reader],
            ["Printer", peripherals.printer ?? "none"],
            ["GPIO", peripherals.gpio ?? "none"],
            ["Last MQTT error", uplink.lastError ?? null],
            ["Last replica error", sync.lastError ?? null],
          ],
        };
      },
    });
    this.#api = api;

    await hw.start({
      // While a payment waits for a card, the card pays; otherwise it checks in.
      onCard: (uid) => (this.#payments?.awaitingCard ? this.#pay(uid) : this.#decide({ type: "card", uid }, taps)),
      onCallStaff: () => void this.callStaff("button"),
      onChange: () => {
        void this.#pushState();
        this.#showStatus();
      },
      onPaper: () => void this.#sendTelemetry(),
    });

    this.#http = await listen(api.app, {
      port: c.http.port,
      host: c.http.host,
      setting: "http.port (KIOSK_PORT_BASE)",
    });
    api.injectWebSocket(this.#http.server as Parameters<typeof api.injectWebSocket>[0]);
    await uplink.start();
    // Not awaited: offline at start the kiosk carries on, and the check runs when the cloud is back.
    checkRollback();
    sync.start();
    this.#showStatus();
    this.#scheduleTelemetry();
    this.#scheduleCompaction();
    if (recovered) {
      const body: JournalRecoveredBody = {
        damagedFile: basename(recovered.damagedFile),
        continuedAfter: recovered.continuedAfter,
        reason: recovered.reason.slice(0, 1000),
      };
      await journal.append("journal-recovered", body, this.#now());
      uplink.notifyAppended();
    }
    this.#log.info({ port: this.#http.port }, "kiosk daemon started");
  }

  /**
   * Stops users before what they use, in reverse start order: first what
   * makes new work (timers, replica sync, the uplink, the local API, the
   * peripherals, a payment waiting for a card), then the work in progress
   * is awaited, and only then are the terminal and the databases closed.
   * A second call while stopping returns the same stop (SIGINT and SIGTERM
   * both arrive on a Ctrl-C under `npm start`).
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop().finally(() => {
      this.#stopping = undefined;
    });
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    for (const t of [this.#telemetryTimer, this.#compactTimer]) this.#timers.clearTimeout(t);
    this.#telemetryTimer = this.#compactTimer = undefined;
    this.#sync?.stop();
    await this.#sync?.idle();
    await this.#uplink?.stop();
    this.#api?.closeSockets();
    await this.#http?.close();
    await this.#hw?.stop();
    try {
      // A payment waiting for a card ends (its idle timer with it); one being authorized is awaited below.
      this.#payments?.cancel();
    } catch (err) {
      if (!(err instanceof PaymentBusyError)) this.#log.warn({ err: (err as Error).message }, "payment not cancelled");
    }
    while (this.#work.size > 0) await Promise.allSettled([...this.#work]);
    this.#storage?.stop();
    const stores = [this.#terminal, this.#wallets, this.#replica, this.#journal];
    // From here on the daemon reads as stopped: nothing starts on a store being closed.
    this.#sync = this.#uplink = this.#http = this.#api = this.#replica = this.#journal = undefined;
    this.#hw = this.#desk = this.#payments = this.#wallets = this.#terminal = this.#storage = undefined;
    let failed: unknown;
    for (const store of stores) await store?.close().catch((err: unknown) => (failed ??= err));
    if (failed) throw failed;
  }

  /** Work that uses the stores: `stop()` waits for it before closing them. */
  #track<T>(work: Promise<T>): Promise<T> {
    this.#work.add(work);
    const done = () => this.#work.delete(work);
    work.then(done, done);
    return work;
  }

  async state(): Promise<KioskState> {
    const uplink = this.#uplink;
    const stats = this.#journal ? await this.#journal.stats() : { backlog: 0 };
    return {
      site: this.#config.site,
      device: this.#config.device,
      online: uplink?.online ?? false,
      broker: uplink?.brokerConnected ?? false,
      cloud: uplink?.cloudOnline ?? false,
      reader: {
        kind: "pn532",
        simulated: this.#config.reader.type === "pn532-simulator",
        state: this.#hw?.readerState ?? "disconnected",
      },
      backlog: stats.backlog,
      storage: this.#storageState(),
    };
  }

  /**
   * Places a card on the simulated PN532, waits for the kiosk's answer, and
   * takes the card away again (and waits until the reader has seen the empty
   * field, so the same card can be tapped next).
   */
  async tap(uid: string): Promise<TapResult> {
    const answer = await this.present(uid);
    if ("sessionId" in answer) throw new Error("the card paid for the payment in progress instead of checking in");
    return answer;
  }

  /** Taps a card for the payment waiting for one (see `payments.start`). */
  async tapToPay(uid: string): Promise<PaymentResult> {
    const answer = await this.present(uid);
    if (!("sessionId" in answer)) throw new Error("no payment was waiting for the card: it checked in instead");
    return answer;
  }

  /** Places a card on the simulated reader and waits for whatever the kiosk answers (check-in or payment). */
  present(uid: string): Promise<TapResult | PaymentResult> {
    const sim = this.#hw?.simulators.reader;
    if (!sim) return Promise.reject(new Error("this kiosk's reader is not simulated"));
    const run = this.#tapQueue.then(async () => {
      const answered = new Promise<TapResult | PaymentResult>((resolve, reject) => {
        const done = () => {
          this.#timers.clearTimeout(timer);
          this.events.off("result", onResult);
          this.events.off("payment-result", onResult);
        };
        const timer = this.#timers.setTimeout(() => {
          done();
          reject(new Error(`the reader did not report the card within ${SIMULATED_TAP_TIMEOUT_MS} ms`));
        }, SIMULATED_TAP_TIMEOUT_MS);
        const onResult = (r: TapResult | PaymentResult) => {
          done();
          resolve(r);
        };
        this.events.on("result", onResult);
        this.events.on("payment-result", onResult);
      });
      sim.placeCard(uid);
      try {
        return await answered;
      } finally {
        sim.removeCard();
        await this.#within(sim.nextPoll(), SIMULATED_TAP_TIMEOUT_MS);
      }
    });
    this.#tapQueue = run.catch(() => {});
    return run;
  }

  /** `p`, or nothing once `ms` passed (a reader that stopped polling must not wedge the next tap). */
  async #within(p: Promise<void>, ms: number): Promise<void> {
    let timer: unknown;
    await Promise.race([p, new Promise<void>((resolve) => (timer = this.#timers.setTimeout(resolve, ms)))]);
    this.#timers.clearTimeout(timer);
  }

  /** Journals a staff call (an alert for ops, delivered exactly once like any entry). */
  callStaff(source: StaffCallBody["source"]): Promise<void> {
    return this.#track(this.#callStaff(source));
  }

  async #callStaff(source: StaffCallBody["source"]): Promise<void> {
    const journal = this.#journal;
    if (!journal) return;
    const body: StaffCallBody = { source };
    try {
      await journal.append("staff-call", body, this.#now());
    } catch (err) {
      this.#storage?.failed(err as Error);
      throw err;
    }
    this.#uplink?.notifyAppended();
    this.#log.warn({ source }, "staff called");
    this.events.emit("staff-call", body);
  }

  /** Exercises every peripheral (the relay is checked, never pulsed). */
  selfTest(): Promise<SelfTestReport> {
    if (!this.#hw) return Promise.reject(new Error("daemon is not started"));
    return this.#hw.selfTest();
  }

  /** One decision from any credential source, with everything a user notices around it. */
  async #decide(credential: Credential, taps: Counter<"outcome">): Promise<TapResult> {
    const desk = this.#desk;
    if (!desk) throw new Error("daemon is not started");
    const result = await this.#busy(() => desk.decide(credential));
    taps.inc({ outcome: result.outcome });
    // The UID identifies a card, not a payment instrument, but it still stays out of info logs.
    this.#log.info({ outcome: result.outcome, seq: result.seq, via: credential.type }, "credential presented");
    const gpio = this.#hw?.gpio;
    if (result.outcome === "welcome" || result.outcome === "already") gpio?.beep();
    else gpio?.refuse();
    if (result.outcome === "welcome") gpio?.unlock();
    this.#api?.broadcast({ type: "result", result });
    this.events.emit("result", result);
    if (result.outcome === "welcome") {
      this.#printCheckinReceipt(result, credential).catch((err: Error) =>
        this.#log.warn({ err: err.message }, "receipt could not be handled"),
      );
    }
    return result;
  }

  /** A card tapped for the payment in progress. */
  #pay(uid: string): Promise<PaymentResult> {
    return this.#busy(() => this.payments.onCard(uid));
  }

  /** Runs a decision with the status LED showing "busy" meanwhile; `stop()` waits for it. */
  #busy<T>(decide: () => Promise<T>): Promise<T> {
    const run = async () => {
      this.#deciding++;
      this.#showStatus();
      try {
        return await decide();
      } finally {
        this.#deciding--;
        this.#showStatus();
      }
    };
    return this.#track(run());
  }

  #paymentAnswered(result: PaymentResult, receipt: ReceiptFacts | undefined): void {
    this.#paymentsCounter?.inc({
      kind: result.kind,
      outcome: result.outcome,
      authorization: result.authorization ?? "none",
    });
    const gpio = this.#hw?.gpio;
    if (result.outcome === "approved") gpio?.beep();
    else gpio?.refuse();
    this.#log.info(
      {
        outcome: result.outcome,
        kind: result.kind,
        reason: result.reason,
        authorization: result.authorization,
        key: result.id,
      },
      "payment answered",
    );
    this.#api?.broadcast({ type: "payment-result", result });
    this.events.emit("payment-result", result);
    if (result.outcome !== "approved" || !receipt || !result.id) return;
    const id = result.id;
    this.#printReceipt(id, (venue, timeZone) => ({
      kind: "payment",
      venue,
      kiosk: this.#config.device,
      at: new Date(result.at),
      timeZone,
      memberName: receipt.memberName,
      transactionId: id,
      cardUid: receipt.cardUid,
      item: receipt.item,
      amount: { minor: result.amount, currency: result.currency },
      newBalance: { minor: result.balance ?? 0, currency: result.currency },
    })).catch((err: Error) => this.#log.warn({ err: err.message }, "receipt could not be handled"));
  }

  async #printCheckinReceipt(result: TapResult, credential: Credential): Promise<void> {
    const printerConfig = this.#config.printer;
    if (printerConfig.type === "none" || !printerConfig.checkinReceipts || !result.id) return;
    const id = result.id;
    await this.#printReceipt(id, (venue, timeZone) => ({
      kind: "checkin",
      venue,
      kiosk: this.#config.device,
      at: new Date(result.at),
      timeZone,
      memberName: result.name ?? "",
      transactionId: id,
      ...(credential.type === "card" ? { cardUid: credential.uid } : {}),
    }));
  }

  /**
   * Never holds up the answer. When nothing was printed (no printer, paper
   * out) the UI offers the receipt as a QR code of the transaction id.
   */
  #printReceipt(id: string, receipt: (venue: string, timeZone: string) => Receipt): Promise<void> {
    return this.#track(this.#printReceiptNow(id, receipt));
  }

  async #printReceiptNow(id: string, receipt: (venue: string, timeZone: string) => Receipt): Promise<void> {
    if (!this.#replica) return;
    const printer = this.#hw?.printer;
    const info = await this.#replica.info();
    const outcome =
      printer && this.#config.printer.type !== "none"
        ? await printer.print(receipt(info.siteName || this.#config.site, info.timezone))
        : ({ printed: false, reason: "no-printer" } as const);
    const notice: ReceiptNotice = outcome.printed
      ? { id, printed: true }
      : { id, printed: false, reason: outcome.reason, qr: await receiptQrDataUrl(id) };
    if (!outcome.printed) this.#log.warn({ reason: outcome.reason }, "receipt not printed; offered on screen");
    this.#api?.broadcast({ type: "receipt", receipt: notice });
    this.events.emit("receipt", notice);
  }

  #storageState(): StorageStatus["state"] {
    return this.#storage?.status.state ?? "ok";
  }

  #scheduleCompaction(): void {
    this.#compactTimer = this.#timers.setTimeout(() => {
      const journal = this.#journal;
      if (!journal) return;
      const before = new Date(this.#now().getTime() - this.#config.journalRetentionDays * 86_400_000);
      void this.#track(journal.compact(before))
        .then(
          (n) =>
            n > 0 && this.#log.info({ removed: n, before: before.toISOString() }, "acked journal entries compacted"),
          (err: Error) => this.#log.warn({ err: err.message }, "journal compaction failed"),
        )
        .finally(() => {
          if (this.#journal) this.#scheduleCompaction();
        });
    }, this.#config.compactEveryMs);
  }

  /** The status LED: fault beats offline beats busy beats idle. */
  #showStatus(): void {
    const gpio = this.#hw?.gpio;
    if (!gpio) return;
    let pattern: LedPattern = "idle";
    if (this.#hw?.readerState === "disconnected" || this.#storageState() === "failing") pattern = "fault";
    else if (!this.#uplink?.online) pattern = "offline";
    else if (this.#deciding > 0) pattern = "busy";
    gpio.status(pattern);
  }

  #pushState(): Promise<void> {
    return this.#track(this.#pushStateNow());
  }

  async #pushStateNow(): Promise<void> {
    if (!this.#api) return;
    const state = await this.state();
    this.#api?.broadcast({ type: "state", state });
    this.events.emit("state", state);
  }

  #scheduleTelemetry(): void {
    this.#telemetryTimer = this.#timers.setTimeout(() => {
      void this.#sendTelemetry().finally(() => {
        if (this.#journal) this.#scheduleTelemetry();
      });
    }, this.#config.telemetryMs);
  }

  /** Publishes telemetry now instead of at the next tick (tests, and after a change ops should see at once). */
  sendTelemetryNow(): Promise<void> {
    return this.#sendTelemetry();
  }

  #sendTelemetry(): Promise<void> {
    return this.#track(this.#sendTelemetryNow());
  }

  async #sendTelemetryNow(): Promise<void> {
    const hw = this.#hw;
    const uplink = this.#uplink;
    if (!this.#journal || !uplink || !this.#replica || !this.#bootedAt || !hw) return;
    // Telemetry is QoS 0 and never queued: while the broker is away, nothing to read for.
    if (!uplink.brokerConnected) return;
    const journal = await this.#journal.stats();
    const replica = await this.#replica.info();
    const payments = await this.#payments?.exposure();
    uplink.publishTelemetry(
      kioskTelemetry({
        now: this.#now(),
        bootedAt: this.#bootedAt,
        journal,
        replica,
        peripherals: hw.health(),
        storage: this.#storageState(),
        payments,
      }),
    );
  }
}
