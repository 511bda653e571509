/**
 * Ops API benchmark (issue 16): requests/s and latency of the console's two
 * heaviest reads through the HTTP API, next to the raw SQL of the same
 * queries in the same run, on one fleet of API_BENCH_SITES x API_BENCH_PER_SITE
 * kiosks (default 10 x 500 = 5,000) with a month of telemetry:
 *
 *   npm run bench:api        (also part of npm run bench)
 *
 * - fleet overview: `GET /api/v1/devices?site=S&limit=50&before=C`, a random
 *   site and a random position in it (cursors taken from the listing first);
 * - device page: `GET /api/v1/devices/S/D`, a random kiosk among those with
 *   a month of history (status history, check-ins, alerts, commands, the
 *   newest report, the 24 h summary).
 *
 * The SQL side runs exactly the statements the read model issues for the
 * same request (recorded once through a wrapping Queryable, then replayed
 * with each request's site, device and cursor) on the same pg pool, with the
 * same concurrency: one "query" is one page's statements (the device page's
 * seven run side by side, as the API runs them). It runs before and after
 * the API; the faster round counts. The API side is this process's Hono app
 * behind a real HTTP server (node-server, as the cloud serves), with presence
 * in Redis (own prefix) and a real operator JWT verified per request; the
 * load comes from a worker thread of keep-alive fetch loops. The same app is
 * also called in process (Hono's app.request, no HTTP), to show what the
 * transport costs.
 *
 * What is seeded (in a Postgres schema of its own, dropped at the end):
 * every kiosk has its stream, enrolment, two status transitions and 24 h of
 * telemetry at 15-minute steps, except API_BENCH_MONTH_DEVICES kiosks (default
 * 100) that have 30 days at 5-minute steps (8,640 reports each), 200 check-ins, 10
 * commands and 3 alerts; every tenth kiosk has a desired config it has not
 * applied (drift). A month at 5 minutes for all 5,000 would be 43 M rows
 * (~20 GB with the reports); the overview reads one report per kiosk shown
 * and the device page one kiosk's range, so the rows of other kiosks cost
 * neither query, only space.
 *
 * Beside each phase: CPU per request of this process (every thread: the
 * server, and the load worker in the HTTP phase) and of Postgres' backends,
 * and how busy the whole machine was (other processes included).
 *
 * Targets: API req/s / SQL q/s >= 0.7 and API p99 < 100 ms, per query
 * (printed PASS/FAIL; the exit code is 0 unless the bench itself fails).
 *
 * Environment: DATABASE_URL (postgres://postgres@127.0.0.1:5432/test), REDIS_URL
 * (redis://127.0.0.1:6379; "memory" for in-process presence), API_BENCH_SITES (10),
 * API_BENCH_PER_SITE (500), API_BENCH_MONTH_DEVICES (100), API_BENCH_SECONDS (10 per
 * phase), API_BENCH_WARMUP_SECONDS (2), API_BENCH_CONCURRENCY (8), API_BENCH_POOL (10),
 * API_BENCH_EXPLAIN=1 (print EXPLAIN ANALYZE of every statement on the seeded data first).
 */

import { randomBytes } from "node:crypto";
import { cpus, loadavg } from "node:os";
import { performance } from "node:perf_hooks";
import { Worker } from "node:worker_threads";
import {
  type Database,
  MemoryPresence,
  migrate,
  mintOperatorToken,
  openPg,
  type PresenceStore,
  type Queryable,
  RedisPresence,
} from "@paylane/cloud";
import { Registry } from "@paylane/protocol";
import { listen } from "@paylane/protocol/service";
import { Redis } from "ioredis";
import { Registry as MetricsRegistry } from "prom-client";
import { createApi } from "../cloud/src/api/app.ts";
import { FleetReadModel } from "../cloud/src/read-models/fleet.ts";
import { intEnv } from "../test/support/env.ts";
import { meterPhase } from "./lib/cpu.ts";
import { fmtInt, fmtMs, percentile, progress, rate, runBench, table } from "./lib/stats.ts";

const cfg = {
  url: process.env.DATABASE_URL || "postgres://postgres@127.0.0.1:5432/test",
  redis: process.env.REDIS_URL || "redis://127.0.0.1:6379",
  sites: intEnv("API_BENCH_SITES", 10),
  perSite: intEnv("API_BENCH_PER_SITE", 500),
  monthDevices: intEnv("API_BENCH_MONTH_DEVICES", 100),
  seconds: intEnv("API_BENCH_SECONDS", 10),
  warmupSeconds: intEnv("API_BENCH_WARMUP_SECONDS", 2, 0),
  concurrency: intEnv("API_BENCH_CONCURRENCY", 8),
  pool: intEnv("API_BENCH_POOL", 10),
  explain: process.env.API_BENCH_EXPLAIN === "1",
};
const PAGE = 50;
const TARGET_RATIO = 0.7;
const TARGET_P99_MS = 100;

const schema = `bench_api_${randomBytes(6).toString("hex")}`;
const redisPrefix = `bench-api-${randomBytes(4).toString("hex")}:`;
const secret = randomBytes(24).toString("base64url");
const NOW = new Date();
const siteId = (s: number) => `site-${String(s).padStart(2, "0")}`;
const deviceId = (d: number) => `kiosk-${String(d).padStart(4, "0")}`;

/** Every kiosk, and the ones with a month of history (spread over the sites). */
const fleet = Array.from({ length: cfg.sites * cfg.perSite }, (_, i) => ({
  site: siteId((i % cfg.sites) + 1),
  device: deviceId(Math.floor(i / cfg.sites) + 1),
}));
const monthFleet = fleet.slice(0, Math.min(cfg.monthDevices, fleet.length));

async function seed(db: Database): Promise<void> {
  const t0 = performance.now();
  await db.query(
    `INSERT INTO sites (id, name, timezone, members_version, currency)
     SELECT 'site-' || lpad(s::text, 2, '0'), 'Venue ' || s, 'UTC', 1, 'EUR' FROM generate_series(1, $1) s`,
    [cfg.sites],
  );
  await db.query(`INSERT INTO members (site_id, id, name, version) SELECT id, 'm-1', 'Member One', 1 FROM sites`);
  await db.query(
    `INSERT INTO devices (site_id, id, created_at)
     SELECT 'site-' || lpad(s::text, 2, '0'), 'kiosk-' || lpad(d::text, 4, '0'), $3
     FROM generate_series(1, $1) s, generate_series(1, $2) d`,
    [cfg.sites, cfg.perSite, NOW],
  );
  await db.query("INSERT INTO device_streams (site_id, device_id, acked_seq) SELECT site_id, id, 1000 FROM devices");
  await db.query(
    `INSERT INTO enrolled_devices (site_id, device_id, public_key, key_fingerprint, secret_hash, enrolled_at, claim_id)
     SELECT site_id, id, 'pk', 'SHA256:' || md5(id), 'hash', $1, gen_random_uuid() FROM devices`,
    [new Date(NOW.getTime() - 40 * 86_400_000)],
  );
  await db.query(
    `INSERT INTO device_config (site_id, device_id, desired, desired_version, reported, updated_at)
     SELECT site_id, id, '{"version":2,"settings":{"mode":"in-service","idleTimeoutSeconds":45}}', 2,
            '{"version":1,"applied":{"mode":"in-service"},"rejected":[],"at":"2026-11-01T00:00:00Z"}', $1
     FROM devices WHERE right(id, 1) = '0'`,
    [NOW],
  );
  await db.query(
    `INSERT INTO device_status_history (site_id, device_id, state, at, session, version)
     SELECT site_id, id, st.state, $1::timestamptz - st.ago, 1, '1.4.0'
     FROM devices, (VALUES ('online', interval '3 days'), ('offline', interval '2 days')) AS st(state, ago)`,
    [NOW],
  );
  progress(`seeded ${fmtInt(fleet.length)} kiosks (${((performance.now() - t0) / 1000).toFixed(1)} s)`);

  // Telemetry in time order (the BRIN index on `at` relies on it): the month subset's 30 days at
  // 5-minute steps, then every other kiosk's last 24 h at 15-minute steps.
  const month = monthFleet.map((d) => `${d.site}/${d.device}`);
  const telemetry = (days: number, step: string, where: string) =>
    `INSERT INTO device_telemetry (site_id, device_id, at, received_at, uptime_s, backlog, oldest_unacked_age_s,
       replica_age_s, rss_bytes, mem_free_bytes, disk_free_bytes, disk_total_bytes, cpu_temp_c, report)
     SELECT d.site_id, d.id, t, t, 86400, (random() * 5)::int, random() * 3, 60, 80e6, 300e6, 5e9, 8e9,
            45 + random() * 10,
            jsonb_build_object('at', t, 'backlog', 0, 'ackedUpTo', 1000, 'lastSeq', 1000, 'replicaVersion', 1,
              'reader', 'ok', 'uptimeSeconds', 86400, 'oldestUnackedAgeSeconds', 0, 'replicaAgeSeconds', 60,
              'printer', jsonb_build_object('state', 'ok', 'paper', 'ok'), 'mode', 'in-service', 'configVersion', 1,
              'storage', 'ok', 'cloudLink', 'online',
              'memory', jsonb_build_object('rssBytes', 80000000, 'freeBytes', 300000000, 'totalBytes', 1000000000),
              'disk', jsonb_build_object('freeBytes', 5000000000, 'totalBytes', 8000000000), 'cpuTemperatureC', 50,
              'versions', jsonb_build_object('device', '1.4.0', 'node', '20.19.0', 'protocol', 1))
     FROM generate_series($1::timestamptz - interval '${days} days', $1::timestamptz, interval '${step}') t
     CROSS JOIN devices d WHERE ${where}
     ORDER BY t`;
  const t1 = performance.now();
  await db.query(telemetry(30, "5 minutes", "(d.site_id || '/' || d.id) = ANY($2)"), [NOW, month]);
  await db.query(telemetry(1, "15 minutes", "NOT (d.site_id || '/' || d.id) = ANY($2)"), [NOW, month]);
  await db.query("ANALYZE");
  const { rows } = await db.query<{ n: number; mb: number }>(
    "SELECT count(*)::int AS n, (pg_total_relation_size('device_telemetry') / 1048576)::int AS mb FROM device_telemetry",
  );
  progress(
    `seeded ${fmtInt(rows[0]!.n)} telemetry rows, ${fmtInt(rows[0]!.mb)} MiB with indexes (${((performance.now() - t1) / 1000).toFixed(1)} s)`,
  );

  // The month subset's recent events: check-ins, commands, alerts.
  await db.query(
    `INSERT INTO inbox (site_id, device_id, seq, entry_id, kind, outcome, at, body, received_at)
     SELECT d.site_id, d.id, n, gen_random_uuid()::text, 'checkin', 'applied', $1::timestamptz - n * interval '3 hours',
            '{"memberId":"m-1","credential":{"type":"card"},"replicaVersion":1}', $1::timestamptz - n * interval '3 hours'
     FROM devices d, generate_series(1, 200) n WHERE (d.site_id || '/' || d.id) = ANY($2)`,
    [NOW, month],
  );
  await db.query(
    `INSERT INTO device_commands (site_id, device_id, id, name, requested_by, requested_at, status, updated_at)
     SELECT d.site_id, d.id, 'c-' || n, 'self-test', 'ops', $1::timestamptz - n * interval '1 day', 'done', $1
     FROM devices d, generate_series(1, 10) n WHERE (d.site_id || '/' || d.id) = ANY($2)`,
    [NOW, month],
  );
  await db.query(
    `INSERT INTO alert_states (key, rule, site_id, device_id, severity, state, summary, fired_at, updated_at)
     SELECT 'paper-low:' || d.site_id || '/' || d.id || ':' || n, 'paper-low', d.site_id, d.id, 'warning', 'resolved',
            'paper low', $1::timestamptz - n * interval '5 days', $1
     FROM devices d, generate_series(1, 3) n WHERE (d.site_id || '/' || d.id) = ANY($2)`,
    [NOW, month],
  );
  await db.query("ANALYZE");
}

async function seedPresence(presence: PresenceStore): Promise<void> {
  const t0 = performance.now();
  for (let i = 0; i < fleet.length; i += 500) {
    await Promise.all(
      fleet.slice(i, i + 500).map((d, j) =>
        presence.setStatus(
          d,
          (i + j) % 5 === 4
            ? { state: "offline", at: new Date(NOW.getTime() - ((i + j) % 97) * 60_000) }
            : {
                state: "online",
                at: new Date(NOW.getTime() - ((i + j) % 89) * 60_000),
                version: "1.4.0",
                bootedAt: new Date(NOW.getTime() - 86_400_000).toISOString(),
              },
        ),
      ),
    );
  }
  progress(
    `presence of ${fmtInt(fleet.length)} kiosks in ${presence.kind} (${((performance.now() - t0) / 1000).toFixed(1)} s)`,
  );
}

/** A Queryable that keeps the statements it passes on: the read model's own SQL, for the raw side. */
class Recorder implements Queryable {
  readonly statements: Array<{ sql: string; params: readonly unknown[] }> = [];
  constructor(readonly db: Queryable) {}
  query<R = Record<string, unknown>>(sql: string, params: readonly unknown[] = []): Promise<{ rows: R[] }> {
    this.statements.push({ sql, params });
    return this.db.query<R>(sql, params);
  }
}

interface Phase {
  label: string;
  count: number;
  /** Requests of the warm-up (metered for CPU with the rest). */
  warm: number;
  errors: number;
  ms: number;
  latencies: number[];
  /** CPU of the whole phase (warm-up included): this process (every thread), Postgres' backends, the machine. */
  cpu?: { nodeMs: number; postgresMs: number; machine: number | undefined };
}

/** Runs a phase with its CPU metered. */
async function metered<P extends Phase>(db: Queryable, phase: () => Promise<P>): Promise<P> {
  const meter = await meterPhase(db, {});
  const p = await phase();
  const m = meter();
  p.cpu = {
    nodeMs: (m.self.user + m.self.system) / 1000,
    postgresMs: (m.cpu.get("postgres") ?? 0) * 1000,
    machine: m.machine,
  };
  return p;
}

/** `concurrency` loops calling `one` until `seconds` have passed (after an untimed warm-up). */
async function closedLoop(label: string, one: () => Promise<void>): Promise<Phase> {
  const run = async (seconds: number, latencies: number[] | null) => {
    const end = performance.now() + seconds * 1000;
    let count = 0;
    let errors = 0;
    await Promise.all(
      Array.from({ length: cfg.concurrency }, async () => {
        while (performance.now() < end) {
          const t = performance.now();
          try {
            await one();
            count++;
            latencies?.push(performance.now() - t);
          } catch {
            errors++;
          }
        }
      }),
    );
    return { count, errors };
  };
  const warm = cfg.warmupSeconds > 0 ? (await run(cfg.warmupSeconds, null)).count : 0;
  const latencies: number[] = [];
  const t0 = performance.now();
  const { count, errors } = await run(cfg.seconds, latencies);
  const ms = performance.now() - t0;
  latencies.sort((a, b) => a - b);
  return { label, count, warm, errors, ms, latencies };
}

/** The HTTP load: a worker thread of keep-alive fetch loops (the server's event loop stays the server's). */
const LOAD_WORKER = `
const { parentPort, workerData } = require("node:worker_threads");
const { performance } = require("node:perf_hooks");
const { urls, token, concurrency, seconds, warmupSeconds } = workerData;
async function run(secs, latencies) {
  const end = performance.now() + secs * 1000;
  let count = 0, errors = 0, firstError = null;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) {
      const url = urls[Math.floor(Math.random() * urls.length)];
      const t = performance.now();
      try {
        const res = await fetch(url, { headers: { authorization: "Bearer " + token } });
        const body = await res.arrayBuffer();
        if (res.status !== 200) { errors++; firstError ??= res.status + " " + Buffer.from(body).toString().slice(0, 200); continue; }
        count++;
        if (latencies) latencies.push(performance.now() - t);
      } catch (err) { errors++; firstError ??= String(err); }
    }
  }));
  return { count, errors, firstError };
}
(async () => {
  const warm = warmupSeconds > 0 ? (await run(warmupSeconds, null)).count : 0;
  const latencies = [];
  const t0 = performance.now();
  const r = await run(seconds, latencies);
  parentPort.postMessage({ ...r, warm, ms: performance.now() - t0, latencies });
})();
`;

function httpLoad(label: string, urls: string[], token: string): Promise<Phase & { firstError: string | null }> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(LOAD_WORKER, {
      eval: true,
      workerData: {
        urls,
        token,
        concurrency: cfg.concurrency,
        seconds: cfg.seconds,
        warmupSeconds: cfg.warmupSeconds,
      },
    });
    worker.once(
      "message",
      (m: {
        count: number;
        warm: number;
        errors: number;
        ms: number;
        latencies: number[];
        firstError: string | null;
      }) => {
        m.latencies.sort((a, b) => a - b);
        resolve({ label, ...m });
        void worker.terminate();
      },
    );
    worker.once("error", reject);
  });
}

const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;

/** The overview's parameters for the page after the 250th kiosk of site 1. */
function middlePage(params: readonly unknown[]): unknown[] {
  const p = [...params];
  p[2] = siteId(1);
  p[3] = deviceId(Math.min(250, cfg.perSite));
  return p;
}

async function main(): Promise<number> {
  process.stdout.write(
    `PayLane ops API benchmark: ${fmtInt(fleet.length)} kiosks (${cfg.sites} sites), ${fmtInt(monthFleet.length)} with a month ` +
      `of telemetry; ${cfg.concurrency} concurrent, ${cfg.seconds} s a phase; ${cpus().length} CPUs, load ${loadavg()[0]!.toFixed(1)}\n`,
  );
  // Seeding a month of reports runs statements of minutes; the phases keep the cloud's own 30 s.
  const db = await openPg({ url: cfg.url, schema, max: cfg.pool, queryTimeoutMs: 900_000 });
  let presence: PresenceStore | undefined;
  let server: Awaited<ReturnType<typeof listen>> | undefined;
  try {
    await migrate(db);
    await seed(db);
    if (cfg.redis === "memory") presence = new MemoryPresence();
    else {
      const redis = new RedisPresence(cfg.redis, redisPrefix);
      await redis.connect();
      presence = redis;
    }
    await seedPresence(presence);

    const registry = new Registry({ version: 1, devices: [], services: [] });
    const api = createApi({
      db,
      presence,
      registry: () => registry,
      metrics: new MetricsRegistry(),
      health: async () => ({ status: "ok" }),
      jwtSecret: secret,
      // Counted as the cloud counts (in process here), but never refusing: one credential sends everything.
      rateLimit: { windowSeconds: 10, perCredential: 1e9, perAddress: 1e9, authFailures: 1e9 },
    });
    server = await listen(api, { port: 0, host: "127.0.0.1", setting: "API_BENCH" });
    const base = `http://127.0.0.1:${server.port}`;
    const token = await mintOperatorToken(secret, { sub: "bench", role: "viewer", ttlSeconds: 3600 });

    // Cursors into every site's listing (every 50th kiosk), so pages start anywhere.
    const model = new FleetReadModel({ db, presence, inRegistry: () => false, now: () => NOW });
    const starts: Array<{ site: string; before: string }> = [];
    for (let s = 1; s <= cfg.sites; s++) {
      let before: string | null = "";
      while (before !== null) {
        starts.push({ site: siteId(s), before });
        const after: string[] | null = before
          ? (JSON.parse(Buffer.from(before, "base64url").toString()) as string[])
          : null;
        before = (await model.overview({ site: siteId(s), limit: PAGE, after })).next;
      }
    }

    // The statements each page is, recorded from the read model itself.
    const overviewRec = new Recorder(db);
    await new FleetReadModel({ db: overviewRec, presence, inRegistry: () => false }).overview({
      site: siteId(1),
      limit: PAGE,
    });
    const [overviewSql] = overviewRec.statements;
    const pageRec = new Recorder(db);
    await new FleetReadModel({ db: pageRec, presence, inRegistry: () => false, now: () => NOW }).device(monthFleet[0]!);
    const pageSql = pageRec.statements;
    progress(
      `the overview is 1 statement (+ presence of its ${PAGE} rows); the device page ${pageSql.length} statements`,
    );
    if (cfg.explain) {
      // Each statement's plan on this data: index use, rows touched, time (EXPLAIN ANALYZE).
      for (const [what, st] of [
        ["overview, a page in the middle of a site", { ...overviewSql!, params: middlePage(overviewSql!.params) }],
        ...pageSql.map((st, i) => [`device page statement ${i + 1}`, st] as const),
      ] as const) {
        const { rows: plan } = await db.query<{ "QUERY PLAN": string }>(`EXPLAIN (ANALYZE, BUFFERS) ${st.sql}`, [
          ...st.params,
        ]);
        process.stdout.write(`\n-- ${what}\n${plan.map((r) => r["QUERY PLAN"]).join("\n")}\n`);
      }
    }

    const overviewOnce = async () => {
      const s = pick(starts);
      const after = s.before ? (JSON.parse(Buffer.from(s.before, "base64url").toString()) as string[]) : null;
      const p = [...overviewSql!.params];
      p[0] = s.site;
      p[2] = after?.[0] ?? null;
      p[3] = after?.[1] ?? null;
      await db.query(overviewSql!.sql, p);
    };
    const pageOnce = async () => {
      const d = pick(monthFleet);
      await Promise.all(pageSql.map((st) => db.query(st.sql, [d.site, d.device, ...st.params.slice(2)])));
    };
    const overviewUrls = starts.map(
      (s) => `${base}/api/v1/devices?site=${s.site}&limit=${PAGE}${s.before ? `&before=${s.before}` : ""}`,
    );
    const pageUrls = monthFleet.map((d) => `${base}/api/v1/devices/${d.site}/${d.device}`);

    const results: Array<{
      name: string;
      sql: Phase;
      inProcess: Phase;
      api: Phase & { firstError: string | null };
    }> = [];
    const auth = { headers: { authorization: `Bearer ${token}` } };
    for (const [name, once, urls] of [
      ["fleet overview (50 rows)", overviewOnce, overviewUrls],
      ["device page", pageOnce, pageUrls],
    ] as const) {
      progress(`${name}: SQL round 1`);
      const sql1 = await metered(db, () => closedLoop(`${name} SQL`, once));
      // The same app without HTTP (Hono's app.request): how much of the API's cost is the transport.
      progress(`${name}: API in process`);
      const inProcess = await metered(db, () =>
        closedLoop(`${name} in process`, async () => {
          const res = await api.request(pick(urls).slice(base.length), auth);
          await res.arrayBuffer();
          if (res.status !== 200) throw new Error(`${res.status}`);
        }),
      );
      progress(`${name}: API`);
      const apiPhase = await metered(db, () => httpLoad(`${name} API`, [...urls], token));
      progress(`${name}: SQL round 2`);
      const sql2 = await metered(db, () => closedLoop(`${name} SQL`, once));
      const sql = rate(sql2.count, sql2.ms) > rate(sql1.count, sql1.ms) ? sql2 : sql1;
      results.push({ name, sql, inProcess, api: apiPhase });
    }

    const rows: string[][] = [];
    const verdicts: string[] = [];
    for (const r of results) {
      for (const [side, p] of [
        ["SQL", r.sql],
        ["API in process, no HTTP", r.inProcess],
        ["API over HTTP", r.api],
      ] as const) {
        rows.push([
          `${r.name}, ${side}`,
          fmtInt(rate(p.count, p.ms)),
          fmtMs(percentile(p.latencies, 50)),
          fmtMs(percentile(p.latencies, 99)),
          fmtMs(p.latencies.at(-1) ?? Number.NaN),
          fmtInt(p.errors),
          fmtMs((p.cpu?.nodeMs ?? Number.NaN) / (p.count + p.warm)),
          fmtMs((p.cpu?.postgresMs ?? Number.NaN) / (p.count + p.warm)),
          p.cpu?.machine === undefined ? "-" : `${(p.cpu.machine * 100).toFixed(0)}%`,
        ]);
      }
      const ratio = rate(r.api.count, r.api.ms) / rate(r.sql.count, r.sql.ms);
      const p99 = percentile(r.api.latencies, 99);
      verdicts.push(
        `${r.name}: API/SQL ${ratio.toFixed(2)} (target >= ${TARGET_RATIO}: ${ratio >= TARGET_RATIO ? "PASS" : "FAIL"}), ` +
          `API p99 ${fmtMs(p99)} (target < ${TARGET_P99_MS} ms: ${p99 < TARGET_P99_MS ? "PASS" : "FAIL"})`,
      );
      if (r.api.firstError) verdicts.push(`  first API error: ${r.api.firstError}`);
    }
    process.stdout.write(
      `\n${table(
        ["query", "req/s", "p50", "p99", "max", "errors", "node CPU/req", "pg CPU/req", "machine busy"],
        rows,
      )}\n\n${verdicts.join("\n")}\n`,
    );
    return results.some((r) => r.api.count === 0) ? 1 : 0;
  } finally {
    await server?.close();
    await presence?.close();
    if (presence?.kind === "redis") await dropRedisPrefix(cfg.redis, redisPrefix);
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch((err: Error) => {
      process.stderr.write(`could not drop schema ${schema}: ${err.message}\n`);
    });
    await db.close().catch(() => {});
  }
}

async function dropRedisPrefix(url: string, prefix: string): Promise<void> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 2 });
  try {
    await redis.connect();
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== "0");
  } finally {
    redis.disconnect();
  }
}

runBench(main);
