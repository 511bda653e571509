/**
 * Telemetry history, on real Postgres (a schema of its own) and on PGlite:
 * reports recorded through the bridge's listener are written in batches and
 * come back downsampled by the API; old rows go at the retention; the newest
 * report of each device is in Redis (or in process); a bad query is a
 * problem+json naming the parameter.
 */
import { randomBytes } from "node:crypto";
import type { Telemetry } from "@paylane/protocol";
import pino from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { FakeTimers } from "../../test/support/fake-timers.ts";
import { dropRedisPrefix, PG_URL, REDIS_URL } from "../../test/support/site.ts";
import { createApi } from "../src/api/app.ts";
import { mintOperatorToken } from "../src/api/auth.ts";
import type { Database } from "../src/db/database.ts";
import { migrate } from "../src/db/migrate.ts";
import { openPg } from "../src/db/pg.ts";
import { openPglite } from "../src/db/pglite.ts";
import { MemoryPresence } from "../src/presence/memory-presence.ts";
import { seedSite } from "../src/seed.ts";
import {
  type LatestTelemetryStore,
  MemoryLatestTelemetry,
  RedisLatestTelemetry,
} from "../src/telemetry/latest-store.ts";
import { TelemetryRecorder } from "../src/telemetry/recorder.ts";

const JWT_SECRET = "a-telemetry-test-secret-of-at-least-32-chars";
const quiet = pino({ level: "silent" });
const SITE = "venue";
const K1 = { site: SITE, device: "k1" };
const START = Date.UTC(2026, 11, 4, 10, 0, 0);
const at = (seconds: number) => new Date(START + seconds * 1000).toISOString();

function report(seconds: number, o: Partial<Telemetry> = {}): Telemetry {
  return {
    at: at(seconds),
    backlog: 0,
    ackedUpTo: 10,
    lastSeq: 10,
    replicaVersion: 1,
    reader: "ok",
    uptimeSeconds: 100 + seconds,
    ...o,
  };
}

interface Ctx {
  db: Database;
  latest: LatestTelemetryStore;
  timers: FakeTimers;
  recorder: TelemetryRecorder;
  app: ReturnType<typeof createApi>;
  viewer: string;
  cleanUp: () => Promise<void>;
}

function telemetrySuite(dbKind: "pg" | "pglite", latestKind: "redis" | "memory"): void {
  const test = suite<Ctx>(`telemetry history: ${dbKind}+${latestKind}`, {} as Ctx);
  const schema = `t_${randomBytes(6).toString("hex")}`;
  const prefix = `test:telemetry:${randomBytes(6).toString("hex")}:`;

  test.before(async (ctx) => {
    ctx.db = dbKind === "pg" ? await openPg({ url: PG_URL, schema }) : await openPglite();
    await migrate(ctx.db);
    await seedSite(ctx.db, { id: SITE, name: "Venue", timezone: "UTC" });
    await ctx.db.query("INSERT INTO devices (site_id, id) VALUES ($1, 'k1'), ($1, 'k2') ON CONFLICT DO NOTHING", [
      SITE,
    ]);
    if (latestKind === "redis") {
      const redis = new RedisLatestTelemetry(REDIS_URL, prefix);
      await redis.connect();
      ctx.latest = redis;
    } else {
      ctx.latest = new MemoryLatestTelemetry();
    }
    // The clock sits a day after the reports: retention 30 days keeps them.
    ctx.timers = new FakeTimers(START + 86_400_000);
    ctx.recorder = new TelemetryRecorder({
      db: ctx.db,
      latest: ctx.latest,
      logger: quiet,
      now: ctx.timers.now,
      timers: ctx.timers,
      retentionDays: 30,
      batchRows: 4,
    });
    ctx.recorder.start();
    ctx.app = createApi({
      db: ctx.db,
      presence: new MemoryPresence(),
      registry: () => {
        throw new Error("no device route here");
      },
      metrics: new MetricsRegistry(),
      health: async () => ({ status: "ok" }),
      jwtSecret: JWT_SECRET,
      latestTelemetry: ctx.latest,
      now: ctx.timers.now,
    });
    ctx.viewer = await mintOperatorToken(JWT_SECRET, { sub: "ops-viewer", role: "viewer", sites: [SITE] });
    ctx.cleanUp = async () => {
      await ctx.recorder.stop();
      await ctx.latest.close();
      if (dbKind === "pg") await ctx.db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await ctx.db.close();
      if (latestKind === "redis") await dropRedisPrefix(prefix);
    };
  });
  test.after(async (ctx) => ctx.cleanUp());

  const get = (ctx: Ctx, path: string, token = ctx.viewer) =>
    Promise.resolve(ctx.app.request(path, { headers: { authorization: `Bearer ${token}` } }));

  test("reports are written in batches and come back downsampled per bucket (avg and max)", async (ctx) => {
    // Minute 0: backlog 0, 10, 20 (avg 10, max 20); minute 1: 5 and 7 (avg 6, max 7), with memory and disk;
    // minute 3: one report with a CPU temperature. Minute 2 has none, so no bucket.
    const points: Telemetry[] = [
      report(0, { backlog: 0, oldestUnackedAgeSeconds: 0 }),
      report(20, { backlog: 10, oldestUnackedAgeSeconds: 4 }),
      report(40, { backlog: 20, oldestUnackedAgeSeconds: 8 }),
      report(60, {
        backlog: 5,
        memory: { rssBytes: 100, freeBytes: 1000, totalBytes: 4000 },
        disk: { freeBytes: 500, totalBytes: 900 },
      }),
      report(90, {
        backlog: 7,
        memory: { rssBytes: 300, freeBytes: 800, totalBytes: 4000 },
        disk: { freeBytes: 400, totalBytes: 900 },
      }),
      report(200, { backlog: 1, cpuTemperatureC: 61.5 }),
    ];
    for (const p of points) ctx.recorder.record(K1, p);
    // Another device's reports stay out of k1's series.
    ctx.recorder.record({ site: SITE, device: "k2" }, report(10, { backlog: 999 }));
    // The listener only queued (a full batch of 4 started a flush); the timer writes the rest.
    ctx.timers.advance(1000);
    await ctx.recorder.flush();
    assert.is(ctx.recorder.queued, 0);

    const res = await get(ctx, `/api/v1/devices/${SITE}/k1/telemetry?from=${at(0)}&to=${at(300)}&step=1m`);
    assert.is(res.status, 200);
    const body = (await res.json()) as {
      stepSeconds: number;
      buckets: Array<{ at: string; count: number; values: Record<string, { avg: number; max: number } | null> }>;
    };
    assert.is(body.stepSeconds, 60);
    assert.equal(
      body.buckets.map((b) => [b.at, b.count]),
      [
        [at(0), 3],
        [at(60), 2],
        [at(180), 1],
      ],
    );
    const [m0, m1, m3] = body.buckets;
    assert.equal(m0!.values.backlog, { avg: 10, max: 20 });
    assert.equal(m0!.values.oldestUnackedAgeSeconds, { avg: 4, max: 8 });
    assert.is(m0!.values.rssBytes, null);
    assert.equal(m1!.values.backlog, { avg: 6, max: 7 });
    assert.equal(m1!.values.rssBytes, { avg: 200, max: 300 });
    assert.equal(m1!.values.diskFreeBytes, { avg: 450, max: 500 });
    assert.equal(m3!.values.cpuTemperatureC, { avg: 61.5, max: 61.5 });

    // A coarser step over the same points: one 5-minute bucket with all six.
    const coarse = await get(ctx, `/api/v1/devices/${SITE}/k1/telemetry?from=${at(0)}&to=${at(300)}&step=5m`);
    const c = (await coarse.json()) as { buckets: Array<{ count: number; values: Record<string, unknown> }> };
    assert.is(c.buckets.length, 1);
    assert.is(c.buckets[0]!.count, 6);
    assert.equal(c.buckets[0]!.values.backlog, { avg: 43 / 6, max: 20 });
  });

  test("the latest report per device is the newest by its time, whatever order it arrived in", async (ctx) => {
    ctx.recorder.record(K1, report(500, { backlog: 3, mode: "maintenance" }));
    ctx.recorder.record(K1, report(400, { backlog: 99 })); // late, older: not the latest
    await ctx.recorder.flush();
    const res = await get(ctx, `/api/v1/devices/${SITE}/k1/telemetry/latest`);
    assert.is(res.status, 200);
    const body = (await res.json()) as { telemetry: Telemetry; receivedAt: string };
    assert.is(body.telemetry.at, at(500));
    assert.is(body.telemetry.backlog, 3);
    assert.is(body.telemetry.mode, "maintenance");
    assert.is(body.receivedAt, ctx.timers.now().toISOString());
    // Straight from the store too (Redis: another cloud instance reads the same).
    assert.is((await ctx.latest.get(K1))?.telemetry.at, at(500));

    const none = await get(ctx, `/api/v1/devices/${SITE}/k2/telemetry/latest`);
    assert.is(none.status, 200); // k2 reported in the first test
    const nobody = await ctx.db.query("INSERT INTO devices (site_id, id) VALUES ($1, 'k3') RETURNING id", [SITE]);
    assert.is(nobody.rows.length, 1);
    const silent = await get(ctx, `/api/v1/devices/${SITE}/k3/telemetry/latest`);
    assert.is(silent.status, 404);
    assert.match(((await silent.json()) as { detail: string }).detail, /k3 .*no telemetry yet/);
  });

  test("bad queries are problem+json naming the parameter", async (ctx) => {
    const cases: Array<[string, number, RegExp]> = [
      [`?step=5x`, 400, /^step: expected a duration/],
      [`?step=0s`, 400, /^step: expected a duration/],
      [`?from=yesterday`, 400, /^from: expected an ISO 8601 time/],
      [`?from=${at(0)}&to=${at(86_400)}&step=10s`, 400, /^step: 10s cuts this range into 8640 buckets, at most 1000/],
      [`?from=${at(100)}&to=${at(0)}`, 400, /^from: must be before to/],
      [`?limit=5`, 400, /limit/],
    ];
    for (const [query, status, detail] of cases) {
      const res = await get(ctx, `/api/v1/devices/${SITE}/k1/telemetry${query}`);
      assert.is(res.status, status, query);
      assert.is(res.headers.get("content-type"), "application/problem+json", query);
      assert.match(((await res.json()) as { detail: string }).detail, detail, query);
    }
    const unknown = await get(ctx, `/api/v1/devices/${SITE}/nope/telemetry`);
    assert.is(unknown.status, 404);
    const badSite = await get(ctx, `/api/v1/devices/BAD!/k1/telemetry`);
    assert.is(badSite.status, 400);
    assert.match(((await badSite.json()) as { detail: string }).detail, /^site: /);
    // A viewer of another site is refused; no token is 401.
    const other = await mintOperatorToken(JWT_SECRET, { sub: "ops-other", role: "viewer", sites: ["elsewhere"] });
    assert.is((await get(ctx, `/api/v1/devices/${SITE}/k1/telemetry`, other)).status, 403);
    assert.is((await Promise.resolve(ctx.app.request(`/api/v1/devices/${SITE}/k1/telemetry`))).status, 401);
  });

  test("without a step the series defaults to 1-minute buckets, coarser for long ranges", async (ctx) => {
    const hour = await get(ctx, `/api/v1/devices/${SITE}/k1/telemetry?from=${at(0)}&to=${at(3600)}`);
    assert.is(((await hour.json()) as { stepSeconds: number }).stepSeconds, 60);
    const week = await get(ctx, `/api/v1/devices/${SITE}/k1/telemetry?from=${at(0)}&to=${at(7 * 86_400)}`);
    assert.is(((await week.json()) as { stepSeconds: number }).stepSeconds, 900);
  });

  test("a full queue drops the oldest reports instead of growing or blocking the bridge", async (ctx) => {
    const small = new TelemetryRecorder({
      db: ctx.db,
      latest: new MemoryLatestTelemetry(),
      logger: quiet,
      timers: new FakeTimers(),
      retentionDays: 30,
      maxQueued: 3,
    });
    // Not started: nothing flushes, so the queue's bound is all that holds it.
    for (let i = 0; i < 10; i++) small.record({ site: SITE, device: "k2" }, report(1000 + i));
    assert.is(small.queued, 3);
  });

  test("the retention delete removes rows older than the retention, on the timers", async (ctx) => {
    const count = async () =>
      (await ctx.db.query<{ n: number }>("SELECT count(*)::int AS n FROM device_telemetry WHERE device_id = 'k1'"))
        .rows[0]!.n;
    const before = await count();
    assert.ok(before >= 8);
    // A report 31 days ahead of the others; then the clock moves to 30 days after them plus a bit.
    ctx.recorder.record(K1, report(31 * 86_400, { backlog: 4 }));
    await ctx.recorder.flush();
    ctx.timers.set(new Date(START + 30 * 86_400_000));
    // Hour by hour from there: an hourly purge with the clock past the retention deletes them.
    const deadline = Date.now() + 5000;
    while ((await count()) !== 1 && Date.now() < deadline) {
      ctx.timers.advance(3_600_000);
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.is(await count(), 1);
    const left = await ctx.db.query<{ at: Date }>("SELECT at FROM device_telemetry WHERE device_id = 'k1'");
    assert.is(left.rows[0]!.at.toISOString(), at(31 * 86_400));
    // k2's old report went too.
    const k2 = await ctx.db.query("SELECT 1 FROM device_telemetry WHERE device_id = 'k2'");
    assert.is(k2.rows.length, 0);
  });

  test.run();
}

telemetrySuite("pg", "redis");
telemetrySuite("pglite", "memory");
