/**
 * A cloud and an aedes gateway on one registry file, both watching it as
 * their services do (REGISTRY_PATH), on real Postgres in a schema of its own,
 * for the enrolment tests (issue 15). The cloud's clock is `clock.now()`
 * (tests move it instead of sleeping); every log line is kept in `logs`; the
 * client address is taken from X-Forwarded-For, so each test can be its own
 * address for the enrolment rate limit.
 */
import { execFile } from "node:child_process";
import { generateKeyPairSync, type KeyObject, randomBytes, sign } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import {
  CloudService,
  type Database,
  mintOperatorToken,
  openPg,
  openPglite,
  parseCloudEnv,
  type Role,
} from "@paylane/cloud";
import { Gateway } from "@paylane/gateway";
import {
  type DeviceAddress,
  deviceIdentity,
  type EnrolRequest,
  enrolSigningInput,
  hashSecret,
  Registry,
  type RegistryFile,
  type RotateRequest,
  rotateSigningInput,
  watchRegistry,
} from "@paylane/protocol";
import mqtt, { type MqttClient } from "mqtt";
import pino from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { PG_URL } from "../../test/support/site.ts";

export interface HarnessOptions {
  /** Serve the API on HTTPS with a self-signed certificate made by openssl. */
  tls?: boolean;
  enrolFailuresPerMinute?: number;
  /** Real Postgres in its own schema (default), or PGlite as `npm start` runs it. */
  db?: "pg" | "pglite";
  /** Hand-registered devices (no enrolment key), with their secrets in `secrets`. */
  devices?: string[];
}

export interface Answer {
  status: number;
  body: Record<string, unknown>;
}

/** A kiosk's enrolment identity, as the device side makes it: an Ed25519 key and its own secret. */
export interface TestKiosk {
  site: string;
  device: string;
  publicKey: string;
  privateKey: KeyObject;
  secret: string;
  secretHash: string;
}

export async function newKiosk(site: string, device: string): Promise<TestKiosk> {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const secret = randomBytes(18).toString("base64url");
  return {
    site,
    device,
    publicKey: publicKey.export({ format: "der", type: "spki" }).toString("base64url"),
    privateKey,
    secret,
    secretHash: await hashSecret(secret),
  };
}

/** A signed enrolment request; `over` changes fields after signing (a tampered request). */
export function enrolRequest(k: TestKiosk, claim: string, at: Date, over: Partial<EnrolRequest> = {}): EnrolRequest {
  const unsigned = {
    claim,
    site: k.site,
    device: k.device,
    publicKey: k.publicKey,
    secretHash: k.secretHash,
    at: at.toISOString(),
  };
  const signature = sign(null, enrolSigningInput(unsigned), k.privateKey).toString("base64url");
  return { ...unsigned, signature, ...over };
}

export function rotateRequest(k: TestKiosk, secretHash: string, at: Date): RotateRequest {
  const unsigned = { secretHash, at: at.toISOString() };
  const signature = sign(null, rotateSigningInput(k.site, k.device, unsigned), k.privateKey).toString("base64url");
  return { ...unsigned, signature };
}

export class EnrolmentHarness {
  readonly site = `t${randomBytes(4).toString("hex")}`;
  readonly otherSite = `${this.site}x`;
  readonly jwtSecret = randomBytes(32).toString("base64url");
  readonly secrets = new Map<string, string>();
  readonly logs: string[] = [];
  /** Milliseconds the cloud's clock is ahead of the wall clock. */
  offsetMs = 0;
  readonly now = () => new Date(Date.now() + this.offsetMs);
  dir = "";
  registryPath = "";
  db!: Database;
  cloud!: CloudService;
  gateway!: Gateway;
  ca: Buffer | undefined;
  readonly #o: HarnessOptions;
  readonly #schema = `t_${randomBytes(6).toString("hex")}`;
  readonly #cloudSecret = randomBytes(18).toString("base64url");
  #stopWatch: (() => void) | undefined;
  readonly #clients: MqttClient[] = [];

  constructor(o: HarnessOptions = {}) {
    this.#o = o;
  }

  get schema(): string {
    return this.#schema;
  }

  async start(): Promise<void> {
    this.dir = await mkdtemp(join(tmpdir(), "paylane-enrol-"));
    this.registryPath = join(this.dir, "registry.json");
    for (const d of this.#o.devices ?? []) this.secrets.set(d, randomBytes(18).toString("base64url"));
    const file: RegistryFile = {
      version: 1,
      devices: await Promise.all(
        [...this.secrets].map(async ([device, secret]) => ({
          site: this.site,
          device,
          secretHash: await hashSecret(secret),
        })),
      ),
      services: [{ id: "cloud", role: "bridge", secretHash: await hashSecret(this.#cloudSecret) }],
    };
    await Registry.save(this.registryPath, file);
    const quiet = pino({ level: "silent" });
    // The gateway as paylane-gateway runs it: the registry file watched, each new version in force at once.
    this.gateway = new Gateway({
      registry: await Registry.load(this.registryPath),
      port: 0,
      logger: quiet,
      metrics: new MetricsRegistry(),
    });
    await this.gateway.start();
    this.#stopWatch = watchRegistry(this.registryPath, (next) => this.gateway.replaceRegistry(next), quiet);

    const env: Record<string, string> = {
      REGISTRY_PATH: this.registryPath,
      CLOUD_PORT: "0",
      MQTT_URL: `mqtt://127.0.0.1:${this.gateway.port}`,
      CLOUD_MQTT_SECRET: this.#cloudSecret,
      CLOUD_JWT_SECRET: this.jwtSecret,
      CLOUD_TRUST_PROXY: "true",
      CLOUD_INSTANCE: `test-${this.site}`,
      CLOUD_ENROL_FAILURES_PER_MIN: String(this.#o.enrolFailuresPerMinute ?? 10),
    };
    if (this.#o.tls) {
      const cert = join(this.dir, "cert.pem");
      const key = join(this.dir, "key.pem");
      await promisify(execFile)("openssl", [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        key,
        "-out",
        cert,
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=IP:127.0.0.1,DNS:localhost",
      ]);
      env.CLOUD_TLS_CERT = cert;
      env.CLOUD_TLS_KEY = key;
      this.ca = await readFile(cert);
    }
    this.db = this.#o.db === "pglite" ? await openPglite() : await openPg({ url: PG_URL, schema: this.#schema });
    // Every line at every level, so a test can prove what never appears in one.
    const logger = pino({ level: "trace" }, { write: (line: string) => void this.logs.push(line) });
    this.cloud = new CloudService({ config: parseCloudEnv(env), logger, db: this.db, now: this.now, site: this.site });
    await this.cloud.start();
  }

  address(device: string): DeviceAddress {
    return { site: this.site, device };
  }

  token(role: Role, sites?: string[], sub = `${role}-test`): Promise<string> {
    return mintOperatorToken(this.jwtSecret, { sub, role, sites });
  }

  /** One HTTP(S) call to the cloud (trusting the test CA on HTTPS); JSON in and out. */
  request(
    method: string,
    path: string,
    o: { body?: unknown; token?: string; basic?: [string, string]; from?: string } = {},
  ): Promise<Answer> {
    const url = new URL(path, this.cloud.url);
    const payload = o.body === undefined ? undefined : Buffer.from(JSON.stringify(o.body));
    const headers: Record<string, string> = { "x-forwarded-for": o.from ?? "192.0.2.1" };
    if (payload) headers["content-type"] = "application/json";
    if (o.token) headers.authorization = `Bearer ${o.token}`;
    if (o.basic) headers.authorization = `Basic ${Buffer.from(o.basic.join(":")).toString("base64")}`;
    const send = url.protocol === "https:" ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = send(url, { method, headers, ...(this.ca ? { ca: this.ca } : {}) }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          resolve({ status: res.statusCode ?? 0, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} });
        });
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end(payload);
    });
  }

  /** Creates claim codes as an unscoped admin. */
  async claims(count = 1, site = this.site, ttlSeconds?: number): Promise<Array<{ id: string; code: string }>> {
    const res = await this.request("POST", "/api/v1/claims", {
      token: await this.token("admin"),
      body: { site, count, ...(ttlSeconds ? { ttlSeconds } : {}) },
    });
    if (res.status !== 201) throw new Error(`claims answered ${res.status}: ${JSON.stringify(res.body)}`);
    return res.body.claims as Array<{ id: string; code: string }>;
  }

  /** An MQTT connection as `{site}/{device}` with `secret`; rejects when the gateway refuses it. */
  mqttAs(site: string, device: string, secret: string): Promise<MqttClient> {
    const a = { site, device };
    const client = mqtt.connect(`mqtt://127.0.0.1:${this.gateway.port}`, {
      clientId: deviceIdentity.clientId(a),
      username: deviceIdentity.username(a),
      password: secret,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 5000,
    });
    this.#clients.push(client);
    return new Promise((resolve, reject) => {
      client.once("connect", () => resolve(client));
      client.on("error", (err) => reject(err));
      client.once("close", () => reject(new Error("connection closed before CONNACK")));
    });
  }

  /** Whether the gateway refuses `{site}/{device}` with `secret`. */
  async refuses(site: string, device: string, secret: string): Promise<boolean> {
    try {
      const client = await this.mqttAs(site, device, secret);
      await client.endAsync(true);
      return false;
    } catch {
      return true;
    }
  }

  /** Retries `mqttAs` until it connects or `ms` pass (the registry watch is debounced). */
  async mqttWithin(site: string, device: string, secret: string, ms = 3000): Promise<MqttClient> {
    const deadline = Date.now() + ms;
    for (;;) {
      try {
        return await this.mqttAs(site, device, secret);
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  /** Every row of every table of the cloud's schema, as text. */
  async allRows(): Promise<string[]> {
    const { rows: tables } = await this.db.query<{ name: string }>(
      "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema()",
    );
    const out: string[] = [];
    for (const t of tables) {
      const { rows } = await this.db.query<{ row: string }>(`SELECT t::text AS row FROM "${t.name}" t`);
      out.push(...rows.map((r) => `${t.name}: ${r.row}`));
    }
    return out;
  }

  async count(sql: string, params: unknown[] = []): Promise<number> {
    const { rows } = await this.db.query<{ n: number }>(sql, params);
    return Number(rows[0]?.n ?? 0);
  }

  async stop(): Promise<void> {
    for (const c of this.#clients) await c.endAsync(true).catch(() => {});
    await this.cloud?.stop();
    this.#stopWatch?.();
    await this.gateway?.stop();
    if (this.#o.db !== "pglite") await this.db?.query(`DROP SCHEMA IF EXISTS ${this.#schema} CASCADE`).catch(() => {});
    await this.db?.close();
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }
}
