/**
 * Payments benchmark: payments/s and latency of online authorization
 * (`POST /api/v1/payments`) with concurrent kiosks, against the raw rate of
 * the same transaction on the same Postgres in the same run.
 *
 *   npm run bench:payments        (also the last part of npm run bench)
 *
 * Raw: PAYMENTS_BENCH_KIOSKS workers in this process, each one a kiosk's
 * device id, call `authorizePayment` (idempotency key row, member and price,
 * wallet lock, `ledger_post`, stored answer: one transaction) directly on an
 * `openPg` pool, one payment after the other. No HTTP, no JSON, no zod. It
 * runs before and after the API; the faster round counts.
 *
 * API: as many kiosks in their own process (bench/lib/payments-kiosks-process.ts),
 * each a keep-alive HTTP client with its own registered device credentials
 * (HTTP Basic), POST payments one after the other -> `CloudService` (this
 * process, port 0, its default pool of 10 connections) -> Postgres. The cloud's
 * MQTT side connects to an aedes `Gateway` in its own process and stays idle.
 *
 * Every payment: a random member of PAYMENTS_BENCH_MEMBERS (each with an
 * opening balance far beyond what the run spends, so all are approved), a
 * fresh UUID key, item `coffee` at its price (250). Each phase starts with
 * PAYMENTS_BENCH_WARMUP untimed payments (JIT, plan caches, connections).
 *
 * Then PAYMENTS_BENCH_REPLAYS of the API's payments are sent again with the
 * same key and body: each answer must carry `idempotent-replayed: true`, be
 * byte for byte the first answer, and the ledger must not change. Finally the
 * ledger is verified: one purchase per approved payment, no request key
 * twice, every wallet's balance and entry count equal to its entries', every
 * entry's balance_after the running sum (exit 1 if not).
 *
 * Where the time goes is printed beside it, per payment in both paths, timed
 * in the client (TimedDatabase and TransactionEnds): pool checkout + BEGIN,
 * each statement, COMMIT, what lies outside the transaction (the API's HTTP,
 * auth, JSON, zod, event-loop queueing); CPU by process (Postgres backends,
 * the cloud or the raw workers, the kiosks) and how busy the whole machine
 * was: on a small shared machine the load generator and neighbours compete
 * with the cloud and Postgres for the same cores.
 *
 * Environment: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test),
 * PAYMENTS_BENCH_N (20000 per timed phase), PAYMENTS_BENCH_KIOSKS (20),
 * PAYMENTS_BENCH_MEMBERS (2000), PAYMENTS_BENCH_WARMUP (1000 per phase),
 * PAYMENTS_BENCH_REPLAYS (1000), PAYMENTS_BENCH_RAW_POOL (20 connections),
 * PAYMENTS_BENCH_CLOUD_POOL (10, as the cloud opens its own);
 * PAYMENTS_BENCH_CPU_PROFILE=file.cpuprofile writes a V8 CPU profile of the
 * API phase (this process: the cloud) for Chrome DevTools. Everything
 * lives in its own schema `bench_pay_<random>`, dropped at the end.
 */

import { randomBytes, randomUUID } from "node:crypto";
import { mkdtemp, writeFile } from "node:fs/promises";
import { Session } from "node:inspector/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import {
  authorizePayment,
  CloudService,
  type Database,
  type DemoMember,
  migrate,
  openPg,
  parseCloudEnv,
  type Queryable,
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
import { type StatementStats, TimedDatabase } from "./lib/timed-db.ts";

const cfg = {
  url: process.env.DATABASE_URL || "postgres://postgres@127.0.0.1:5432/test",
  n: intEnv("PAYMENTS_BENCH_N", 20_000),
  kiosks: intEnv("PAYMENTS_BENCH_KIOSKS", 20),
  members: intEnv("PAYMENTS_BENCH_MEMBERS", 2000),
  warmup: intEnv("PAYMENTS_BENCH_WARMUP", 1000, 0),
  replays: intEnv("PAYMENTS_BENCH_REPLAYS", 1000, 0),
  rawPool: intEnv("PAYMENTS_BENCH_RAW_POOL", 20),
  cloudPool: intEnv("PAYMENTS_BENCH_CLOUD_POOL", 10),
  cpuProfile: process.env.PAYMENTS_BENCH_CPU_PROFILE || undefined,
};
const perKiosk = Math.ceil(cfg.n / cfg.kiosks);
const total = perKiosk * cfg.kiosks;
const warmPerKiosk = Math.ceil(cfg.warmup / cfg.kiosks);
if (cfg.replays > total) throw new Error(`PAYMENTS_BENCH_REPLAYS: at most the ${total} payments of the API phase`);

const ITEM = { id: "coffee", price: 250 };
const CURRENCY = "EUR";
const MEMBER_PREFIX = "p-";
/** Far beyond what any member spends in a run (a few dozen coffees). */
const OPENING_BALANCE = 100_000_000;

const quiet = pino({ level: "silent" });
const site = `b${randomBytes(4).toString("hex")}`;
const schema = `bench_pay_${randomBytes(6).toString("hex")}`;
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

/** The authorization's statements, by the first words TimedDatabase labels them with. */
const STATEMENTS: Array<[string, string]> = [
  ["INSERT INTO idempotency_keys", "claim the key (INSERT idempotency_keys)"],
  ["SELECT m.status", "member and price"],
  ["INSERT INTO wallets", "wallet row (INSERT … ON CONFLICT)"],
  ["SELECT balance FROM wallets", "lock wallet (SELECT … FOR UPDATE)"],
  ["SELECT id, amount, balance_after", "earlier entry under the key"],
  ["SELECT * FROM ledger_post", "ledger_post"],
  ["UPDATE idempotency_keys", "store the answer (UPDATE idempotency_keys)"],
];
const statementName = (label: string) => STATEMENTS.find(([p]) => label.startsWith(p))?.[1] ?? label;

/**
 * A transaction's own overhead, split around the work TimedDatabase times:
 * pool checkout and BEGIN before it, COMMIT and release after it.
 */
class TransactionEnds implements Database {
  readonly kind: Database["kind"];
  readonly #inner: Database;
  /** ms, summed over transactions since the last reset. */
  openMs = 0;
  commitMs = 0;

  constructor(inner: Database) {
    this.#inner = inner;
    this.kind = inner.kind;
  }

  reset(): void {
    this.openMs = this.commitMs = 0;
  }

  query<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<{ rows: R[] }> {
    return this.#inner.query<R>(sql, params);
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    const t0 = performance.now();
    let done = Number.NaN;
    try {
      return await this.#inner.transaction(async (tx) => {
        this.openMs += performance.now() - t0;
        try {
          return await fn(tx);
        } finally {
          done = performance.now();
        }
      });
    } finally {
      if (!Number.isNaN(done)) this.commitMs += performance.now() - done;
    }
  }

  session<T>(fn: (conn: Queryable) => Promise<T>): Promise<T> {
    return this.#inner.session(fn);
  }

  exec(sql: string): Promise<void> {
    return this.#inner.exec(sql);
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}

/** The timed database of one path: statements and whole transactions, and the transactions' ends. */
interface Timed {
  db: TimedDatabase;
  ends: TransactionEnds;
}

async function openTimed(max: number): Promise<Timed> {
  const ends = new TransactionEnds(await openPg({ url: cfg.url, schema, max }));
  return { db: new TimedDatabase(ends), ends };
}

/** One phase's figures, whichever path; `self` and `elu` are this process's: the raw workers, or the cloud. */
interface Phase extends PhaseCpu {
  label: string;
  count: number;
  approved: number;
  ms: number;
  /** Per payment, ms, sorted. */
  latencies: number[];
  failures: string[];
  statements: StatementStats[];
  transactions: number;
  transactionMs: number;
  /** Pool checkout + BEGIN, and COMMIT + release, summed, ms. */
  openMs: number;
  commitMs: number;
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

/** Each kiosk's worker authorizes `each` payments one after the other, straight on the database. */
async function authorizeRaw(
  db: Database,
  each: number,
  onProgress?: () => void,
): Promise<Pick<Phase, "approved" | "ms" | "latencies" | "failures">> {
  const latencies: number[] = [];
  const failures: string[] = [];
  let approved = 0;
  const ticker = onProgress ? setInterval(onProgress, 1000) : undefined;
  try {
    const t0 = performance.now();
    await Promise.all(
      [...secrets.keys()].map(async (device) => {
        for (let i = 0; i < each; i++) {
          const request = payment();
          const t = performance.now();
          const out = await authorizePayment(db, { site, device, request, now: new Date() });
          latencies.push(performance.now() - t);
          if (out.kind === "fresh" && out.status === 200 && out.body.status === "approved") approved++;
          else if (failures.length < 20) failures.push(`${device} ${request.key}: ${JSON.stringify(out)}`);
        }
      }),
    );
    const ms = performance.now() - t0;
    latencies.sort((a, b) => a - b);
    return { approved, ms, latencies, failures };
  } finally {
    clearInterval(ticker);
  }
}

async function runRaw({ db, ends }: Timed, round: number): Promise<Phase> {
  const label = `raw round ${round}`;
  if (round === 1 && warmPerKiosk > 0) {
    progress(`${label}: warm-up, ${fmtInt(warmPerKiosk * cfg.kiosks)} payments`);
    const w = await authorizeRaw(db, warmPerKiosk);
    if (w.failures.length > 0) throw new Error(`${label} warm-up: ${w.failures[0]}`);
  }
  progress(`${label}: ${cfg.kiosks} workers x ${fmtInt(perKiosk)} authorizePayment, pool ${cfg.rawPool}`);
  const meter = await meterPhase(db, { "node (raw workers)": process.pid });
  db.reset();
  ends.reset();
  db.recording = true;
  const t0 = performance.now();
  let prev = 0;
  const r = await authorizeRaw(db, perKiosk, () => {
    const done = db.transactions;
    progress(
      `${label} ${((performance.now() - t0) / 1000).toFixed(0)}s: ${fmtInt(done)}/${fmtInt(total)} (${fmtInt(done - prev)}/s)`,
    );
    prev = done;
  });
  db.recording = false;
  const phase: Phase = {
    label,
    count: total,
    ...r,
    statements: db.statements,
    transactions: db.transactions,
    transactionMs: db.transactionMs,
    openMs: ends.openMs,
    commitMs: ends.commitMs,
    ...meter(),
  };
  db.reset();
  return phase;
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
  { db, ends }: Timed,
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
  db.reset();
  ends.reset();
  db.recording = true;
  const r = await kiosksRun(kiosks, label, perKiosk);
  db.recording = false;
  const measured = meter();
  if (profiler) {
    const { profile } = await profiler.post("Profiler.stop");
    await writeFile(cfg.cpuProfile!, JSON.stringify(profile));
    profiler.disconnect();
    progress(`CPU profile of the API phase (this process: the cloud) written to ${cfg.cpuProfile}`);
  }
  const phase: Phase = {
    label,
    count: total,
    approved: r.approved,
    ms: r.elapsedMs,
    latencies: r.latencies,
    failures: r.failures,
    statements: db.statements,
    transactions: db.transactions,
    transactionMs: db.transactionMs,
    openMs: ends.openMs,
    commitMs: ends.commitMs,
    ...measured,
  };
  db.reset();
  return phase;
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

/** Per payment, ms: the transaction's ends, each statement in the order it runs, and what lies outside. */
function breakdown(raw: Phase, api: Phase): string {
  const order = (label: string) => {
    const i = STATEMENTS.findIndex(([prefix]) => label.startsWith(prefix));
    return i < 0 ? STATEMENTS.length : i;
  };
  const labels = [...new Set([...raw.statements, ...api.statements].map((s) => s.label))].sort(
    (a, b) => order(a) - order(b),
  );
  const per = (ms: number, p: Phase) => ms / Math.max(1, p.transactions);
  const cell = (label: string, p: Phase) => {
    const s = p.statements.find((x) => x.label === label);
    if (!s) return "-";
    return `${fmtMs(per(s.ms, p))}${s.count === p.transactions ? "" : ` (x${(s.count / p.transactions).toFixed(2)})`}`;
  };
  const both = (label: string, f: (p: Phase) => number) => [label, fmtMs(f(raw)), fmtMs(f(api))];
  const stmtSum = (p: Phase) => p.statements.reduce((a, s) => a + s.ms, 0);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const rows = [
    both("pool checkout + BEGIN", (p) => per(p.openMs, p)),
    ...labels.map((label) => [statementName(label), cell(label, raw), cell(label, api)]),
    both("COMMIT + release", (p) => per(p.commitMs, p)),
    both("between statements (JS)", (p) => per(p.transactionMs - stmtSum(p) - p.openMs - p.commitMs, p)),
    both("= whole transaction", (p) => per(p.transactionMs, p)),
    both(
      "outside it (API: HTTP, auth, JSON, zod, event-loop queueing)",
      (p) => mean(p.latencies) - per(p.transactionMs, p),
    ),
    both("= mean latency", (p) => mean(p.latencies)),
  ];
  return table(["per payment, mean, timed in the client", raw.label, api.label], rows);
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
  raws: Phase[];
  api: Phase;
  replay: ReplayResult | undefined;
  ledgerBefore: number;
  ledgerAfter: number;
  problems: string[];
  loadAtStart: number;
}

function report(r: Report): string {
  const raw = r.raws.reduce((a, b) => (rate(b.count, b.ms) > rate(a.count, a.ms) ? b : a));
  const rawRate = rate(raw.count, raw.ms);
  const apiRate = rate(r.api.count, r.api.ms);
  const p = (x: Phase, q: number) => percentile(x.latencies, q);
  const row = (label: string, count: number, ms: number, latencies: number[]) => [
    label,
    fmtInt(count),
    `${(ms / 1000).toFixed(2)} s`,
    fmtInt(rate(count, ms)),
    fmtMs(percentile(latencies, 50)),
    fmtMs(percentile(latencies, 99)),
    fmtMs(latencies.at(-1) ?? Number.NaN),
  ];
  const out: string[] = ["", r.header, ""];
  const rows = [
    ...r.raws.map((x) =>
      row(
        `${x.label}: authorizePayment, ${cfg.kiosks} workers, pool ${cfg.rawPool}${x === raw ? " *" : ""}`,
        x.count,
        x.ms,
        x.latencies,
      ),
    ),
    row(
      `API: ${cfg.kiosks} kiosks -> HTTP keep-alive -> cloud (pool ${cfg.cloudPool})`,
      r.api.count,
      r.api.ms,
      r.api.latencies,
    ),
  ];
  if (r.replay)
    rows.push(
      row(
        "API retries: same key and body, replayed",
        r.replay.latencies.length,
        r.replay.elapsedMs,
        r.replay.latencies,
      ),
    );
  out.push(table(["path", "payments", "time", "payments/s", "p50", "p99", "max"], rows));
  out.push("");
  out.push(
    `ratio API/raw = ${(apiRate / rawRate).toFixed(2)} payments/s (no target set; raw = the faster round, *); ` +
      `latency API/raw p50 ${(p(r.api, 50) / p(raw, 50)).toFixed(2)}x, p99 ${(p(r.api, 99) / p(raw, 99)).toFixed(2)}x`,
  );
  out.push("");
  out.push(breakdown(raw, r.api));
  out.push("");
  out.push("CPU per payment:");
  for (const x of r.raws) out.push(`  ${x.label}: ${cpuLine(x, "raw workers")}`);
  out.push(`  API: ${cpuLine(r.api, "cloud")}`);
  // Everything shares the machine: other work running meanwhile skews the ratio either way.
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
  rawDb?: Timed;
  cloudDb?: Timed;
}

async function main(): Promise<number> {
  const loadAtStart = loadavg()[0]!;
  const dir = await mkdtemp(join(tmpdir(), "paylane-payments-"));
  const registryPath = join(dir, "registry.json");
  const running: Running = {};
  try {
    const file = await saveBenchRegistry(registryPath, site, secrets, cloudSecret);

    // The cloud's pool, as it opens its own (openPg's default size) but timed; and the raw workers' pool.
    const cloudDb = await openTimed(cfg.cloudPool);
    running.cloudDb = cloudDb;
    const db = cloudDb.db;
    await migrate(db);
    progress(`seeding ${fmtInt(cfg.members)} members with opening balances`);
    await seedSite(db, { id: site, name: "Bench venue", timezone: "UTC", currency: CURRENCY }, members, [
      { ...ITEM, name: "Coffee" },
    ]);
    await db.exec("ANALYZE");
    const rawDb = await openTimed(cfg.rawPool);
    running.rawDb = rawDb;
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

    // 1. Raw, 2. the API, then raw again: a busy neighbour during one round shows.
    const raws = [await runRaw(rawDb, 1)];
    const api = await runApi(kiosks, cloudDb, { cloud: process.pid, kiosks: kiosks.pid, gateway: gateway.pid });
    raws.push(await runRaw(rawDb, 2));
    const warmups = 2 * warmPerKiosk * cfg.kiosks;
    // The warm-ups stop the bench on any failure: all of theirs are approved.
    const approved = warmups + api.approved + raws.reduce((a, x) => a + x.approved, 0);
    const problems = [...raws, api].flatMap((x) =>
      x.approved === x.count ? [] : [`${x.label}: ${x.count - x.approved} payments not approved: ${x.failures[0]}`],
    );

    // 3. Retries of the API's payments change nothing.
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

    // 4. The ledger.
    progress("verifying the ledger");
    problems.push(...(await verify(db, approved)));

    process.stdout.write(
      `${report({ header, raws, api, replay, ledgerBefore, ledgerAfter, problems, loadAtStart })}\n`,
    );
    return problems.length === 0 ? 0 : 1;
  } finally {
    await running.kiosks?.stop({ type: "stop" }).catch(() => {});
    await running.cloud?.stop().catch(() => {});
    await running.gateway?.stop({ type: "stop" }).catch(() => {});
    await running.rawDb?.db.close().catch(() => {});
    const db = running.cloudDb?.db;
    await dropBenchState(db, schema, dir);
  }
}

runBench(main);
