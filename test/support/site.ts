/**
 * A whole PayLane site for integration tests, on real parts: the aedes
 * gateway or a real Mosquitto, the cloud on real Postgres (own schema) or
 * PGlite, presence in real Redis (own prefix) or in process, and kiosk
 * daemons with simulated readers. Everything binds port 0 and uses its own
 * site id, so runs on shared services never see each other.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CloudService,
  type Database,
  DEMO_MEMBERS,
  type DemoMember,
  mintOperatorToken,
  openPg,
  openPglite,
  parseCloudEnv,
  type Role,
  type SeedSite,
  seedSite,
} from "@paylane/cloud";
import { type DeviceConfigInput, KioskDaemon, parseDeviceConfig } from "@paylane/device";
import { Gateway } from "@paylane/gateway";
import {
  type DeviceAddress,
  deviceIdentity,
  hashSecret,
  type OperatorRole,
  operatorUsername,
  Registry,
  type RegistryFile,
  serviceUsername,
} from "@paylane/protocol";
import { Redis } from "ioredis";
import mqtt, { type MqttClient } from "mqtt";
import pino from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { kioskPost } from "./kiosk-api.ts";
import { PrivateMosquitto } from "./private-mosquitto.ts";
import { Signal } from "./signal.ts";

export type DbKind = "pg" | "pglite";
export type PresenceKind = "redis" | "memory";
/**
 * `mosquitto` is the machine's shared broker; `mosquitto-private` one the test may kill;
 * `mosquitto-acl` a private one running the configuration `paylane-gateway mosquitto-config`
 * makes from the site's registry (every identity authenticated, the gateway's ACLs).
 */
export type BrokerKind = "aedes" | "mosquitto" | "mosquitto-private" | "mosquitto-acl";

export interface Backends {
  db: DbKind;
  presence: PresenceKind;
  broker: BrokerKind;
}

/** Each value of each axis meets both values of the others. */
export const BACKEND_MATRIX: Backends[] = [
  { db: "pg", presence: "redis", broker: "aedes" },
  { db: "pglite", presence: "memory", broker: "aedes" },
  { db: "pg", presence: "memory", broker: "mosquitto" },
  { db: "pglite", presence: "redis", broker: "mosquitto-acl" },
];

export const describe = (b: Backends) => `${b.db}+${b.presence}+${b.broker}`;

export const PG_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
export const REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
export const MOSQUITTO_URL = process.env.TEST_MOSQUITTO_URL ?? "mqtt://127.0.0.1:1883";

/** Per-kiosk config on top of the site's: its hardware, or its own broker URL (e.g. through a FaultProxy). */
export type HardwareConfig = Partial<
  Pick<DeviceConfigInput, "reader" | "printer" | "gpio" | "mqttUrl" | "cloudUrl" | "terminal" | "payments">
>;

export interface TestSiteOptions extends Backends {
  kiosks?: string[];
  /** Extra enrolled devices with no daemon, for raw MQTT clients. */
  probes?: string[];
  members?: readonly DemoMember[];
  ackTimeoutMs?: number;
  timezone?: string;
  now?: () => Date;
  /** Per kiosk: its reader, printer and gpio sections (default: a PN532 simulator, no printer). */
  hardware?: Record<string, HardwareConfig>;
  /** The site's offline payment limits (default: the migration's). */
  limits?: SeedSite["limits"];
  /** Every online payment attempt of every kiosk, with its key. */
  onPaymentAttempt?: (device: string, key: string, attempt: number) => void;
  /** Where every part logs (default: nowhere). */
  logger?: pino.Logger;
}

const quiet = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });

export class TestSite {
  readonly o: Required<
    Omit<TestSiteOptions, "members" | "now" | "hardware" | "limits" | "logger" | "onPaymentAttempt">
  > &
    Pick<TestSiteOptions, "members" | "now" | "hardware" | "limits" | "logger" | "onPaymentAttempt">;
  readonly site = `t${randomBytes(4).toString("hex")}`;
  readonly signal = new Signal();
  readonly secrets = new Map<string, string>();
  readonly kiosks = new Map<string, KioskDaemon>();
  dir = "";
  db!: Database;
  cloud: CloudService | undefined;
  gateway: Gateway | undefined;
  mosquitto: PrivateMosquitto | undefined;
  #schema = `t_${randomBytes(6).toString("hex")}`;
  #redisPrefix = `test:${randomBytes(6).toString("hex")}:`;
  #cloudSecret = randomBytes(18).toString("base64url");
  /**
   * Operators on the broker, one per role: `viewer` and `operator` are
   * granted this site, `other-operator` another site, `admin` every site.
   */
  readonly operators = new Map<string, { role: OperatorRole; sites: string[]; password: string }>();
  readonly jwtSecret = randomBytes(32).toString("base64url");
  /** The cloud's METRICS_TOKEN: `/metrics` answers only with it. */
  readonly metricsToken = randomBytes(24).toString("base64url");
  #registryPath = "";
  #registry: Registry | undefined;
  #clients: MqttClient[] = [];
  #cloudPort = 0;

  constructor(o: TestSiteOptions) {
    this.o = { kiosks: ["k1", "k2"], probes: ["probe"], ackTimeoutMs: 2000, timezone: "UTC", ...o };
  }

  /** The Postgres schema this site's tables live in (pg only). */
  get schema(): string {
    return this.#schema;
  }

  get mqttUrl(): string {
    if (this.o.broker === "aedes") return `mqtt://127.0.0.1:${this.gateway!.port}`;
    if (this.o.broker === "mosquitto-private") return this.mosquitto!.url;
    if (this.o.broker === "mosquitto-acl") return this.mosquitto!.url;
    return MOSQUITTO_URL;
  }

  address(device: string): DeviceAddress {
    return { site: this.site, device };
  }

  async start(): Promise<void> {
    this.dir = await mkdtemp(join(tmpdir(), "paylane-test-"));
    const devices = [...this.o.kiosks, ...this.o.probes];
    for (const d of devices) this.secrets.set(d, randomBytes(18).toString("base64url"));
    const file: RegistryFile = {
      version: 1,
      devices: await Promise.all(
        devices.map(async (device) => ({
          site: this.site,
          device,
          secretHash: await hashSecret(this.secrets.get(device)!),
        })),
      ),
      services: [{ id: "cloud", role: "bridge", secretHash: await hashSecret(this.#cloudSecret) }],
      operators: await this.#operatorEntries(),
    };
    this.#registryPath = join(this.dir, "registry.json");
    await Registry.save(this.#registryPath, file);

    if (this.o.broker === "aedes") {
      this.#registry = new Registry(file);
      this.gateway = new Gateway({
        registry: this.#registry,
        port: 0,
        logger: quiet,
        metrics: new MetricsRegistry(),
      });
      await this.gateway.start();
    } else if (this.o.broker === "mosquitto-private") {
      this.mosquitto = new PrivateMosquitto(this.dir);
      await this.mosquitto.start();
    } else if (this.o.broker === "mosquitto-acl") {
      this.mosquitto = new PrivateMosquitto(this.dir, { registry: this.#registryPath, secrets: this.#plainSecrets() });
      await this.mosquitto.start();
    }

    this.db = this.o.db === "pg" ? await openPg({ url: PG_URL, schema: this.#schema }) : await openPglite();
    await this.startCloud();
    await seedSite(
      this.db,
      { id: this.site, name: "Test venue", timezone: this.o.timezone, limits: this.o.limits },
      this.o.members,
    );
    for (const k of this.o.kiosks) await this.startKiosk(k, this.o.hardware?.[k]);
  }

  /** Starts the cloud; a restarted cloud listens on the port the first one had, where kiosks look for it. */
  async startCloud(): Promise<CloudService> {
    const config = parseCloudEnv({
      CLOUD_PORT: String(this.#cloudPort),
      MQTT_URL: this.mqttUrl,
      CLOUD_MQTT_SECRET: this.#cloudSecret,
      REGISTRY_PATH: this.#registryPath,
      REDIS_URL: this.o.presence === "redis" ? REDIS_URL : undefined,
      REDIS_PREFIX: this.#redisPrefix,
      CLOUD_INSTANCE: `test-${this.site}`,
      // a short wait, so a gap test sees the replay request quickly
      GAP_WAIT_MS: "300",
      CLOUD_JWT_SECRET: this.jwtSecret,
      METRICS_TOKEN: this.metricsToken,
    });
    const cloud = new CloudService({
      config,
      logger: this.o.logger ?? quiet,
      db: this.db,
      site: this.site,
      onCommitted: this.signal.notify,
      now: this.o.now,
    });
    await cloud.start();
    this.cloud = cloud;
    this.#cloudPort = cloud.port;
    this.signal.notify();
    return cloud;
  }

  /**
   * Another cloud instance on this site's Postgres schema, with connections
   * (and a LISTEN) of its own, whose bridge hears no kiosk of this site: an
   * API instance behind the same database. The caller stops it.
   */
  async startApiInstance(name: string): Promise<CloudService> {
    if (this.o.db !== "pg") throw new Error("instances share a database over the network: pg only");
    const config = parseCloudEnv({
      CLOUD_PORT: "0",
      MQTT_URL: this.mqttUrl,
      CLOUD_MQTT_SECRET: this.#cloudSecret,
      REGISTRY_PATH: this.#registryPath,
      DATABASE_URL: PG_URL,
      DATABASE_SCHEMA: this.#schema,
      REDIS_URL: this.o.presence === "redis" ? REDIS_URL : undefined,
      REDIS_PREFIX: this.#redisPrefix,
      CLOUD_INSTANCE: `test-${this.site}-${name}`,
      CLOUD_JWT_SECRET: this.jwtSecret,
      METRICS_TOKEN: this.metricsToken,
    });
    const cloud = new CloudService({
      config,
      logger: this.o.logger ?? quiet,
      site: `${this.site}-${name}`,
      now: this.o.now,
    });
    await cloud.start();
    return cloud;
  }

  async stopCloud(how: "stop" | "kill" = "stop"): Promise<void> {
    const cloud = this.cloud;
    this.cloud = undefined;
    await (how === "kill" ? cloud?.kill() : cloud?.stop());
  }

  /** `overrides`: reader, printer, gpio and broker URL for this kiosk (default: a PN532 simulator, no printer). */
  async startKiosk(
    device: string,
    overrides: HardwareConfig = {},
    { waitOnline = true }: { waitOnline?: boolean } = {},
  ): Promise<KioskDaemon> {
    const config = parseDeviceConfig({
      // a quick poll: integration tests tap hundreds of cards through the PN532 simulator
      reader: { type: "pn532-simulator", pollIntervalMs: 5 },
      mqttUrl: this.mqttUrl,
      ...overrides,
      site: this.site,
      device,
      secret: this.secrets.get(device),
      cloudUrl: overrides.cloudUrl ?? (this.cloud ? this.cloud.url : "http://127.0.0.1:9"),
      dataDir: join(this.dir, device),
      http: { host: "127.0.0.1", port: 0 },
      ackTimeoutMs: this.o.ackTimeoutMs,
    });
    const daemon = new KioskDaemon({
      config,
      logger: (this.o.logger ?? quiet).child({ device }),
      now: this.o.now,
      onPaymentAttempt: (key, attempt) => this.o.onPaymentAttempt?.(device, key, attempt),
    });
    for (const e of [
      "cloud-link-changed",
      "storage-changed",
      "peripheral-changed",
      "tap-decided",
      "receipt-issued",
      "entries-acked",
      "payment-progressed",
      "journal-rolled-back",
      "journal-conflicts",
    ] as const)
      daemon.events.on(e, this.signal.notify);
    await daemon.start();
    this.kiosks.set(device, daemon);
    if (!waitOnline) return daemon;
    // The first replica pull happens at start; wait for it so taps see the members.
    await this.signal.until(
      async () => (await daemon.state()).online && daemon.replicaSync.lastError === undefined,
      `${device} online`,
    );
    await daemon.replicaSync.syncNow();
    return daemon;
  }

  /** A bearer token for the cloud's operator API (admin: every permission, for tests that are not about roles). */
  operatorToken(role: Role = "admin", sub = "ops-test"): Promise<string> {
    return mintOperatorToken(this.jwtSecret, { sub, role });
  }

  /** Calls the cloud's API as an operator; JSON in and out. */
  async operator(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
    const res = await fetch(new URL(path, this.cloud!.url), {
      method,
      headers: {
        authorization: `Bearer ${await this.operatorToken()}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
        ...headers,
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, unknown> };
  }

  kiosk(device: string): KioskDaemon {
    const k = this.kiosks.get(device);
    if (!k) throw new Error(`no kiosk ${device}`);
    return k;
  }

  /** POSTs JSON to a kiosk's local API with its token (from its data folder), as a tool on the kiosk does. */
  kioskPost(device: string, path: string, body: unknown = {}): Promise<Response> {
    return kioskPost(this.kiosk(device).port, join(this.dir, device), path, body);
  }

  /** Resolves once every entry of `device`'s journal is acked. */
  async drained(device: string, timeoutMs?: number): Promise<void> {
    const k = this.kiosk(device);
    await this.signal.until(async () => (await k.journal.stats()).backlog === 0, `${device} drained`, timeoutMs);
  }

  /** The cloud's /metrics (Prometheus text), scraped with its METRICS_TOKEN. */
  async cloudMetrics(): Promise<string> {
    const res = await fetch(`${this.cloud!.url}/metrics`, {
      headers: { authorization: `Bearer ${this.metricsToken}` },
    });
    if (res.status !== 200) throw new Error(`cloud /metrics answered ${res.status}: ${await res.text()}`);
    return res.text();
  }

  /** The bridge's entry counters, from the cloud's /metrics. */
  async bridgeEntries(): Promise<{ applied: number; duplicate: number }> {
    const text = await this.cloudMetrics();
    const read = (outcome: string) => {
      const m = new RegExp(`^paylane_bridge_entries_total\\{outcome="${outcome}"\\} (\\d+)`, "m").exec(text);
      return Number(m?.[1] ?? 0);
    };
    return { applied: read("applied"), duplicate: read("duplicate") };
  }

  /** Restarts the broker in place (same port); kiosks and cloud reconnect by themselves. */
  async restartBroker(): Promise<void> {
    if (this.gateway) {
      const port = this.gateway.port;
      await this.gateway.stop();
      this.gateway = new Gateway({ registry: this.#registry!, port, logger: quiet, metrics: new MetricsRegistry() });
      await this.gateway.start();
    } else if (this.mosquitto) {
      await this.mosquitto.kill();
      await this.mosquitto.start();
    } else {
      throw new Error("the machine's shared Mosquitto is never restarted by tests");
    }
  }

  /** An MQTT client with a probe device's own credentials. */
  async rawDevice(device = "probe"): Promise<MqttClient> {
    const a = this.address(device);
    const client = await mqtt.connectAsync(
      this.mqttUrl,
      {
        clientId: deviceIdentity.clientId(a),
        username: deviceIdentity.username(a),
        password: this.secrets.get(device),
        protocolVersion: 4,
        reconnectPeriod: 0,
        connectTimeout: 5000,
      },
      // no retry loop: a broker closing the socket mid-CONNECT must fail the call, not hang it
      false,
    );
    this.#clients.push(client);
    return client;
  }

  async #operatorEntries(): Promise<NonNullable<RegistryFile["operators"]>> {
    const password = () => randomBytes(18).toString("base64url");
    this.operators.set("viewer", { role: "viewer", sites: [this.site], password: password() });
    this.operators.set("operator", { role: "operator", sites: [this.site], password: password() });
    this.operators.set("other-operator", { role: "operator", sites: [`${this.site}x`], password: password() });
    this.operators.set("admin", { role: "admin", sites: [], password: password() });
    return Promise.all(
      [...this.operators].map(async ([id, o]) => ({
        id,
        role: o.role,
        sites: o.sites,
        secretHash: await hashSecret(o.password),
      })),
    );
  }

  /** Every identity's plain secret by MQTT username, as `paylane-gateway mosquitto-config --secrets` reads them. */
  #plainSecrets(): Record<string, string> {
    const secrets: Record<string, string> = { [serviceUsername("cloud")]: this.#cloudSecret };
    for (const [device, secret] of this.secrets) secrets[deviceIdentity.username(this.address(device))] = secret;
    for (const [id, o] of this.operators) secrets[operatorUsername(id)] = o.password;
    return secrets;
  }

  /** MQTT connect options of one of `operators` (username `ops:{id}`). */
  operatorLogin(id = "viewer"): { username: string; password: string } {
    const o = this.operators.get(id);
    if (!o) throw new Error(`no operator ${id} in this test site`);
    return { username: operatorUsername(id), password: o.password };
  }

  /** A client with an operator's identity (see `operators`). */
  async operatorClient(id = "viewer"): Promise<MqttClient> {
    const client = await mqtt.connectAsync(
      this.mqttUrl,
      {
        clientId: `op-${id}-${randomBytes(4).toString("hex")}`,
        ...this.operatorLogin(id),
        protocolVersion: 4,
        reconnectPeriod: 0,
        connectTimeout: 5000,
      },
      false,
    );
    this.#clients.push(client);
    return client;
  }

  /** An ops watcher on the fleet's topics, with the cloud's service identity and a client id of its own. */
  async opsClient(): Promise<MqttClient> {
    const client = await mqtt.connectAsync(
      this.mqttUrl,
      {
        clientId: `ops-${randomBytes(4).toString("hex")}`,
        username: serviceUsername("cloud"),
        password: this.#cloudSecret,
        protocolVersion: 4,
        reconnectPeriod: 0,
      },
      false,
    );
    this.#clients.push(client);
    return client;
  }

  async count(sql: string, params: unknown[] = []): Promise<number> {
    const { rows } = await this.db.query<{ n: number }>(sql, params);
    return Number(rows[0]?.n ?? 0);
  }

  /** The part `stop()` is stopping now, and where inside it: a test whose stop hangs names it. */
  get stopping(): string | undefined {
    const at = this.#stage;
    if (!at) return undefined;
    const inside = at.inside?.();
    return inside ? `${at.what}, at ${inside}` : at.what;
  }
  #stage: { what: string; inside?: () => string | undefined } | undefined;

  /** Stops every part, even after one fails to; the parts that failed are named in one error at the end. */
  async stop(): Promise<void> {
    const failed: string[] = [];
    const step = async (what: string, fn: () => Promise<unknown> | undefined, inside?: () => string | undefined) => {
      this.#stage = { what, inside };
      try {
        await fn();
      } catch (err) {
        failed.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
      } finally {
        this.#stage = undefined;
      }
    };
    for (const c of this.#clients) await step(`MQTT client ${c.options.clientId}`, () => c.endAsync(true));
    for (const [device, k] of this.kiosks)
      await step(
        `kiosk ${device}`,
        () => k.stop(),
        () => k.stoppingPart,
      );
    this.kiosks.clear();
    const { cloud, gateway } = this;
    await step(
      "the cloud",
      () => cloud?.stop(),
      () => cloud?.stoppingPart,
    );
    await step(
      "the gateway",
      () => gateway?.stop(),
      () => gateway?.stoppingPart,
    );
    await step("Mosquitto", () => this.mosquitto?.kill());
    if (this.o.db === "pg") {
      await step(`dropping schema ${this.#schema}`, () =>
        this.db?.query(`DROP SCHEMA IF EXISTS ${this.#schema} CASCADE`),
      );
    }
    await step("the database", () => this.db?.close());
    if (this.o.presence === "redis") await step("the Redis keys", () => dropRedisPrefix(this.#redisPrefix));
    await rm(this.dir, { recursive: true, force: true });
    if (failed.length > 0) throw new Error(`site ${this.site} did not stop cleanly: ${failed.join("; ")}`);
  }
}

/** Deletes every key under `prefix`: tests share one Redis and leave nothing behind. */
export async function dropRedisPrefix(prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true });
  try {
    await redis.connect();
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 500);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== "0");
  } finally {
    redis.disconnect();
  }
}

/** The card UID of a demo member (DEMO_MEMBERS), by member id. */
export function demoCard(memberId: string): string {
  const m = DEMO_MEMBERS.find((x) => x.id === memberId);
  if (!m?.cardUid) throw new Error(`no demo member ${memberId} with a card`);
  return m.cardUid;
}

/** `n` members with distinct 4-byte UIDs, for volume tests. */
export function manyMembers(n: number, prefix = "m"): DemoMember[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `${prefix}-${i}`,
    name: `Member ${i}`,
    cardUid: (0x10000000 + i).toString(16).toUpperCase(),
    code: `C${String(i).padStart(6, "0")}`,
    status: "active" as const,
  }));
}
