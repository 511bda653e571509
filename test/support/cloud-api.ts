/**
 * The cloud's HTTP API alone, for the security tests: `createApi` on real
 * Postgres (a schema of its own, dropped at close) or PGlite, two seeded
 * sites with a kiosk each, operator tokens and device credentials. Requests
 * go in process (`app.request`) or, with `serve()`, over a real socket with
 * the cloud's own server configuration (problem+json client errors).
 */
import { randomBytes } from "node:crypto";
import {
  type Database,
  MemoryPresence,
  migrate,
  mintOperatorToken,
  openPg,
  openPglite,
  type Role,
  seedSite,
} from "@paylane/cloud";
import { hashSecret, Registry } from "@paylane/protocol";
import { type Listening, listen, problemClientErrors } from "@paylane/protocol/service";
import type { Redis } from "ioredis";
import { Registry as MetricsRegistry } from "prom-client";
import { createApi } from "../../cloud/src/api/app.ts";

const PG_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";

export const JWT_SECRET = "a-security-test-secret-of-at-least-32-chars";
export const METRICS_TOKEN = "metrics-token-for-the-security-tests";
export const DEVICE_SECRET = "device-secret-0123456789abcdef";

export interface ApiHarnessOptions {
  db: "pg" | "pglite";
  rateLimit?: {
    windowSeconds?: number;
    perCredential?: number;
    perAddress?: number;
    authFailures?: number;
    redis?: Redis;
    prefix?: string;
  };
  metricsToken?: string;
}

export class ApiHarness {
  readonly #o: ApiHarnessOptions;
  readonly site = `s${randomBytes(3).toString("hex")}`;
  readonly otherSite = `o${randomBytes(3).toString("hex")}`;
  readonly schema = `t_${randomBytes(6).toString("hex")}`;
  db!: Database;
  app!: ReturnType<typeof createApi>;
  #http: Listening | undefined;

  constructor(o: ApiHarnessOptions) {
    this.#o = o;
  }

  async start(): Promise<void> {
    this.db = this.#o.db === "pg" ? await openPg({ url: PG_URL, schema: this.schema }) : await openPglite();
    await migrate(this.db);
    await seedSite(this.db, { id: this.site, name: "Venue", timezone: "UTC" });
    await seedSite(this.db, { id: this.otherSite, name: "Other venue", timezone: "UTC" });
    const registry = new Registry({
      version: 1,
      devices: [
        { site: this.site, device: "k1", secretHash: await hashSecret(DEVICE_SECRET) },
        { site: this.otherSite, device: "x1", secretHash: await hashSecret(DEVICE_SECRET) },
      ],
      services: [],
    });
    await this.db.query("INSERT INTO devices (site_id, id) VALUES ($1, 'k1'), ($2, 'x1') ON CONFLICT DO NOTHING", [
      this.site,
      this.otherSite,
    ]);
    this.app = createApi({
      db: this.db,
      presence: new MemoryPresence(),
      registry: () => registry,
      metrics: new MetricsRegistry(),
      health: async () => ({ status: "ok" }),
      jwtSecret: JWT_SECRET,
      metricsToken: this.#o.metricsToken,
      ...(this.#o.rateLimit
        ? {
            rateLimit: {
              windowSeconds: 10,
              perCredential: 5000,
              perAddress: 50_000,
              authFailures: 100,
              ...this.#o.rateLimit,
            },
          }
        : {}),
    });
  }

  /** Serves the API on a loopback port, configured as the cloud configures its server. */
  async serve(): Promise<string> {
    this.#http = await listen(this.app, {
      port: 0,
      host: "127.0.0.1",
      setting: "test",
      configure: problemClientErrors,
    });
    return `http://127.0.0.1:${this.#http.port}`;
  }

  get port(): number {
    if (!this.#http) throw new Error("not served");
    return this.#http.port;
  }

  token(role: Role = "admin", o: { sites?: string[]; sub?: string } = {}): Promise<string> {
    return mintOperatorToken(JWT_SECRET, { sub: o.sub ?? `ops-${role}`, role, sites: o.sites });
  }

  device(site = this.site, id = "k1", secret = DEVICE_SECRET): string {
    return `Basic ${Buffer.from(`${site}/${id}:${secret}`).toString("base64")}`;
  }

  request(path: string, init: RequestInit = {}): Promise<Response> {
    return Promise.resolve(this.app.request(path, init));
  }

  async close(): Promise<void> {
    await this.#http?.close();
    if (this.#o.db === "pg") await this.db?.query(`DROP SCHEMA IF EXISTS ${this.schema} CASCADE`);
    await this.db?.close();
  }
}

/** The parts of a JWT (header, payload, signature) long enough to recognise in a body, for "never echoed" checks. */
export function tokenParts(token: string): string[] {
  return [token, ...token.split(".").filter((p) => p.length >= 8)];
}
