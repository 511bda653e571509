/**
 * Ingest benchmark: events/s through the real exactly-once bridge path
 * versus the raw limit of batched inserts into the same `inbox` table.
 *
 *   npm run bench
 *
 * Bridge: N simulated kiosks (raw mqtt.js clients with their own registered
 * credentials) publish `events` batches of valid check-ins, QoS 1, with a
 * bounded window of unacked entries -> embedded aedes `Gateway` (port 0) ->
 * `CloudService` (port 0) on real Postgres -> `ack {upTo}` back. Timed from
 * the first publish until every device holds `ack {upTo: last}`; then inbox,
 * checkins, quarantine and the devices' high-water marks are checked for
 * exactly-once (exit 1 if not).
 *
 * Raw: `INSERT INTO inbox ... SELECT ... FROM unnest(...) ON CONFLICT DO
 * NOTHING`, 500-row statements, one connection, sequential; and the same
 * with a multi-row VALUES list, for reference.
 *
 * Environment: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test),
 * BENCH_EVENTS (200000), BENCH_DEVICES (20), BENCH_BATCH (100),
 * BENCH_WINDOW (400), BENCH_RAW_BATCH (500), BENCH_ACK_TIMEOUT_MS (10000);
 * BENCH_HISTORY (0): entries per device already committed and acked before
 * the run (a long-lived device), BENCH_ANALYZE (1): ANALYZE the tables
 * before the bridge phase, as autovacuum would have on a live database;
 * BENCH_CPU_PROFILE=file.cpuprofile writes a V8 CPU profile of the bridge
 * phase (this process: devices, aedes and cloud) for Chrome DevTools.
 * Everything lives in its own schema `bench_<random>`, dropped at the end.
 */

import { randomBytes } from "node:crypto";
import { mkdtemp, writeFile } from "node:fs/promises";
import { Session } from "node:inspector/promises";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import {
  CloudService,
  type Database,
  type FlushOutcome,
  migrate,
  openPg,
  parseCloudEnv,
  seedSite,
} from "@paylane/cloud";
import type pg from "pg";
import pino from "pino";
import { intEnv } from "../test/support/env.ts";
import { Child } from "./lib/child.ts";
import { dropBenchState } from "./lib/cleanup.ts";
import { meterPhase } from "./lib/cpu.ts";
import { type FleetChild, runFleet, startFleet } from "./lib/fleet-child.ts";
import type { GatewayIn, GatewayOut } from "./lib/gateway-process.ts";
import { connectRaw, enrolRaw, type RawMode, rawInsert, rawRows } from "./lib/raw.ts";
import { benchSecrets, saveBenchRegistry } from "./lib/registry-file.ts";
import { fmtInt, fmtMs, percentile, progress, rate, runBench, table } from "./lib/stats.ts";
import { TimedDatabase } from "./lib/timed-db.ts";

const TARGET_RATIO = 0.8;

const cfg = {
  url: process.env.DATABASE_URL || "postgres://postgres@127.0.0.1:5432/test",
  events: intEnv("BENCH_EVENTS", 200_000),
  devices: intEnv("BENCH_DEVICES", 20),
  batch: intEnv("BENCH_BATCH", 100),
  window: intEnv("BENCH_WINDOW", 400),
  rawBatch: intEnv("BENCH_RAW_BATCH", 500),
  ackTimeoutMs: intEnv("BENCH_ACK_TIMEOUT_MS", 10_000),
  history: intEnv("BENCH_HISTORY", 0, 0),
  analyze: intEnv("BENCH_ANALYZE", 1, 0) !== 0,
  cpuProfile: process.env.BENCH_CPU_PROFILE || undefined,
};
if (cfg.batch > 1000) throw new Error("BENCH_BATCH: an events message carries at most 1000 entries");
if (cfg.window < cfg.batch) throw new Error("BENCH_WINDOW must be >= BENCH_BATCH");
const perDevice = Math.ceil(cfg.events / cfg.devices);
const totalEvents = perDevice * cfg.devices;

const quiet = pino({ level: "silent" });
const site = `b${randomBytes(4).toString("hex")}`;
const schema = `bench_${randomBytes(6).toString("hex")}`;
const cloudSecret = randomBytes(18).toString("base64url");
const secrets = benchSecrets("d", cfg.devices);

interface RawResult {
  mode: RawMode;
  inserted: number;
  ms: number;
}

interface BridgeResult {
  ms: number;
  latencies: number[];
  published: number;
  resends: number;
  acksReceived: number;
  commits: number;
  applied: number;
  duplicates: number;
  elu: number;
  nodeCpu: number;
  machineCpu: number | undefined;
  /** CPU seconds by process during the bridge phase. */
  cpuByProcess: Map<string, number>;
}

async function runRaw(client: pg.Client, mode: RawMode, round = 1): Promise<RawResult> {
  // A short warm-up (its own site) so the timed run measures steady state, not JIT and plan caching.
  const warm = rawRows(`${site}-w${mode}${round}`, cfg.devices, cfg.rawBatch * 4);
  const rows = rawRows(`${site}-${mode}${round}`, cfg.devices, totalEvents);
  if (mode === "same-work") for (const r of [warm, rows]) await enrolRaw(client, r);
  await rawInsert(client, warm, mode, cfg.rawBatch);
  let last = performance.now();
  const r = await rawInsert(client, rows, mode, cfg.rawBatch, (done) => {
    const now = performance.now();
    if (now - last >= 1000) {
      last = now;
      progress(`raw ${mode}: ${fmtInt(done)}/${fmtInt(totalEvents)} rows`);
    }
  });
  if (r.inserted !== totalEvents) throw new Error(`raw ${mode}: inserted ${r.inserted} of ${totalEvents} rows`);
  return { mode, ...r };
}

/** What must be stopped at the end, filled in as soon as each part exists. */
interface Running {
  cloud?: CloudService;
  fleet?: FleetChild;
  gateway?: Child<GatewayIn, GatewayOut>;
}

async function runBridge(
  gatewayPort: number,
  db: TimedDatabase,
  registryPath: string,
  running: Running,
): Promise<BridgeResult> {
  let commits = 0;
  let applied = 0;
  let duplicates = 0;
  const config = parseCloudEnv({
    CLOUD_PORT: "0",
    MQTT_URL: `mqtt://127.0.0.1:${gatewayPort}`,
    CLOUD_MQTT_SECRET: cloudSecret,
    REGISTRY_PATH: registryPath,
    CLOUD_INSTANCE: `bench-${site}`,
  });
  const cloud = new CloudService({
    config,
    logger: quiet,
    db,
    site,
    onCommitted: (o: FlushOutcome) => {
      commits++;
      applied += o.applied;
      duplicates += o.duplicates;
    },
  });
  running.cloud = cloud;
  await cloud.start();
  const fleet = await startFleet({
    url: `mqtt://127.0.0.1:${gatewayPort}`,
    site,
    secrets,
    eventsPerDevice: perDevice,
    history: cfg.history,
    batchSize: cfg.batch,
    window: cfg.window,
    ackTimeoutMs: cfg.ackTimeoutMs,
  });
  running.fleet = fleet;

  const profiler = cfg.cpuProfile ? new Session() : undefined;
  if (profiler) {
    profiler.connect();
    await profiler.post("Profiler.enable");
    await profiler.post("Profiler.start");
  }
  db.recording = true;
  const meter = await meterPhase(db, { cloud: process.pid, gateway: running.gateway?.pid, kiosks: fleet.pid });
  const t0 = performance.now();
  const r = await runFleet(fleet, (acked, s, perSecond) =>
    progress(
      `bridge ${s.toFixed(0)}s: acked ${fmtInt(acked)}/${fmtInt(totalEvents)} (${fmtInt(perSecond)}/s, ${commits} commits)`,
    ),
  );
  const wallMs = performance.now() - t0;
  const measured = meter();
  db.recording = false;
  if (profiler) {
    const { profile } = await profiler.post("Profiler.stop");
    await writeFile(cfg.cpuProfile!, JSON.stringify(profile));
    profiler.disconnect();
    progress(`CPU profile of the bridge phase written to ${cfg.cpuProfile}`);
  }
  return {
    ms: r.elapsedMs,
    latencies: r.latencies,
    published: r.published,
    resends: r.resends,
    acksReceived: r.acksReceived,
    commits,
    applied,
    duplicates,
    elu: measured.elu,
    nodeCpu: (measured.self.user + measured.self.system) / 1000 / wallMs,
    machineCpu: measured.machine,
    cpuByProcess: measured.cpu,
  };
}

/** Gives every bench device `history` entries already in inbox and checkins, acked. */
async function prefillHistory(db: TimedDatabase): Promise<void> {
  const devices = [...secrets.keys()];
  await db.query(`INSERT INTO devices (site_id, id) SELECT $1, d FROM unnest($2::text[]) AS d ON CONFLICT DO NOTHING`, [
    site,
    devices,
  ]);
  await db.query(
    `INSERT INTO inbox (site_id, device_id, seq, entry_id, kind, outcome, at, body, received_at)
     SELECT $1, d, g, (md5(d || g)::uuid)::text, 'checkin', 'applied', now(),
            jsonb_build_object('memberId', 'm-' || (g % 1000), 'credential', jsonb_build_object('type', 'card', 'uid', '04A2B3C4'),
                               'replicaVersion', 1, 'offline', false), now()
     FROM unnest($2::text[]) AS d, generate_series(1, $3::bigint) AS g`,
    [site, devices, cfg.history],
  );
  await db.query(
    `INSERT INTO device_streams (site_id, device_id, acked_seq) SELECT $1, d, $3 FROM unnest($2::text[]) AS d
     ON CONFLICT (site_id, device_id) DO UPDATE SET acked_seq = $3`,
    [site, devices, cfg.history],
  );
}

/**
 * Exactly-once: every entry once in the inbox and applied once, nothing
 * quarantined, streams acked to the end. The checks scan the whole site, so
 * nested loops are switched off: with statistics from before the run the
 * planner expects ~1 row per site and picks an O(n^2) nested-loop anti join.
 */
async function verify(db: Database): Promise<string[]> {
  return db.transaction(async (tx) => {
    await tx.query("SET LOCAL enable_nestloop = off");
    await tx.query("SET LOCAL statement_timeout = '120s'");
    const problems: string[] = [];
    const expectTotal = totalEvents + cfg.history * cfg.devices;
    const expectPer = cfg.history + perDevice;
    const one = async (sql: string) => Number((await tx.query<{ n: number }>(sql, [site])).rows[0]?.n ?? 0);
    const inbox = await one("SELECT count(*)::int AS n FROM inbox WHERE site_id = $1");
    const checkins = await one("SELECT count(*)::int AS n FROM checkins WHERE site_id = $1");
    const quarantine = await one("SELECT count(*)::int AS n FROM quarantine WHERE site_id = $1");
    const applied = await one("SELECT count(*)::int AS n FROM inbox WHERE site_id = $1 AND outcome = 'applied'");
    if (inbox !== expectTotal) problems.push(`inbox holds ${inbox} rows, expected ${expectTotal}`);
    if (checkins !== expectTotal) problems.push(`checkins holds ${checkins} rows, expected ${expectTotal}`);
    if (applied !== expectTotal) problems.push(`inbox has ${applied} 'applied' rows, expected ${expectTotal}`);
    if (quarantine !== 0) problems.push(`quarantine holds ${quarantine} rows, expected 0`);
    const { rows } = await tx.query<{ device_id: string; n: number; lo: number; hi: number; acked: number | null }>(
      `SELECT i.device_id, count(*)::int AS n, min(i.seq) AS lo, max(i.seq) AS hi, s.acked_seq AS acked
       FROM inbox i LEFT JOIN device_streams s USING (site_id, device_id)
       WHERE i.site_id = $1 GROUP BY i.device_id, s.acked_seq`,
      [site],
    );
    if (rows.length !== cfg.devices)
      problems.push(`inbox has entries of ${rows.length} devices, expected ${cfg.devices}`);
    for (const r of rows) {
      if (r.n !== expectPer || r.lo !== 1 || r.hi !== expectPer || r.acked !== expectPer) {
        problems.push(
          `${r.device_id}: ${r.n} entries, seq ${r.lo}..${r.hi}, acked_seq ${r.acked}; expected ${expectPer}`,
        );
      }
    }
    // Each check-in matches its inbox row (same device, seq and entry id), so none was applied for another entry.
    const matched = await one(
      `SELECT count(*)::int AS n FROM checkins c
       JOIN inbox i ON i.site_id = c.site_id AND i.device_id = c.device_id AND i.seq = c.seq AND i.entry_id = c.id::text
       WHERE c.site_id = $1`,
    );
    if (matched !== checkins) problems.push(`${checkins - matched} check-ins do not match their inbox entry`);
    return problems;
  });
}

async function main(): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), "paylane-bench-"));
  const registryPath = join(dir, "registry.json");
  let db: TimedDatabase | undefined;
  let raw: pg.Client | undefined;
  const running: Running = {};
  try {
    const file = await saveBenchRegistry(registryPath, site, secrets, cloudSecret);

    db = new TimedDatabase(await openPg({ url: cfg.url, schema, queryTimeoutMs: 600_000 }));
    await migrate(db);
    await seedSite(db, { id: site, name: "Bench venue", timezone: "UTC" }, []);
    const pgVersion =
      (await db.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]?.v ?? "?";
    const syncCommit =
      (await db.query<{ v: string }>("SELECT current_setting('synchronous_commit') AS v")).rows[0]?.v ?? "?";

    process.stderr.write(
      `PayLane ingest benchmark: ${fmtInt(totalEvents)} events = ${cfg.devices} devices x ${fmtInt(perDevice)}, ` +
        `batch ${cfg.batch}, window ${cfg.window}; Postgres ${pgVersion} (synchronous_commit=${syncCommit}), ` +
        `schema ${schema}, site ${site}, ${cpus().length} cores\n`,
    );

    // 1. Raw baselines.
    raw = await connectRaw(cfg.url, schema);
    progress("raw baseline: unnest");
    const unnest1 = await runRaw(raw, "unnest", 1);
    progress("raw baseline: VALUES");
    const values = await runRaw(raw, "values");
    progress("raw reference: the bridge's own statement");
    const sameWork = await runRaw(raw, "same-work");

    // 2. The bridge.
    if (cfg.history > 0) {
      progress(`history: ${fmtInt(cfg.history)} committed, acked entries per device`);
      await prefillHistory(db);
    }
    if (cfg.analyze) await db.exec("ANALYZE inbox, device_streams, devices, sites");
    const gateway = new Child<GatewayIn, GatewayOut>("gateway", new URL("./lib/gateway-process.ts", import.meta.url));
    running.gateway = gateway;
    gateway.send({ type: "start", registry: file });
    const { port } = await gateway.next("listening");
    progress(
      `bridge: ${cfg.devices} devices (own process) -> aedes :${port} (own process) -> cloud -> Postgres -> ack`,
    );
    const b = await runBridge(port, db, registryPath, running);

    // The raw limit again, so a busy neighbour during one of the runs is visible; the faster one counts.
    progress("raw baseline: unnest, second round");
    const unnest2 = await runRaw(raw, "unnest", 2);
    await raw.end();
    raw = undefined;
    const unnest = rate(unnest1.inserted, unnest1.ms) >= rate(unnest2.inserted, unnest2.ms) ? unnest1 : unnest2;

    // 3. Exactly-once.
    const problems = await verify(db);
    if (b.applied !== totalEvents)
      problems.push(`the bridge reported ${b.applied} applied entries, expected ${totalEvents}`);

    // 4. Report.
    const bridgeRate = rate(totalEvents, b.ms);
    const rawRate = rate(unnest.inserted, unnest.ms);
    const valuesRate = rate(values.inserted, values.ms);
    const rows = (label: string, n: number, ms: number) => [
      label,
      fmtInt(n),
      `${(ms / 1000).toFixed(2)} s`,
      fmtInt(rate(n, ms)),
    ];
    const out: string[] = [];
    out.push("");
    out.push(
      `PayLane ingest benchmark: ${fmtInt(totalEvents)} events, ${cfg.devices} devices, batch ${cfg.batch}, ` +
        `window ${cfg.window}, history ${fmtInt(cfg.history)}/device, ANALYZE ${cfg.analyze ? "on" : "off"}; ` +
        `Postgres ${pgVersion}, ${cpus().length} cores`,
    );
    out.push("");
    out.push(
      table(
        [`path (raw: ${cfg.rawBatch} rows/stmt, 1 conn, autocommit)`, "rows", "time", "rows/s"],
        [
          rows(`raw inbox INSERT..SELECT unnest, before bridge`, unnest1.inserted, unnest1.ms),
          rows(`raw inbox INSERT..SELECT unnest, after bridge`, unnest2.inserted, unnest2.ms),
          rows(`raw inbox INSERT..VALUES`, values.inserted, values.ms),
          rows(`raw same work: the bridge statement`, sameWork.inserted, sameWork.ms),
          rows("bridge: devices->aedes->cloud->pg->ack", totalEvents, b.ms),
        ],
      ),
    );
    out.push("");
    out.push(
      `publish->ack per batch: p50 ${fmtMs(percentile(b.latencies, 50))}, p99 ${fmtMs(percentile(b.latencies, 99))}, ` +
        `max ${fmtMs(b.latencies.at(-1) ?? Number.NaN)} (${fmtInt(b.latencies.length)} batches, ` +
        `${fmtInt(b.published)} publishes, ${b.resends} ack-timeout resends, ${fmtInt(b.acksReceived)} acks received)`,
    );
    const stmts = db.statements;
    const ingestStmt = stmts.find((st) => st.label.startsWith("ingest statement"));
    const stmtMs = ingestStmt?.ms ?? 0;
    const stmtCount = ingestStmt?.count ?? 0;
    out.push(
      `bridge: ${fmtInt(b.commits)} commits, avg ${fmtInt(totalEvents / Math.max(1, b.commits))} entries/commit, ` +
        `ingest statements busy ${((100 * stmtMs) / b.ms).toFixed(0)}% of wall (sum over connections; avg ${fmtMs(stmtMs / Math.max(1, stmtCount))}/stmt); ` +
        `node main thread ELU ${(100 * b.elu).toFixed(0)}%, node CPU ${(100 * b.nodeCpu).toFixed(0)}% of a core` +
        (b.machineCpu !== undefined
          ? `, machine CPU ${(100 * b.machineCpu).toFixed(0)}% of ${cpus().length} cores`
          : ""),
    );
    out.push("");
    out.push(
      table(
        ["statement (ingest path)", "count", "total", "avg", "% of wall"],
        stmts.map((st) => [
          st.label,
          fmtInt(st.count),
          fmtMs(st.ms),
          fmtMs(st.ms / st.count),
          `${((100 * st.ms) / b.ms).toFixed(1)}%`,
        ]),
      ),
    );
    if (b.cpuByProcess.size > 0) {
      out.push(
        `CPU during the bridge phase, µs per event: ${[...b.cpuByProcess]
          .sort((x, y) => y[1] - x[1])
          .map(([group, sec]) => `${group} ${((sec * 1e6) / totalEvents).toFixed(1)}`)
          .join(", ")} (raw unnest: Postgres alone, ${(1e6 / rawRate).toFixed(1)} µs wall per row)`,
      );
    }
    out.push("");
    const expected = totalEvents + cfg.history * cfg.devices;
    if (problems.length === 0) {
      out.push(
        `exactly-once: OK (inbox ${fmtInt(expected)}, checkins ${fmtInt(expected)}, quarantine 0, ` +
          `every device acked to ${fmtInt(cfg.history + perDevice)}, ${fmtInt(b.duplicates)} duplicate deliveries absorbed)`,
      );
    } else {
      out.push("exactly-once: FAILED");
      for (const p of problems) out.push(`  - ${p}`);
    }
    const sameRate = rate(sameWork.inserted, sameWork.ms);
    out.push(
      `raw VALUES/unnest = ${(valuesRate / rawRate).toFixed(2)}; bridge/raw-same-work = ${(bridgeRate / sameRate).toFixed(2)}`,
    );
    out.push(
      `ratio bridge/raw = ${(bridgeRate / rawRate).toFixed(2)} (target >= ${TARGET_RATIO.toFixed(2)}; raw = faster unnest round)`,
    );
    process.stdout.write(`${out.join("\n")}\n`);
    return problems.length === 0 ? 0 : 1;
  } finally {
    await running.fleet?.stop({ type: "stop" }).catch(() => {});
    await running.cloud?.stop().catch(() => {});
    await running.gateway?.stop({ type: "stop" }).catch(() => {});
    await raw?.end().catch(() => {});
    await dropBenchState(db, schema, dir);
  }
}

runBench(main);
