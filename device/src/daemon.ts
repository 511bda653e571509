/**
 * The kiosk daemon: composes the journal, replica, reader, check-in desk,
 * MQTT uplink, replica sync and local API. The constructor only stores its
 * options; `start()` opens everything and `stop()` undoes it in reverse.
 */

import { EventEmitter } from "node:events";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { type Listening, listen } from "@paylane/protocol/service";
import type { KioskState, TapResult } from "@paylane/ui/kiosk-api";
import pino, { type Logger } from "pino";
import { Counter, Gauge, Registry as MetricsRegistry } from "prom-client";
import { CheckinDesk } from "./checkin-desk.ts";
import type { DeviceConfig } from "./config.ts";
import { Journal } from "./journal.ts";
import { createLocalApi } from "./local-api.ts";
import { SimulatedReader } from "./reader/simulated-reader.ts";
import { Replica } from "./replica.ts";
import { ReplicaSync } from "./replica-sync.ts";
import { realTimers, type Timers } from "./timers.ts";
import { Uplink } from "./uplink.ts";

export const DEVICE_VERSION = "0.1.0";

/** What the daemon tells its owner (the UI socket, tests): typed, so listeners cannot drift. */
export interface DaemonEvents {
  state: [KioskState];
  result: [TapResult];
  acked: [number];
}

export interface DaemonOptions {
  config: DeviceConfig;
  logger?: Logger;
  now?: () => Date;
  timers?: Timers;
}

export class KioskDaemon {
  readonly #config: DeviceConfig;
  readonly #log: Logger;
  readonly #now: () => Date;
  readonly #timers: Timers;
  readonly metrics = new MetricsRegistry();
  readonly events = new EventEmitter<DaemonEvents>();
  #journal: Journal | undefined;
  #replica: Replica | undefined;
  #uplink: Uplink | undefined;
  #sync: ReplicaSync | undefined;
  #http: Listening | undefined;
  #api: ReturnType<typeof createLocalApi> | undefined;
  #telemetryTimer: unknown;
  #bootedAt: Date | undefined;
  readonly reader = new SimulatedReader();

  constructor(o: DaemonOptions) {
    this.#config = o.config;
    this.#log = (o.logger ?? pino({ name: "paylane-device" })).child({ site: o.config.site, device: o.config.device });
    this.#now = o.now ?? (() => new Date());
    this.#timers = o.timers ?? realTimers;
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

  get replicaSync(): ReplicaSync {
    if (!this.#sync) throw new Error("daemon is not started");
    return this.#sync;
  }

  async start(): Promise<void> {
    const c = this.#config;
    const address = this.address;
    this.#bootedAt = this.#now();
    await mkdir(c.dataDir, { recursive: true });
    const journal = await Journal.open(join(c.dataDir, "journal.db"));
    this.#journal = journal;
    const replica = await Replica.open(join(c.dataDir, "replica.db"));
    this.#replica = replica;

    const taps = new Counter({
      name: "paylane_device_taps_total",
      help: "Card taps by outcome",
      labelNames: ["outcome"],
      registers: [this.metrics],
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
      logger: this.#log,
      timers: this.#timers,
      now: this.#now,
      refreshMs: c.replicaRefreshMs,
    });
    this.#sync = sync;
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
      onChange: () => {
        // Pull the replica again whenever the cloud comes (back) online.
        if (uplink.online && !wasOnline) void sync.syncNow();
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
    });

    const api = createLocalApi({
      state: () => this.state(),
      health: async () => ({
        status: uplink.online ? "ok" : "degraded",
        broker: uplink.brokerConnected,
        cloud: uplink.cloudOnline,
        mqttError: uplink.lastError ?? null,
        replicaError: sync.lastError ?? null,
        ...(await journal.stats()),
      }),
      metrics: this.metrics,
      simulatedTap: (uid) => this.reader.tap(uid),
    });
    this.#api = api;

    await this.reader.start(async (uid) => {
      const result = await desk.decide({ type: "card", uid });
      taps.inc({ outcome: result.outcome });
      // The UID identifies a card, not a payment instrument, but it still stays out of info logs.
      this.#log.info({ outcome: result.outcome, seq: result.seq }, "card tapped");
      api.broadcast({ type: "result", result });
      this.events.emit("result", result);
      return result;
    });

    this.#http = await listen(api.app, {
      port: c.http.port,
      host: c.http.host,
      setting: "http.port (KIOSK_PORT_BASE)",
    });
    api.injectWebSocket(this.#http.server as Parameters<typeof api.injectWebSocket>[0]);
    await uplink.start();
    sync.start();
    this.#scheduleTelemetry();
    this.#log.info({ port: this.#http.port }, "kiosk daemon started");
  }

  async stop(): Promise<void> {
    this.#timers.clearTimeout(this.#telemetryTimer);
    this.#telemetryTimer = undefined;
    this.#sync?.stop();
    await this.reader.stop();
    await this.#uplink?.stop();
    this.#api?.closeSockets();
    await this.#http?.close();
    await this.#replica?.close();
    await this.#journal?.close();
    this.#sync = this.#uplink = this.#http = this.#api = this.#replica = this.#journal = undefined;
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
      reader: { kind: this.reader.kind, state: this.reader.state },
      backlog: stats.backlog,
    };
  }

  /** Places a card on the simulated reader. */
  tap(uid: string): Promise<TapResult> {
    return this.reader.tap(uid);
  }

  async #pushState(): Promise<void> {
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

  async #sendTelemetry(): Promise<void> {
    if (!this.#journal || !this.#uplink || !this.#replica || !this.#bootedAt) return;
    const stats = await this.#journal.stats();
    const replica = await this.#replica.info();
    const now = this.#now();
    const telemetry = {
      at: now.toISOString(),
      backlog: stats.backlog,
      ackedUpTo: stats.ackedUpTo,
      lastSeq: stats.lastSeq,
      replicaVersion: replica.version,
      reader: this.reader.state,
      uptimeSeconds: (now.getTime() - this.#bootedAt.getTime()) / 1000,
    };
    this.#uplink.publishTelemetry(telemetry);
  }
}
