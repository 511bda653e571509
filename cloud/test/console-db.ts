/**
 * A real Postgres schema of its own for a console test (dropped after): its
 * open and migrations take a second or two, where PGlite's take ten on a busy
 * machine, and the row locks the session code takes are Postgres' own.
 *
 * openConsoleSite: that schema seeded as the console's tests need it (two sites,
 * a kiosk each, k1 online with telemetry), with the in-process stores, a live
 * feed the test pushes into and a logger whose lines are kept. The GraphQL test
 * and the console attack harness (test/security/console-harness.ts) both start from it.
 */
import { randomBytes } from "node:crypto";
import { hashSecret, type LiveEvent, Registry, type Telemetry } from "@paylane/protocol";
import type { Redis } from "ioredis";
import pino, { type Logger } from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { within } from "../../test/support/within.ts";
import { type ApiOptions, createApi } from "../src/api/app.ts";
import type { Database } from "../src/db/database.ts";
import { migrate } from "../src/db/migrate.ts";
import { openPg } from "../src/db/pg.ts";
import type { LiveFeed } from "../src/live/live-feed.ts";
import { MemoryPresence } from "../src/presence/memory-presence.ts";
import { seedSite } from "../src/seed.ts";
import { MemoryLatestTelemetry } from "../src/telemetry/latest-store.ts";

// As test/support/site.ts has them, without loading the whole site harness.
export const PG_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
export const REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

/** The Basic secret of both seeded kiosks (s1/k1 and s2/x1). */
export const DEVICE_SECRET = "device-secret-0123456789";

/** Deletes every key under `prefix`. */
export async function dropRedisPrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 500);
    if (keys.length > 0) await redis.del(...keys);
    cursor = next;
  } while (cursor !== "0");
}

export async function openTestSchema(name: string): Promise<{ db: Database; schema: string; drop(): Promise<void> }> {
  const schema = `t_${name.replace(/[^a-z0-9]/g, "_")}_${process.pid}`;
  const db = await openPg({ url: PG_URL, schema });
  await db.exec(`DROP SCHEMA IF EXISTS ${schema} CASCADE; CREATE SCHEMA ${schema}`);
  await migrate(db);
  return {
    db,
    schema,
    async drop() {
      await db.exec(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
      await db.close();
    },
  };
}

/** A live feed the test pushes events into, as LISTEN/NOTIFY would. */
export class FakeLiveFeed implements LiveFeed {
  readonly listeners = new Set<(e: LiveEvent) => void>();
  subscribe(listener: (e: LiveEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  push(e: LiveEvent): void {
    for (const l of this.listeners) l(e);
  }
}

export interface ConsoleSiteOptions {
  /** The cloud's clock (default: the wall's); k1's status and telemetry are dated by it. */
  now?: () => Date;
  /** k1's newest telemetry, over an idle kiosk's (backlog 0, reader ok). */
  telemetry?: Partial<Telemetry>;
  /** The kept logger's level (default trace: every line, to search for secrets). */
  logLevel?: pino.Level;
}

export interface ConsoleSite {
  db: Database;
  registry: Registry;
  presence: MemoryPresence;
  latest: MemoryLatestTelemetry;
  live: FakeLiveFeed;
  /** Every line the logger wrote. */
  logged: string[];
  logger: Logger;
  now: () => Date;
  /** The cloud API over these parts; `extra` adds to or replaces them (jwtSecret, commands, a failing presence…). */
  api(extra?: Partial<ApiOptions>): ReturnType<typeof createApi>;
  /** Drops the schema and closes the database. */
  drop(): Promise<void>;
}

/** A schema of its own seeded with s1 (kiosk k1, online) and s2 (kiosk x1); see the file's comment. */
export async function openConsoleSite(name: string, o: ConsoleSiteOptions = {}): Promise<ConsoleSite> {
  const now = o.now ?? (() => new Date());
  // Random, not the pid: one process may open several (each test file's own, a harness per suite).
  const schema = `t_${name.replace(/[^a-z0-9]/g, "_")}_${randomBytes(4).toString("hex")}`;
  const db = await openPg({ url: PG_URL, schema });
  try {
    await migrate(db);
    await seedSite(db, { id: "s1", name: "Venue", timezone: "UTC" });
    await seedSite(db, { id: "s2", name: "Other venue", timezone: "UTC" });
    await db.query("INSERT INTO devices (site_id, id) VALUES ('s1', 'k1'), ('s2', 'x1')");
  } catch (err) {
    await db.exec(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
    await db.close();
    throw err;
  }
  const secretHash = await hashSecret(DEVICE_SECRET);
  const registry = new Registry({
    version: 1,
    devices: [
      { site: "s1", device: "k1", secretHash },
      { site: "s2", device: "x1", secretHash },
    ],
    services: [],
  });
  const at = now();
  const latest = new MemoryLatestTelemetry();
  await latest.put([
    {
      device: { site: "s1", device: "k1" },
      receivedAt: at.toISOString(),
      telemetry: {
        at: at.toISOString(),
        backlog: 0,
        ackedUpTo: 10,
        lastSeq: 10,
        replicaVersion: 1,
        reader: "ok",
        uptimeSeconds: 60,
        ...o.telemetry,
      },
    },
  ]);
  const presence = new MemoryPresence();
  await presence.setStatus({ site: "s1", device: "k1" }, { state: "online", at, version: "1.2.3" });
  const live = new FakeLiveFeed();
  const logged: string[] = [];
  const logger = pino({ level: o.logLevel ?? "trace" }, { write: (line: string) => logged.push(line) });
  return {
    db,
    registry,
    presence,
    latest,
    live,
    logged,
    logger,
    now,
    api: (extra = {}) =>
      createApi({
        db,
        presence,
        registry: () => registry,
        metrics: new MetricsRegistry(),
        health: async () => ({ status: "ok" }),
        now,
        latestTelemetry: latest,
        live,
        logger,
        ...extra,
      }),
    async drop() {
      await db.exec(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
      await db.close();
    },
  };
}

/**
 * A GraphQL subscription's server-sent events, frame by frame: `next` resolves with the next
 * `event: next` payload, null at `event: complete` or the stream's end (within 5 s, or it fails).
 */
export function subscriptionFrames(res: Response): {
  // biome-ignore lint/suspicious/noExplicitAny: one GraphQL result, read field by field in the tests
  next(): Promise<any>;
  close(): Promise<unknown>;
} {
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  // biome-ignore lint/suspicious/noExplicitAny: see above
  const frame = async (): Promise<any> => {
    for (;;) {
      const end = buffer.indexOf("\n\n");
      if (end >= 0) {
        const lines = buffer.slice(0, end).split("\n");
        buffer = buffer.slice(end + 2);
        const data = lines.find((l) => l.startsWith("data:"));
        if (lines[0] === "event: next" && data) return JSON.parse(data.slice(5));
        if (lines[0] === "event: complete") return null;
        continue;
      }
      const { value, done } = await reader.read();
      if (done) return null;
      buffer += decoder.decode(value, { stream: true });
    }
  };
  return {
    next: () => within(frame(), 5000, "a frame of the subscription"),
    close: () => reader.cancel().catch(() => undefined),
  };
}
