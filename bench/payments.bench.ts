/**
 * Payments benchmark: payments/s of online authorization through the HTTP
 * API (`POST /api/v1/payments`), next to two floors measured in the same run
 * on the same Postgres:
 *
 *   npm run bench:payments        (also the last part of npm run bench)
 *
 * - floor: the one statement an authorization is (`payment_authorize`, the
 *   SQL function of migrations/009) called straight over a `pg` pool by
 *   PAYMENTS_BENCH_KIOSKS workers in this process, one payment after the
 *   other each (through `authorizePayment`, which issues exactly that
 *   statement). No HTTP, no JSON body, no zod, no auth. It runs before and
 *   after the API; the faster round counts.
 * - API: as many kiosks in their own process (bench/lib/payments-kiosks-process.ts),
 *   each a keep-alive HTTP client with its own device credentials, POST
 *   payments one after the other -> `CloudService` (this process, its pool of
 *   PAYMENTS_BENCH_CLOUD_POOL connections) -> Postgres. The cloud's MQTT side
 *   connects to an aedes gateway in its own process and stays idle.
 * - pgbench: Postgres' own simple-update transaction (`pgbench -N`, the
 *   built-in "simple-update": three statements and a commit) with the same
 *   number of clients, for PAYMENTS_BENCH_PGBENCH_SECONDS, on a scratch
 *   database this bench creates (`pgbench -i`) and drops.
 *
 * Targets (issue 13): API >= 0.8 x floor, floor >= 0.5 x pgbench.
 *
 * Every payment: a random member of PAYMENTS_BENCH_MEMBERS (each with an
 * opening balance far beyond what the run spends, so all are approved), a
 * fresh UUID key, item `coffee` at its price (250). Each phase starts with
 * PAYMENTS_BENCH_WARMUP untimed payments. Then PAYMENTS_BENCH_REPLAYS of the
 * API's payments are sent again with the same key and body: each answer must
 * carry `idempotent-replayed: true`, be byte for byte the first answer, and
 * the ledger must not change. Finally the ledger is verified: one purchase
 * per approved payment, no request key twice, every wallet's balance and
 * entry count equal to its entries', every entry's balance_after the running
 * sum (exit 1 if not).
 *
 * Environment: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test),
 * PAYMENTS_BENCH_N (20000 per timed phase), PAYMENTS_BENCH_KIOSKS (20),
 * PAYMENTS_BENCH_MEMBERS (2000), PAYMENTS_BENCH_WARMUP (1000 per phase),
 * PAYMENTS_BENCH_REPLAYS (1000), PAYMENTS_BENCH_FLOOR_POOL (20 connections:
 * one per worker), PAYMENTS_BENCH_CLOUD_POOL (10, as the cloud opens its own),
 * PAYMENTS_BENCH_PGBENCH_SECONDS (10; 0 skips pgbench), PGBENCH (/usr/bin/pgbench);
 * PAYMENTS_BENCH_CPU_PROFILE=file.cpuprofile writes a V8 CPU profile of the
 * API phase (this process: the cloud). Everything lives in its own schema
 * `bench_pay_<random>` and database `paylane_pgbench_<random>`, both dropped
 * at the end.
 */

import { execFile } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtemp, writeFile } from "node:fs/promises";
import { Session } from "node:inspector/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { promisify } from "node:util";
import {
  authorizePayment,
  CloudService,
  type Database,
  type DemoMember,
  migrate,
  openPg,
  parseCloudEnv,
  seedSite,
} from "@paylane/cloud";
import type { PaymentRequest } from "@paylane/protocol";
import pino from "pino";
import { intEnv } from "../test/support/env.ts";
import { Child } from "./lib/child.ts";
import { dropBenchState } from "./lib/cleanup.ts";
import { meterPhase, type PhaseCpu } from "./lib/cpu.ts";
import type { GatewayIn, GatewayOut } from "./lib/gateway-process.ts";
import type { KiosksIn, KiosksOut, ReplayResult, RunResult } from "./lib/payments-kiosks-process.ts";
import { benchSecrets, saveBenchRegistry } from "./lib/registry-file.ts";
import { fmtInt, fmtMs, percentile, progress, rate, runBench, table } from "./lib/stats.ts";

const cfg = {
  url: process.env.DATABASE_URL || "postgres://postgres@127.0.0.1:5432/test",
  n: intEnv("PAYMENTS_BENCH_N", 20_000),
  kiosks: intEnv("PAYMENTS_BENCH_KIOSKS", 20),
  members: intEnv("PAYMENTS_BENCH_MEMBERS", 2000),
  warmup: intEnv("PAYMENTS_BENCH_WARMUP", 1000, 0),
  replays: intEnv("PAYMENTS_BENCH_REPLAYS", 1000, 0),
  floorPool: intEnv("PAYMENTS_BENCH_FLOOR_POOL", 20),
  cloudPool: intEnv("PAYMENTS_BENCH_CLOUD_POOL", 10),
  pgbenchSeconds: intEnv("PAYMENTS_BENCH_PGBENCH_SECONDS", 10, 0),
  pgbench: process.env.PGBENCH || "/usr/bin/pgbench",
  cpuProfile: process.env.PAYMENTS_BENCH_CPU_PROFILE || undefined,
};
const perKiosk = Math.ceil(cfg.n / cfg.kiosks);
const total = perKiosk * cfg.kiosks;
const warmPerKiosk = Math.ceil(cfg.warmup / cfg.kiosks);
if (cfg.replays > total) throw new Error(`PAYMENTS_BENCH_REPLAYS: at most the ${total} payments of the API phase`);

/** The targets issue 13 sets. */
const TARGET_API_FLOOR = 0.8;
const TARGET_FLOOR_PGBENCH = 0.5;

const ITEM = { id: "coffee", price: 250 };
const CURRENCY = "EUR";
const MEMBER_PREFIX = "p-";
/** Far beyond what any member spends in a run (a few dozen coffees). */
const OPENING_BALANCE = 100_000_000;

const quiet = pino({ level: "silent" });
const site = `b${randomBytes(4).toString("hex")}`;
const schema = `bench_pay_${randomBytes(6).toString("hex")}`;
const pgbenchDb = `paylane_pgbench_${randomBytes(6).toString("hex")}`;
const cloudSecret = randomBytes(18).toString("base64url");
const secrets = benchSecrets("k", cfg.kiosks);

const members: DemoMember[] = Array.from({ length: cfg.members }, (_, i) => ({
  id: `${MEMBER_PREFIX}${i}`,
  name: `Member ${i}`,
  cardUid: (0x20000000 + i).toString(16).toUpperCase(),
  code: `P${String(i).padStart(6, "0")}`,
  status: "active",
  openingBalance: OPENING_BALANCE,
}));

/** One phase's figures; `self` and `elu` are this process's: the floor's workers, or the cloud. */
interface Phase extends PhaseCpu {
  label: string;
  count: number;
  approved: number;
  ms: number;
  /** Per payment, ms, sorted. */
  latencies: number[];
  failures: string[];
}

function payment(): PaymentRequest {
  return {
    key: randomUUID(),
    memberId: `${MEMBER_PREFIX}${Math.floor(Math.random() * cfg.members)}`,
    amount: ITEM.price,
    currency: CURRENCY,
    itemId: ITEM.id,
    at: new Date().toISOString(),
  };
}

/** Each kiosk's worker authorizes `each` payments one after the other: one statement each, straight on the pool. */
async function authorizeDirect(
  db: Database,
  each: number,
  onDone: () => void,
): Promise<Pick<Phase, "approved" | "ms" | "latencies" | "failures">> {
  const latencies: number[] = [];
  const failures: string[] = [];
  let approved = 0;
  const t0 = performance.now();
  await Promise.all(
    [...secrets.keys()].map(async (device) => {
      for (let i = 0; i < each; i++) {
        const request = payment();
        const t = performance.now();
        const out = await authorizePayment(db, { site, device, request, now: new Date() });
        latencies.push(performance.now() - t);
        onDone();
        if (out.kind === "fresh" && out.status === 200 && out.body.status === "approved") approved++;
        else if (failures.length < 20) failures.push(`${device} ${request.key}: ${JSON.stringify(out)}`);
      }
    }),
  );
  const ms = performance.now() - t0;
  latencies.sort((a, b) => a - b);
  return { approved, ms, latencies, failures };
}

async function runFloor(db: Database, round: number): Promise<Phase> {
  const label = `floor round ${round}`;
  if (round === 1 && warmPerKiosk > 0) {
    progress(`${label}: warm-up, ${fmtInt(warmPerKiosk * cfg.kiosks)} payments`);
    const w = await authorizeDirect(db, warmPerKiosk, () => {});
    if (w.failures.length > 0) throw new Error(`${label} warm-up: ${w.failures[0]}`);
  }
  progress(`${label}: ${cfg.kiosks} workers x ${fmtInt(perKiosk)} payment_authorize, pool ${cfg.floorPool}`);
  const meter = await meterPhase(db, { "node (floor workers)": process.pid });
  const t0 = performance.now();
  let done = 0;
  let prev = 0;
  const ticker = setInterval(() => {
    progress(
      `${label} ${((performance.now() - t0) / 1000).toFixed(0)}s: ${fmtInt(done)}/${fmtInt(total)} (${fmtInt(done - prev)}/s)`,
    );
    prev = done;
  }, 1000);
  try {
    const r = await authorizeDirect(db, perKiosk, () => done++);
    return { label, count: total, ...r, ...meter() };
  } finally {
    clearInterval(ticker);
  }
}

/** The kiosks' `run`, with progress. */
async function kiosksRun(kiosks: Child<KiosksIn, KiosksOut>, label: string, each: number): Promise<RunResult> {
  const t0 = performance.now();
  let prev = 0;
  const off = kiosks.on((m) => {
    if (m.type !== "tick") return;
    const s = (performance.now() - t0) / 1000;
    progress(`${label} ${s.toFixed(0)}s: ${fmtInt(m.done)}/${fmtInt(each * cfg.kiosks)} (${fmtInt(m.done - prev)}/s)`);
    prev = m.done;
  });
  kiosks.send({ type: "run", perKiosk: each });
  return (await kiosks.next("result").finally(off)).result;
}

async function runApi(
  kiosks: Child<KiosksIn, KiosksOut>,
  db: Database,
  pids: Record<string, number | undefined>,
): Promise<Phase> {
  const label = "API";
  if (warmPerKiosk > 0) {
    progress(`${label}: warm-up, ${fmtInt(warmPerKiosk * cfg.kiosks)} payments`);
    const w = await kiosksRun(kiosks, `${label} warm-up`, warmPerKiosk);
    if (w.failures.length > 0) throw new Error(`${label} warm-up: ${w.failures[0]}`);
  }
  progress(
    `${label}: ${cfg.kiosks} kiosks (own process) x ${fmtInt(perKiosk)} POST /api/v1/payments -> cloud -> Postgres`,
  );
  const profiler = cfg.cpuProfile ? new Session() : undefined;
  if (profiler) {
    profiler.connect();
    await profiler.post("Profiler.enable");
    await profiler.post("Profiler.start");
  }
  const meter = await meterPhase(db, pids);
  const r = await kiosksRun(kiosks, label, perKiosk);
  const measured = meter();
  if (profiler) {
    const { profile } = await profiler.post("Profiler.stop");
    await writeFile(cfg.cpuProfile!, JSON.stringify(profile));
    profiler.disconnect();
    progress(`CPU profile of the API phase (this process: the cloud) written to ${cfg.cpuProfile}`);
  }
  return {
    label,
    count: total,
    approved: r.approved,
    ms: r.elapsedMs,
    latencies: r.latencies,
    failures: r.failures,
    ...measured,
  };
}

interface PgbenchResult {
  tps: number;
  /** pgbench's own latency average, ms. */
  latencyMs: number;
  transactions: number;
}

const run = promisify(execFile);

/**
 * Postgres' own simple-update (`pgbench -N`) with `clients` clients, on a
 * scratch database created here and dropped after, whatever happens.
 */
async function runPgbench(db: Database, clients: number): Promise<PgbenchResult> {
  const url = new URL(cfg.url);
  const env = {
    ...process.env,
    PGHOST: url.hostname,
    PGPORT: url.port || "5432",
    PGUSER: decodeURIComponent(url.username) || "postgres",
    ...(url.password ? { PGPASSWORD: decodeURIComponent(url.password) } : {}),
  };
  await db.query(`CREATE DATABASE ${pgbenchDb}`);
  try {
    progress(`pgbench: initialising ${pgbenchDb} (scale 1)`);
    await run(cfg.pgbench, ["-i", "-q", pgbenchDb], { env });
    progress(`pgbench: -N (simple-update), ${clients} clients, ${cfg.pgbenchSeconds} s`);
    const jobs = Math.min(clients, cpus().length);
    const { stdout } = await run(
      cfg.pgbench,
      ["-N", "-c", String(clients), "-j", String(jobs), "-T", String(cfg.pgbenchSeconds), pgbenchDb],
      { env, maxBuffer: 1 << 20 },
    );
    const tps = /tps = ([\d.]+)/.exec(stdout);
    const latency = /latency average = ([\d.]+) ms/.exec(stdout);
    const processed = /number of transactions actually processed: (\d+)/.exec(stdout);
    if (!tps) throw new Error(`pgbench printed no tps:\n${stdout}`);
    return {
      tps: Number(tps[1]),
      latencyMs: Number(latency?.[1] ?? Number.NaN),
      transactions: Number(processed?.[1] ?? 0),
    };
  } finally {
    await db.query(`DROP DATABASE IF EXISTS ${pgbenchDb} WITH (FORCE)`).catch((err: Error) => {
      process.stderr.write(`could not drop database ${pgbenchDb}: ${err.message}\n`);
    });
  }
}

async function purchases(db: Database): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM ledger_entries WHERE site_id = $1 AND kind = 'purchase'",
    [site],
  );
  return rows[0]?.n ?? 0;
}

/** The ledger after the run: one purchase per approval, each key once, wallets equal to their entries. */
async function verify(db: Database, approved: number): Promise<string[]> {
  const problems: string[] = [];
  const one = async (sql: string) => Number((await db.query<{ n: number }>(sql, [site])).rows[0]?.n ?? 0);
  const bought = await purchases(db);
  if (bought !== approved) problems.push(`the ledger holds ${bought} purchases, ${approved} payments were approved`);
  const online = await one(
    `SELECT count(*)::int AS n FROM ledger_entries
     WHERE site_id = $1 AND kind = 'purchase' AND "authorization" = 'online' AND amount = -${ITEM.price} AND item_id = '${ITEM.id}'`,
  );
  if (online !== bought) problems.push(`${bought - online} purchases are not online ${ITEM.id} at ${ITEM.price}`);
  const twice = await one(
    "SELECT (count(*) - count(DISTINCT request_key))::int AS n FROM ledger_entries WHERE site_id = $1",
  );
  if (twice !== 0) problems.push(`${twice} request keys are in the ledger more than once`);
  const keys = await one(
    "SELECT count(*)::int AS n FROM idempotency_keys WHERE site_id = $1 AND scope LIKE 'device:%' AND status_code = 200",
  );
  if (keys !== approved) problems.push(`${keys} stored 200 answers under device keys, expected ${approved}`);
  const wallets = await one(
    `SELECT count(*)::int AS n FROM wallets w
     LEFT JOIN (SELECT member_id, sum(amount) AS s, count(*) AS c, max(n) AS hi
                FROM ledger_entries WHERE site_id = $1 GROUP BY member_id) l USING (member_id)
     WHERE w.site_id = $1 AND (w.balance <> coalesce(l.s, 0) OR w.entries <> coalesce(l.c, 0) OR l.hi <> l.c)`,
  );
  if (wallets !== 0) problems.push(`${wallets} wallets differ from the sum, count or positions of their entries`);
  const chain = await one(
    `SELECT count(*)::int AS n FROM (
       SELECT balance_after, sum(amount) OVER (PARTITION BY member_id ORDER BY n) AS running
       FROM ledger_entries WHERE site_id = $1) e
     WHERE balance_after <> running`,
  );
  if (chain !== 0) problems.push(`${chain} entries' balance_after is not the running sum of their wallet`);
  const overdrawn = await one("SELECT count(*)::int AS n FROM wallets WHERE site_id = $1 AND balance < 0");
  if (overdrawn !== 0) problems.push(`${overdrawn} wallets are below zero`);
  return problems;
}

/** CPU per payment by process, this process's user/system split, and the machine's busy share. */
function cpuLine(p: Phase, self: string): string {
  const all = [...p.cpu].reduce((a, [, s]) => a + s, 0);
  const groups = [...p.cpu]
    .sort((x, y) => y[1] - x[1])
    .map(([group, sec]) => `${group} ${((sec * 1e6) / p.count).toFixed(0)} µs`)
    .join(", ");
  const us = (n: number) => `${(n / p.count).toFixed(0)} µs`;
  return (
    `${groups}; together ${((100 * all * 1000) / p.ms / cpus().length).toFixed(0)}% of ${cpus().length} cores ` +
    `(${self}: user ${us(p.self.user)} + system ${us(p.self.system)}, event loop utilisation ${(100 * p.elu).toFixed(0)}%; ` +
    `whole machine busy ${p.machine === undefined ? "?" : `${(100 * p.machine).toFixed(0)}%`}, other processes included)`
  );
}

interface Report {
  header: string;
  floors: Phase[];
  api: Phase;
  pgbench: PgbenchResult | undefined;
  replay: ReplayResult | undefined;
  ledgerBefore: number;
  ledgerAfter: number;
  problems: string[];
  loadAtStart: number;
}

function report(r: Report): string {
  const floor = r.floors.reduce((a, b) => (rate(b.count, b.ms) > rate(a.count, a.ms) ? b : a));
  const floorRate = rate(floor.count, floor.ms);
  const apiRate = rate(r.api.count, r.api.ms);
  const row = (label: string, count: number, ms: number, latencies: number[]) => [
    label,
    fmtInt(count),
    `${(ms / 1000).toFixed(2)} s`,
    fmtInt(rate(count, ms)),
    fmtMs(percentile(latencies, 50)),
    fmtMs(percentile(latencies, 99)),
    fmtMs(latencies.at(-1) ?? Number.NaN),
  ];
  const rows = [
    row(
      `API: ${cfg.kiosks} kiosks -> HTTP keep-alive -> cloud (pool ${cfg.cloudPool})`,
      r.api.count,
      r.api.ms,
      r.api.latencies,
    ),
    ...r.floors.map((x) =>
      row(
        `${x.label}: payment_authorize, ${cfg.kiosks} workers, pool ${cfg.floorPool}${x === floor ? " *" : ""}`,
        x.count,
        x.ms,
        x.latencies,
      ),
    ),
  ];
  if (r.pgbench) {
    const p = r.pgbench;
    rows.push([
      `pgbench -N (simple-update), ${cfg.kiosks} clients`,
      fmtInt(p.transactions),
      `${cfg.pgbenchSeconds} s`,
      fmtInt(p.tps),
      `(mean ${fmtMs(p.latencyMs)})`,
      "-",
      "-",
    ]);
  }
  if (r.replay)
    rows.push(
      row(
        "API retries: same key and body, replayed",
        r.replay.latencies.length,
        r.replay.elapsedMs,
        r.replay.latencies,
      ),
    );
  const verdict = (ratio: number, target: number) =>
    `${ratio.toFixed(2)} (target >= ${target}: ${ratio >= target ? "met" : "NOT met"})`;
  const out: string[] = ["", r.header, ""];
  out.push(table(["path", "payments", "time", "payments/s", "p50", "p99", "max"], rows));
  out.push("");
  out.push(`API / floor     = ${verdict(apiRate / floorRate, TARGET_API_FLOOR)}   (floor = the faster round, *)`);
  out.push(
    r.pgbench
      ? `floor / pgbench = ${verdict(floorRate / r.pgbench.tps, TARGET_FLOOR_PGBENCH)}`
      : "floor / pgbench = not measured (PAYMENTS_BENCH_PGBENCH_SECONDS=0)",
  );
  out.push("");
  out.push("CPU per payment:");
  for (const x of r.floors) out.push(`  ${x.label}: ${cpuLine(x, "floor workers")}`);
  out.push(`  API: ${cpuLine(r.api, "cloud")}`);
  // Everything shares the machine: other work running meanwhile skews the ratios either way.
  out.push(
    `machine load (1-min average): ${r.loadAtStart.toFixed(1)} at the start, ${loadavg()[0]!.toFixed(1)} at the end`,
  );
  out.push("");
  if (r.replay) {
    const n = r.replay.latencies.length;
    out.push(
      `retries: ${fmtInt(n)} re-sent, ${fmtInt(r.replay.replayed)} marked idempotent-replayed: true, ` +
        `${fmtInt(r.replay.identical)} byte for byte the first answer; ledger purchases ${fmtInt(r.ledgerBefore)} before, ` +
        `${fmtInt(r.ledgerAfter)} after (${fmtInt(rate(n, r.replay.elapsedMs))} replays/s)`,
    );
  }
  if (r.problems.length === 0) {
    out.push(
      `verified: ${fmtInt(r.ledgerAfter)} purchases = payments approved (warm-ups included), no request key twice, ` +
        "every wallet's balance and entry count = its entries', balance_after = running sum, none below zero",
    );
  } else {
    out.push("verification FAILED");
    for (const problem of r.problems) out.push(`  - ${problem}`);
  }
  return out.join("\n");
}

/** What must be stopped at the end, filled in as soon as each part exists. */
interface Running {
  cloud?: CloudService;
  kiosks?: Child<KiosksIn, KiosksOut>;
  gateway?: Child<GatewayIn, GatewayOut>;
  floorDb?: Database;
  cloudDb?: Database;
}

async function main(): Promise<number> {
  const loadAtStart = loadavg()[0]!;
  const dir = await mkdtemp(join(tmpdir(), "paylane-payments-"));
  const registryPath = join(dir, "registry.json");
  const running: Running = {};
  try {
    const file = await saveBenchRegistry(registryPath, site, secrets, cloudSecret);

    // The cloud's pool, as it opens its own; and the floor workers' pool, a connection each.
    const db = await openPg({ url: cfg.url, schema, max: cfg.cloudPool });
    running.cloudDb = db;
    await migrate(db);
    progress(`seeding ${fmtInt(cfg.members)} members with opening balances`);
    await seedSite(db, { id: site, name: "Bench venue", timezone: "UTC", currency: CURRENCY }, members, [
      { ...ITEM, name: "Coffee" },
    ]);
    await db.exec("ANALYZE");
    const floorDb = await openPg({ url: cfg.url, schema, max: cfg.floorPool });
    running.floorDb = floorDb;
    const setting = async (name: string) =>
      (await db.query<{ v: string }>("SELECT current_setting($1) AS v", [name])).rows[0]?.v ?? "?";
    const header =
      `PayLane payments benchmark: ${fmtInt(total)} payments per phase = ${cfg.kiosks} kiosks x ${fmtInt(perKiosk)} ` +
      `(+${fmtInt(warmPerKiosk * cfg.kiosks)} warm-up), ${fmtInt(cfg.members)} members, ${ITEM.id} at ${ITEM.price}; ` +
      `Postgres ${await setting("server_version")} (synchronous_commit=${await setting("synchronous_commit")}), ` +
      `${cpus().length} cores`;
    process.stderr.write(`${header}; schema ${schema}, site ${site}\n`);

    const gateway = new Child<GatewayIn, GatewayOut>("gateway", new URL("./lib/gateway-process.ts", import.meta.url));
    running.gateway = gateway;
    gateway.send({ type: "start", registry: file });
    const { port } = await gateway.next("listening");
    const cloud = new CloudService({
      config: parseCloudEnv({
        CLOUD_PORT: "0",
        MQTT_URL: `mqtt://127.0.0.1:${port}`,
        CLOUD_MQTT_SECRET: cloudSecret,
        REGISTRY_PATH: registryPath,
        CLOUD_INSTANCE: `bench-${site}`,
        DATABASE_URL: cfg.url,
        DATABASE_SCHEMA: schema,
      }),
      logger: quiet,
      db,
      site,
    });
    running.cloud = cloud;
    await cloud.start();
    const kiosks = new Child<KiosksIn, KiosksOut>(
      "kiosks",
      new URL("./lib/payments-kiosks-process.ts", import.meta.url),
    );
    running.kiosks = kiosks;
    kiosks.send({
      type: "connect",
      options: {
        url: cloud.url,
        site,
        secrets: [...secrets],
        memberPrefix: MEMBER_PREFIX,
        members: cfg.members,
        amount: ITEM.price,
        currency: CURRENCY,
        itemId: ITEM.id,
      },
    });
    await kiosks.next("connected");

    // 1. floor, 2. the API, 3. floor again (a busy neighbour during one round shows), 4. pgbench.
    const floors = [await runFloor(floorDb, 1)];
    const api = await runApi(kiosks, db, { cloud: process.pid, kiosks: kiosks.pid, gateway: gateway.pid });
    floors.push(await runFloor(floorDb, 2));
    const pgbench = cfg.pgbenchSeconds > 0 ? await runPgbench(db, cfg.kiosks) : undefined;
    const warmups = 2 * warmPerKiosk * cfg.kiosks;
    // The warm-ups stop the bench on any failure: all of theirs are approved.
    const approved = warmups + api.approved + floors.reduce((a, x) => a + x.approved, 0);
    const problems = [...floors, api].flatMap((x) =>
      x.approved === x.count ? [] : [`${x.label}: ${x.count - x.approved} payments not approved: ${x.failures[0]}`],
    );

    // 5. Retries of the API's payments change nothing.
    const ledgerBefore = await purchases(db);
    let replay: ReplayResult | undefined;
    if (cfg.replays > 0) {
      progress(`retries: ${fmtInt(cfg.replays)} API payments again, same key and body`);
      kiosks.send({ type: "replay", count: cfg.replays });
      replay = (await kiosks.next("replayed")).result;
      if (replay.latencies.length !== cfg.replays)
        problems.push(`retries: ${replay.latencies.length} sent, expected ${cfg.replays}`);
      if (replay.replayed !== replay.latencies.length || replay.identical !== replay.latencies.length)
        problems.push(
          `retries: ${replay.replayed} marked replayed, ${replay.identical} identical of ${replay.latencies.length}: ${replay.failures[0]}`,
        );
    }
    const ledgerAfter = await purchases(db);
    if (ledgerAfter !== ledgerBefore)
      problems.push(`the retries changed the ledger: ${ledgerBefore} purchases before, ${ledgerAfter} after`);

    // 6. The ledger.
    progress("verifying the ledger");
    problems.push(...(await verify(db, approved)));

    process.stdout.write(
      `${report({ header, floors, api, pgbench, replay, ledgerBefore, ledgerAfter, problems, loadAtStart })}\n`,
    );
    return problems.length === 0 ? 0 : 1;
  } finally {
    await running.kiosks?.stop({ type: "stop" }).catch(() => {});
    await running.cloud?.stop().catch(() => {});
    await running.gateway?.stop({ type: "stop" }).catch(() => {});
    await running.floorDb?.close().catch(() => {});
    await dropBenchState(running.cloudDb, schema, dir);
  }
}

runBench(main);
