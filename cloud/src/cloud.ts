/**
 * The cloud service: database (pg or PGlite), presence (Redis or in-process),
 * the MQTT bridge and the HTTP API. The constructor stores options only;
 * `start()` and `stop()` mirror each other.
 *
 * CLOUD_ROLE picks what one process runs (docs/scale-bridges.md): `all` (API
 * and bridge), `api` (the API; MQTT for commands, configs and the fleet's
 * statuses, no ingest) or `bridge` (ingest and the fleet listeners; HTTP only
 * /healthz /readyz /metrics). The duties that must run once among N
 * instances go to the leader (bridge/leader.ts). CLOUD_SITES limits it all to
 * the sites this deployment owns (docs/partitioning.md).
 */
import { readFile } from "node:fs/promises";
import { Registry, realTimers, serviceUsername, type Timers, watchRegistry } from "@paylane/protocol";
import {
  collectServiceMetrics,
  createLogger,
  type Listening,
  listen,
  opsRoutes,
  problemClientErrors,
  redactUrl,
} from "@paylane/protocol/service";
import { Hono } from "hono";
import { bearerAuth } from "hono/bearer-auth";
import { Redis } from "ioredis";
import type { Logger } from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { bootstrapFirstAdmin, FIRST_ADMIN } from "./accounts/bootstrap.ts";
import { AlertService, alertSettings } from "./alerts/notifier.ts";
import { ApiInstances } from "./api/api-instances.ts";
import { createApi } from "./api/app.ts";
import { LiveSockets } from "./api/live.ts";
import { Bridge, type BridgeOptions } from "./bridge/bridge.ts";
import { Leader } from "./bridge/leader.ts";
import type { CloudConfig } from "./config.ts";
import type { Database } from "./db/database.ts";
import { migrate } from "./db/migrate.ts";
import { openPg, openPgReader } from "./db/pg.ts";
import { openPglite } from "./db/pglite.ts";
import { registerBackupMetrics } from "./dr/backup-metrics.ts";
import { Enrolment } from "./enrolment/enrolment.ts";
import { CommandDesk } from "./fleet/commands.ts";
import { ConfigDesk } from "./fleet/device-config.ts";
import { startEventsFeed } from "./fleet/events-feed.ts";
import { StatusHistory } from "./fleet/status-history.ts";
import { purgeIdempotencyKeys } from "./ledger/idempotency.ts";
import { DatabaseLiveFeed } from "./live/database-live-feed.ts";
import { announceDeviceStatuses } from "./live/notify.ts";
import { registerKioskMetrics } from "./metrics/kiosk-metrics.ts";
import { registerLedgerMetrics } from "./metrics/ledger-metrics.ts";
import { MemoryPresence } from "./presence/memory-presence.ts";
import type { PresenceStore } from "./presence/presence-store.ts";
import { RedisPresence } from "./presence/redis-presence.ts";
import { seedSite } from "./seed.ts";
import { type LatestTelemetryStore, openLatestTelemetry } from "./telemetry/latest-store.ts";
import { TelemetryRecorder } from "./telemetry/recorder.ts";

/** How long the cloud's start waits for its first MQTT connection before it gives up. */
const MQTT_CONNECT_DEADLINE_MS = 10_000;

export interface CloudOptions {
  config: CloudConfig;
  logger?: Logger;
  now?: () => Date;
  /** Timers for the bridge's gap detection (tests drive them). */
  timers?: Timers;
  /** An already-open database (tests share one across cloud restarts); the cloud then does not close it. */
  db?: Database;
  /** Only this site's MQTT topics (tests on a shared broker); CLOUD_SITES, when set, wins. */
  site?: string;
  onCommitted?: BridgeOptions["onCommitted"];
  defaultMetrics?: boolean;
}

export async function openDatabase(config: CloudConfig): Promise<Database> {
  return config.DATABASE_URL
    ? openPg({
        url: config.DATABASE_URL,
        schema: config.DATABASE_SCHEMA,
        queryTimeoutMs: config.DATABASE_QUERY_TIMEOUT_MS,
      })
    : openPglite(config.PGLITE_DIR);
}

export async function openPresence(config: CloudConfig): Promise<PresenceStore> {
  if (!config.REDIS_URL) return new MemoryPresence();
  const redis = new RedisPresence(config.REDIS_URL, config.REDIS_PREFIX);
  await redis.connect();
  return redis;
}

export class CloudService {
  readonly #o: CloudOptions;
  readonly #log: Logger;
  readonly #now: () => Date;
  readonly metrics = new MetricsRegistry();
  #db: Database | undefined;
  /** DATABASE_READ_URL's replica for the read-only API routes (the primary answers while it is down). */
  #readDb: Database | undefined;
  #ownsDb = false;
  #presence: PresenceStore | undefined;
  #registry: Registry | undefined;
  /** The registry as the API sees it: only the owned sites' devices when CLOUD_SITES is set (rebuilt on change). */
  #apiRegistry: Registry | undefined;
  /** Stops the watch that keeps `#registry` the file's newest version (a revoked device is refused at once). */
  #stopWatchingRegistry: (() => void) | undefined;
  #bridge: Bridge | undefined;
  #http: Listening | undefined;
  #metricsHttp: Listening | undefined;
  /** The rate limits' own Redis connection: no offline queue, so a Redis outage falls back to in-process counting at once. */
  #limitsRedis: Redis | undefined;
  /** The count of live API instances: each one's share of the limits while Redis is away. */
  #apiInstances: ApiInstances | undefined;
  #purgeTimer: unknown;
  #commands: CommandDesk | undefined;
  #configs: ConfigDesk | undefined;
  #statusHistory: StatusHistory | undefined;
  #stopEventsFeed: (() => void) | undefined;
  /** The live feed: this process's LISTEN, its WebSocket clients, and the device statuses it announces. */
  #liveFeed: DatabaseLiveFeed | undefined;
  #liveSockets: LiveSockets | undefined;
  #stopAnnouncingStatuses: (() => void) | undefined;
  #alerts: AlertService | undefined;
  #latestTelemetry: LatestTelemetryStore | undefined;
  #telemetry: TelemetryRecorder | undefined;
  #stopping: Promise<void> | undefined;
  /** The step of the stop in progress: a stop that hangs names it. */
  #stage: string | undefined;
  #leader: Leader | undefined;

  constructor(o: CloudOptions) {
    this.#o = o;
    this.#log = o.logger ?? createLogger("paylane-cloud");
    this.#now = o.now ?? (() => new Date());
  }

  get port(): number {
    if (!this.#http) throw new Error("cloud is not started");
    return this.#http.port;
  }

  get url(): string {
    return `${this.#o.config.CLOUD_TLS_CERT ? "https" : "http"}://127.0.0.1:${this.port}`;
  }

  /** The CLOUD_METRICS_PORT listener's port, when there is one. */
  get metricsPort(): number | undefined {
    return this.#metricsHttp?.port;
  }

  get db(): Database {
    if (!this.#db) throw new Error("cloud is not started");
    return this.#db;
  }

  /** The notifications service (alerts). */
  get alerts(): AlertService {
    if (!this.#alerts) throw new Error("cloud is not started");
    return this.#alerts;
  }

  /** Commands to kiosks and their audit. */
  get commands(): CommandDesk {
    if (!this.#commands) throw new Error("cloud is not started");
    return this.#commands;
  }

  /** Desired and reported configuration of each kiosk. */
  get configs(): ConfigDesk {
    if (!this.#configs) throw new Error("cloud is not started");
    return this.#configs;
  }

  /** The singleton duties' leader (bridge/leader.ts): whether this instance holds them now. */
  get leading(): boolean {
    return this.#leader?.leading ?? false;
  }

  /** The sites this instance serves (CLOUD_SITES, or the test's `site`), or undefined: every site. */
  get sites(): readonly string[] | undefined {
    return this.#o.config.CLOUD_SITES ?? (this.#o.site ? [this.#o.site] : undefined);
  }

  #owns(site: string): boolean {
    const sites = this.sites;
    return sites === undefined || sites.includes(site);
  }

  get bridge(): Bridge {
    if (!this.#bridge) throw new Error("cloud is not started");
    return this.#bridge;
  }

  /**
   * Opens everything in order. A start that fails stops what it had already
   * started (the MQTT bridge, Redis, the database) before it rejects, so the
   * process is not kept alive by half a cloud. A stopped cloud can be started again.
   */
  async start(): Promise<void> {
    await this.#stopping;
    // Registered again at every start (the bridge's too): a second start must not register a metric twice.
    this.metrics.clear();
    try {
      await this.#start();
    } catch (err) {
      await this.kill().catch((stopErr: Error) =>
        this.#log.warn({ err: stopErr.message }, "stopping what had started failed too"),
      );
      throw err;
    }
  }

  async #start(): Promise<void> {
    const c = this.#o.config;
    // Read before anything starts: a certificate that cannot be read is a configuration error.
    const tls = c.CLOUD_TLS_CERT && c.CLOUD_TLS_KEY ? await loadTls(c.CLOUD_TLS_CERT, c.CLOUD_TLS_KEY) : undefined;
    if (this.#o.defaultMetrics) collectServiceMetrics(this.metrics);
    this.#registry = await Registry.load(c.REGISTRY_PATH);
    this.#scopeRegistry();
    this.#stopWatchingRegistry = watchRegistry(
      c.REGISTRY_PATH,
      (next) => {
        if (this.#registry) next.adoptVerified(this.#registry);
        this.#registry = next;
        this.#scopeRegistry();
        // A device enrolled since start gets its rows now, so its stream and listings know it.
        if (this.#db)
          void this.#enrolRegistryDevices().catch((err: Error) =>
            this.#log.warn({ err: err.message }, "devices of the new registry could not be enrolled yet"),
          );
      },
      this.#log,
      { pollMs: c.REGISTRY_POLL_MS },
    );
    this.#ownsDb = !this.#o.db;
    const db = this.#o.db ?? (await openDatabase(c));
    this.#db = db;
    if (c.DATABASE_READ_URL && db.kind === "pg") {
      this.#readDb = openPgReader({
        url: c.DATABASE_READ_URL,
        schema: c.DATABASE_SCHEMA,
        queryTimeoutMs: c.DATABASE_QUERY_TIMEOUT_MS,
        primary: db,
      });
    }
    const applied = await migrate(db);
    if (applied.length > 0) this.#log.info({ applied, database: db.kind }, "migrations applied");
    // Backups paylane-dr recorded in this database: their age and schedule, read at each scrape.
    registerBackupMetrics({ db, metrics: this.metrics, logger: this.#log });
    if (c.CLOUD_ADMIN_CREDENTIALS_FILE && (await bootstrapFirstAdmin(db, c.CLOUD_ADMIN_CREDENTIALS_FILE, this.#now))) {
      // The path only: the password is in the file, never in a log.
      this.#log.info({ username: FIRST_ADMIN, file: c.CLOUD_ADMIN_CREDENTIALS_FILE }, "first admin created");
    }
    if (c.SEED_DEMO_SITE) {
      await seedSite(db, { id: c.SEED_DEMO_SITE, name: "PayLane Demo Venue", timezone: c.SITE_TIMEZONE });
    }
    await this.#enrolRegistryDevices();
    const ingests = c.CLOUD_ROLE !== "api";
    const servesApi = c.CLOUD_ROLE !== "bridge";
    // Before the parts whose duties it guards: a sole instance leads from its first message.
    const leader = new Leader({
      db,
      logger: this.#log,
      instance: c.CLOUD_INSTANCE,
      eligible: ingests,
      sites: this.sites,
      metrics: this.metrics,
    });
    this.#leader = leader;
    await leader.start();
    this.#presence = await openPresence(c);
    // Before the bridge connects: the retained statuses it hears first already count.
    const alerts = new AlertService({
      db,
      settings: alertSettings(c),
      publish: (topic, payload, opts) => this.bridge.publish(topic, payload, opts),
      logger: this.#log,
      metrics: this.metrics,
      now: this.#now,
      timers: this.#o.timers,
      sites: this.sites,
      leads: leader.isLeader,
    });
    this.#alerts = alerts;
    await alerts.start();
    this.#latestTelemetry = await openLatestTelemetry(c.REDIS_URL, c.REDIS_PREFIX);
    // Per-kiosk series from presence and telemetry, and the ledger's open exceptions: read at each scrape.
    const kioskMetrics = registerKioskMetrics({
      metrics: this.metrics,
      devices: () => (this.#registry?.devices ?? []).filter((d) => this.#owns(d.site)),
      presence: this.#presence,
      latestTelemetry: this.#latestTelemetry,
      now: this.#now,
      logger: this.#log,
    });
    registerLedgerMetrics({ db, metrics: this.metrics, logger: this.#log });

    this.#bridge = new Bridge({
      url: c.MQTT_URL,
      username: c.CLOUD_MQTT_SECRET ? serviceUsername("cloud") : undefined,
      password: c.CLOUD_MQTT_SECRET,
      db,
      presence: this.#presence,
      isKnownDevice: (d) => this.#registry!.hasDevice(d),
      logger: this.#log,
      metrics: this.metrics,
      now: this.#now,
      timers: this.#o.timers,
      gapWaitMs: c.GAP_WAIT_MS,
      heartbeatSeconds: c.CLOUD_HEARTBEAT_SECONDS,
      instance: c.CLOUD_INSTANCE,
      sites: this.sites,
      shareGroup: c.CLOUD_SHARE_GROUP,
      ingest: ingests,
      onCommitted: this.#o.onCommitted,
    });
    this.#telemetry = new TelemetryRecorder({
      db,
      latest: this.#latestTelemetry,
      logger: this.#log,
      metrics: this.metrics,
      now: this.#now,
      timers: this.#o.timers,
      retentionDays: c.TELEMETRY_RETENTION_DAYS,
      writes: leader.isLeader,
    });
    this.#bridge.fleet.on("telemetry", this.#telemetry.record);
    this.#bridge.fleet.on("telemetry", kioskMetrics.heard);
    this.#telemetry.start();
    alerts.attach(this.#bridge.fleet);
    // Commands, configuration and the events feed listen before the first connect: the retained
    // births, configs and states come with the subscription.
    this.#commands = new CommandDesk({
      db,
      link: this.#bridge,
      logger: this.#log,
      now: this.#now,
      timers: this.#o.timers,
      metrics: this.metrics,
      leads: leader.isLeader,
    });
    this.#commands.attach();
    this.#configs = new ConfigDesk({ db, link: this.#bridge, logger: this.#log, now: this.#now });
    this.#configs.attach();
    // Each applied online/offline, for the device page's status history.
    this.#statusHistory = new StatusHistory({ db, link: this.#bridge, logger: this.#log, now: this.#now });
    this.#statusHistory.attach();
    this.#stopEventsFeed = startEventsFeed(this.#bridge, { logger: this.#log, now: this.#now });
    this.#stopAnnouncingStatuses = announceDeviceStatuses(this.#bridge, db, { logger: this.#log, now: this.#now });
    if (servesApi) {
      // Listening before the API serves: a client connected from the first request hears every commit after it.
      this.#liveFeed = new DatabaseLiveFeed({ db, logger: this.#log, metrics: this.metrics, now: this.#now });
      await this.#liveFeed.start();
      this.#liveSockets = new LiveSockets({ feed: this.#liveFeed, metrics: this.metrics, logger: this.#log });
    }
    await this.#firstMqttConnect(this.#bridge, c.MQTT_URL);

    const presence = this.#presence;
    const bridge = this.#bridge;
    if (servesApi && c.REDIS_URL) {
      this.#limitsRedis = new Redis(c.REDIS_URL, {
        lazyConnect: true,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 1,
      });
      this.#limitsRedis.on("error", () => {}); // reconnects by itself; meanwhile the limits count in process
      await this.#limitsRedis.connect().catch((err: Error) => {
        throw new Error(`cannot connect to REDIS_URL for the rate limits: ${err.message}`);
      });
      this.#apiInstances = new ApiInstances({
        redis: this.#limitsRedis,
        instance: c.CLOUD_INSTANCE,
        prefix: c.REDIS_PREFIX,
        now: this.#now,
        timers: this.#o.timers,
        logger: this.#log,
      });
      await this.#apiInstances.start();
    }
    for (const [name, value] of [
      ["CLOUD_RATE_PER_CREDENTIAL", c.CLOUD_RATE_PER_CREDENTIAL],
      ["CLOUD_RATE_PER_ADDRESS", c.CLOUD_RATE_PER_ADDRESS],
      ["CLOUD_RATE_AUTH_FAILURES", c.CLOUD_RATE_AUTH_FAILURES],
    ] as const) {
      if (value === 0 && servesApi) this.#log.warn({ setting: name }, "rate limit turned off");
    }
    const health = async () => {
      const dbOk = await db.query("SELECT 1").then(
        () => true,
        () => false,
      );
      const presenceOk = await presence.ping();
      const mqttOk = bridge.connected;
      return {
        status: dbOk && presenceOk && mqttOk ? ("ok" as const) : dbOk ? ("degraded" as const) : ("down" as const),
        database: { kind: db.kind, ok: dbOk },
        presence: { kind: presence.kind, ok: presenceOk },
        mqtt: { ok: mqttOk },
      };
    };
    const liveFeed = this.#liveFeed;
    const liveSockets = this.#liveSockets;
    // A bridge serves its probes and metrics only: the API's routes, sessions and live feed are the api role's.
    const app = !(servesApi && liveFeed && liveSockets)
      ? probesOnly(health, this.metrics, c.METRICS_TOKEN)
      : createApi({
          db,
          readDb: this.#readDb,
          presence,
          now: this.#now,
          skewBoundSeconds: c.CLOCK_SKEW_BOUND_S,
          jwtSecret: c.CLOUD_JWT_SECRET,
          jwtIssuer: c.CLOUD_JWT_ISSUER,
          jwtAudience: c.CLOUD_JWT_AUDIENCE,
          metricsToken: c.METRICS_TOKEN,
          rateLimit: {
            windowSeconds: c.CLOUD_RATE_WINDOW_S,
            perCredential: c.CLOUD_RATE_PER_CREDENTIAL,
            perAddress: c.CLOUD_RATE_PER_ADDRESS,
            authFailures: c.CLOUD_RATE_AUTH_FAILURES,
            trustProxy: c.CLOUD_TRUST_PROXY,
            redis: this.#limitsRedis,
            prefix: c.REDIS_PREFIX,
          },
          logger: this.#log,
          registry: () => this.#apiRegistry!,
          metrics: this.metrics,
          health,
          commands: this.#commands,
          configs: this.#configs,
          brokerConnected: () => bridge.connected,
          alerts,
          latestTelemetry: this.#latestTelemetry,
          enrolment: new Enrolment({ db, registryPath: c.REGISTRY_PATH, now: this.#now, logger: this.#log }),
          enrolFailuresPerMinute: c.CLOUD_ENROL_FAILURES_PER_MIN,
          live: liveFeed,
          liveSockets,
        });
    this.#schedulePurge();
    this.#http = await listen(app, {
      port: c.CLOUD_PORT,
      host: c.CLOUD_HOST,
      setting: "CLOUD_PORT",
      tls,
      configure: (server) => {
        problemClientErrors(server);
        this.#liveSockets?.attach(server, app);
        // A client that trickles its headers or body does not hold a connection for Node's default minutes.
        const http = server as { headersTimeout?: number; requestTimeout?: number };
        http.headersTimeout = 20_000;
        http.requestTimeout = 60_000;
      },
    });
    if (c.CLOUD_METRICS_PORT !== undefined) {
      const ops = new Hono().route("/", opsRoutes(health, this.metrics));
      this.#metricsHttp = await listen(ops, {
        port: c.CLOUD_METRICS_PORT,
        host: c.CLOUD_METRICS_HOST,
        setting: "CLOUD_METRICS_PORT",
        configure: problemClientErrors,
      });
    }
    this.#log.info(
      {
        port: this.#http.port,
        https: Boolean(tls),
        database: db.kind,
        presence: presence.kind,
        role: c.CLOUD_ROLE,
        sites: this.sites ?? "every site",
        leading: leader.leading,
      },
      "cloud started",
    );
  }

  /**
   * The bridge's first connection, bounded: a broker that refuses fails the start at once (the
   * bridge rejects on the first error), and one that never answers (a firewall, a wrong port that
   * accepts and stays silent) fails it after MQTT_CONNECT_DEADLINE_MS, one line, instead of a cloud
   * that keeps retrying without ever serving. Once started, the bridge reconnects on its own.
   */
  async #firstMqttConnect(bridge: Bridge, url: string): Promise<void> {
    // Real time, not the injected timers: it bounds a wait on the network, as mqtt.js's own timeouts do.
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new Error(
              `cannot connect to MQTT_URL ${redactUrl(url)}: no answer within ${MQTT_CONNECT_DEADLINE_MS / 1000} s`,
            ),
          ),
        MQTT_CONNECT_DEADLINE_MS,
      );
    });
    try {
      await Promise.race([bridge.start(), deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Drains the bridge (commits and acks what it received), says goodbye on MQTT, then closes. */
  stop(): Promise<void> {
    return this.#stopOnce((bridge) => bridge.stop());
  }

  /** Crash-like stop for tests: no goodbye on MQTT (the broker publishes the Will), no drain. */
  kill(): Promise<void> {
    return this.#stopOnce((bridge) => bridge.kill());
  }

  /** The step a stop in progress is at (for a stop that hangs), else undefined. */
  get stoppingPart(): string | undefined {
    return this.#stage;
  }

  /** One stop at a time: a second call while stopping (SIGINT, then SIGTERM) returns the same stop. */
  #stopOnce(endBridge: (bridge: Bridge) => Promise<void>): Promise<void> {
    this.#stopping ??= this.#shutdown(endBridge).finally(() => {
      this.#stopping = undefined;
      this.#stage = undefined; // a stop that failed is not in progress either
    });
    return this.#stopping;
  }

  async #shutdown(endBridge: (bridge: Bridge) => Promise<void>): Promise<void> {
    this.#stopWatchingRegistry?.();
    this.#stopWatchingRegistry = undefined;
    (this.#o.timers ?? realTimers).clearTimeout(this.#purgeTimer);
    this.#purgeTimer = undefined;
    // Before the server: an upgraded socket would hold its close open.
    this.#stage = "live sockets";
    await this.#liveSockets?.close();
    this.#liveSockets = undefined;
    this.#stage = "HTTP server";
    await this.#http?.close();
    this.#stage = "metrics server";
    await this.#metricsHttp?.close();
    this.#metricsHttp = undefined;
    this.#stage = "bridge";
    if (this.#bridge) await endBridge(this.#bridge);
    this.#stopEventsFeed?.();
    // After the bridge: the audit and config writes of what it heard are finished before the database closes.
    this.#stage = "commands, configs, status history";
    await this.#commands?.detach();
    await this.#configs?.detach();
    await this.#statusHistory?.detach();
    this.#commands = this.#configs = this.#stopEventsFeed = this.#statusHistory = undefined;
    // After the bridge (what it committed last is scanned), before the database closes.
    this.#stage = "alerts";
    await this.#alerts?.stop();
    this.#alerts = undefined;
    // After the bridge: what it heard before it stopped is written too.
    this.#stage = "telemetry";
    await this.#telemetry?.stop();
    // After the last duty's writes (alerts, telemetry), before the database closes: another instance takes them.
    this.#stage = "leader";
    await this.#leader?.stop();
    this.#leader = undefined;
    this.#stage = "latest telemetry, presence, API instances";
    await this.#latestTelemetry?.close();
    await this.#presence?.close();
    await this.#apiInstances?.stop();
    this.#apiInstances = undefined;
    this.#limitsRedis?.disconnect();
    this.#limitsRedis = undefined;
    this.#stopAnnouncingStatuses?.();
    this.#stopAnnouncingStatuses = undefined;
    this.#stage = "live feed";
    await this.#liveFeed?.stop();
    this.#liveFeed = undefined;
    this.#stage = "databases";
    await this.#readDb?.close();
    this.#readDb = undefined;
    if (this.#ownsDb) await this.#db?.close();
    this.#http = this.#bridge = this.#presence = this.#db = undefined;
    this.#telemetry = this.#latestTelemetry = undefined;
    this.#stage = undefined;
  }

  /** Forgets idempotency answers past their retention, hourly (the ledger's key index keeps refusing doubles). */
  #schedulePurge(): void {
    const timers = this.#o.timers ?? realTimers;
    this.#purgeTimer = timers.setTimeout(() => {
      const db = this.#db;
      if (!db) return;
      // One instance purges (the leader); the others only keep the hourly beat.
      if (!this.#leader?.leading) {
        this.#schedulePurge();
        return;
      }
      const before = new Date(this.#now().getTime() - this.#o.config.IDEMPOTENCY_RETENTION_DAYS * 86_400_000);
      void purgeIdempotencyKeys(db, before)
        .then(
          (n) => n > 0 && this.#log.info({ purged: n, before: before.toISOString() }, "idempotency keys purged"),
          (err: Error) => this.#log.warn({ err: err.message }, "idempotency key purge failed"),
        )
        .finally(() => {
          if (this.#db) this.#schedulePurge();
        });
    }, 3_600_000);
  }

  /**
   * With CLOUD_SITES, the API knows only the owned sites' devices: listings show them alone, and a
   * kiosk of another site is sent to its own shard (its members and wallets are in that database).
   */
  #scopeRegistry(): void {
    const registry = this.#registry!;
    const previous = this.#apiRegistry;
    if (this.sites === undefined) {
      this.#apiRegistry = registry;
      return;
    }
    const file = registry.file;
    this.#apiRegistry = new Registry({ ...file, devices: file.devices.filter((d) => this.#owns(d.site)) });
    if (previous) this.#apiRegistry.adoptVerified(previous);
  }

  /** Every registry device has a row (and its site one), so streams and listings know it. */
  async #enrolRegistryDevices(): Promise<void> {
    const devices = this.#registry!.devices.filter((d) => this.#owns(d.site));
    if (devices.length === 0) return;
    await this.#db!.query(
      `INSERT INTO sites (id, name) SELECT DISTINCT s, s FROM unnest($1::text[]) AS s ON CONFLICT DO NOTHING`,
      [devices.map((d) => d.site)],
    );
    await this.#db!.query(
      `INSERT INTO devices (site_id, id) SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING`,
      [devices.map((d) => d.site), devices.map((d) => d.device)],
    );
  }
}

/** CLOUD_ROLE=bridge's HTTP: /healthz, /readyz and /metrics (behind METRICS_TOKEN when set, as on the API). */
function probesOnly(health: Parameters<typeof opsRoutes>[0], metrics: MetricsRegistry, token?: string): Hono {
  const app = new Hono();
  if (token) app.use("/metrics", bearerAuth({ token }));
  return app.route("/", opsRoutes(health, metrics));
}

/** The API's certificate and key; one line naming the variable when a file cannot be read. Never prints the key. */
async function loadTls(certPath: string, keyPath: string): Promise<{ cert: Buffer; key: Buffer }> {
  const read = (path: string, setting: string) =>
    readFile(path).catch((err: NodeJS.ErrnoException) => {
      throw new Error(`${setting}: cannot read ${path}: ${err.code ?? err.message}`);
    });
  const [cert, key] = [await read(certPath, "CLOUD_TLS_CERT"), await read(keyPath, "CLOUD_TLS_KEY")];
  if (!cert.includes("-----BEGIN CERTIFICATE-----"))
    throw new Error(`CLOUD_TLS_CERT: ${certPath} is not a PEM certificate (no BEGIN CERTIFICATE line)`);
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key.toString("latin1")))
    throw new Error(`CLOUD_TLS_KEY: ${keyPath} is not a PEM private key (no BEGIN PRIVATE KEY line)`);
  return { cert, key };
}
