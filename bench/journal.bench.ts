/**
 * Journal append benchmark: entries/s through the kiosk's own
 * `Journal.append`, against raw `sqlite3` (the package the journal uses)
 * inserting the same rows with the same settings, in the same run.
 * Target: journal >= 0.8 x raw.
 *
 *   npm run bench:journal        (also part of npm run bench)
 *
 * Both sides: a new database file in a temp folder, `journal_mode=WAL`,
 * `synchronous=FULL`, `foreign_keys=ON` (the journal's own pragmas, read back
 * the way it checks them), one entry per transaction (autocommit), one append
 * in flight at a time as the kiosk's desks make them, the same row built the
 * same way (random UUID, the offline check-in body the drain bench journals,
 * ISO time, member and local day).
 *
 * - journal: `Journal.open` + `append("checkin", …)`: the seq read from
 *   `meta` and advanced by a trigger in the same statement, the member/day
 *   and kind indexes, the promise layer (device/src/sqlite.ts), RETURNING seq.
 * - raw (the baseline): one prepared `INSERT … VALUES` into a table of the
 *   same columns and keys (seq INTEGER PRIMARY KEY, id UNIQUE), seq = rowid.
 * - raw, journal's SQL (diagnostic): the journal's exact INSERT statement,
 *   prepared, on a file whose schema `Journal.open` made, called through
 *   bare sqlite3 callbacks: journal minus this row is the JS layer's cost,
 *   this row minus raw is the schema's (trigger, indexes).
 *
 * The three sides each have their own fresh file, all open at once, and take
 * turns in blocks of BENCH_JOURNAL_BLOCK appends (the order rotating each
 * block), so a machine that gets busier or quieter during the run (it is
 * shared) weighs on all three alike. A side's rate is its appends over the
 * sum of its blocks' times; the spread of the per-block ratios is printed
 * too. Bodies are built before timing (zod's parse is no part of either
 * side); the UUID, JSON and ISO time are built by both, as Journal.append does.
 *
 * Beside the rates: each append's latency and this process's CPU per append
 * (the main thread plus sqlite3's worker thread). With synchronous=FULL an
 * append waits for an fsync, whose cost depends on the storage: the file
 * system line says where the files were (a tmpfs makes fsync free; point
 * BENCH_DIR at the storage to test).
 *
 * Environment: BENCH_JOURNAL_ENTRIES (3000 per side), BENCH_JOURNAL_BLOCK
 * (100), BENCH_JOURNAL_WARMUP (50 appends per file, not counted),
 * BENCH_JOURNAL_IN_FLIGHT (1), BENCH_DIR (the OS temp folder).
 */
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { type CheckinBody, CheckinBodySchema } from "@paylane/protocol";
import sqlite3 from "sqlite3";
// journal.ts alone, not the package's index: the bench measures the journal, and loads nothing else of the daemon.
import { Journal } from "../device/src/journal.ts";
import { intEnv } from "../test/support/env.ts";
import { describeFileSystem } from "./lib/fs-info.ts";
import { fmtInt, fmtMs, percentile, progress, rate, runBench, table } from "./lib/stats.ts";

const TARGET_RATIO = 0.8;

const cfg = {
  entries: intEnv("BENCH_JOURNAL_ENTRIES", 3000),
  block: intEnv("BENCH_JOURNAL_BLOCK", 100),
  warmup: intEnv("BENCH_JOURNAL_WARMUP", 50, 0),
  inFlight: intEnv("BENCH_JOURNAL_IN_FLIGHT", 1),
  dir: process.env.BENCH_DIR || tmpdir(),
};

/** The journal's pragmas (Journal.open), and what it reads back to accept the file. */
const PRAGMAS = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;";

/** Journal.append's statement, copied for the diagnostic side: keep in step with device/src/journal.ts. */
const JOURNAL_INSERT = `INSERT INTO journal (seq, id, kind, at, body, member_id, local_day)
       SELECT last_seq + 1, ?, ?, ?, ?, ?, ? FROM meta WHERE one = 1
       RETURNING seq`;

/** The same columns and keys as the journal's table, nothing else. */
const RAW_SCHEMA = `CREATE TABLE journal (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL,
  at TEXT NOT NULL,
  body TEXT NOT NULL,
  member_id TEXT,
  local_day TEXT
)`;
const RAW_INSERT = "INSERT INTO journal (id, kind, at, body, member_id, local_day) VALUES (?, ?, ?, ?, ?, ?)";

/** Check-in number `n` as the desk journals it offline (the drain bench's backlog rows: distinct members). */
function offlineCheckin(n: number): CheckinBody {
  return CheckinBodySchema.parse({
    memberId: `m-${n}`,
    credential: { type: "card", uid: "04A2B3C4" },
    replicaVersion: 1,
    offline: true,
  });
}

/** Appends entry `n` (durable when it resolves). */
type Append = (n: number) => Promise<void>;

interface Side {
  name: string;
  open(path: string): Promise<{ append: Append; close(): Promise<void> }>;
}

const TOTAL = cfg.warmup + cfg.entries;
/** Bodies by entry number, made before any timing. */
const bodies: CheckinBody[] = Array.from({ length: TOTAL + 1 }, (_, n) => offlineCheckin(n));

/** Entry `n`'s row as Journal.append stores it: [id, kind, at, body, member_id, local_day]. */
function row(n: number): unknown[] {
  const at = new Date().toISOString();
  return [randomUUID(), "checkin", at, JSON.stringify(bodies[n]), `m-${n}`, at.slice(0, 10)];
}

function promised<T>(work: (done: (err: Error | null, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => work((err, value) => (err ? reject(err) : resolve(value as T))));
}

async function openRaw(path: string): Promise<sqlite3.Database> {
  const db = await promised<sqlite3.Database>((done) => {
    const d: sqlite3.Database = new sqlite3.Database(path, (err) => done(err, d));
  });
  await promised<void>((done) => db.exec(PRAGMAS, done));
  const mode = await promised<{ journal_mode: string }>((done) => db.get("PRAGMA journal_mode", done));
  const sync = await promised<{ synchronous: number }>((done) => db.get("PRAGMA synchronous", done));
  if (mode.journal_mode !== "wal" || sync.synchronous !== 2) {
    throw new Error(`${path}: journal_mode ${mode.journal_mode}, synchronous ${sync.synchronous}; expected wal, 2`);
  }
  return db;
}

function closeRaw(db: sqlite3.Database, stmt: sqlite3.Statement): Promise<void> {
  return promised<void>((done) => stmt.finalize(() => db.close(done)));
}

const JOURNAL: Side = {
  name: "Journal.append",
  async open(path) {
    const journal = await Journal.open(path);
    return {
      append: async (n) => {
        const at = new Date();
        await journal.append("checkin", bodies[n]!, at, { memberId: `m-${n}`, day: at.toISOString().slice(0, 10) });
      },
      close: () => journal.close(),
    };
  },
};

const RAW: Side = {
  name: "raw sqlite3 (baseline)",
  async open(path) {
    const db = await openRaw(path);
    await promised<void>((done) => db.exec(RAW_SCHEMA, done));
    const stmt = db.prepare(RAW_INSERT);
    return {
      append: (n) => promised<void>((done) => stmt.run(row(n), (err) => done(err))),
      close: () => closeRaw(db, stmt),
    };
  },
};

const RAW_JOURNAL_SQL: Side = {
  name: "raw sqlite3, journal's SQL",
  async open(path) {
    // Journal.open makes the schema (tables, triggers, indexes) and checks the file, then lets go of it.
    await (await Journal.open(path)).close();
    const db = await openRaw(path);
    const stmt = db.prepare(JOURNAL_INSERT);
    return {
      // all(), as Sqlite.get does: the statement runs to completion, so the commit has happened.
      append: (n) => promised<void>((done) => stmt.all(row(n), (err) => done(err))),
      close: () => closeRaw(db, stmt),
    };
  },
};

const SIDES = [RAW, JOURNAL, RAW_JOURNAL_SQL];

interface Tally {
  appended: number;
  /** Time spent in this side's blocks, ms. */
  ms: number;
  /** This process's CPU (user + system) in this side's blocks, µs. */
  cpuUs: number;
  /** Each append's latency, ms. */
  latencies: number[];
  /** Each block's time, ms, by block number. */
  blockMs: number[];
}

/** Appends entries `from`..`to` (inclusive), `cfg.inFlight` at a time. */
async function runBlock(append: Append, from: number, to: number, tally: Tally): Promise<void> {
  let next = from - 1;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const worker = async () => {
    while (next < to) {
      const n = ++next;
      const t = performance.now();
      await append(n);
      tally.latencies.push(performance.now() - t);
    }
  };
  await Promise.all(Array.from({ length: cfg.inFlight }, worker));
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  tally.appended += to - from + 1;
  tally.ms += ms;
  tally.cpuUs += cpu.user + cpu.system;
  tally.blockMs.push(ms);
}

function report(tallies: Map<Side, Tally>): string {
  const t = (s: Side) => tallies.get(s)!;
  const rateOf = (s: Side) => rate(t(s).appended, t(s).ms);
  const base = rateOf(RAW);
  const ratio = rateOf(JOURNAL) / base;
  // Per block, raw's time over the side's: how steady the ratio was while the machine's load moved.
  const blockRatios = (s: Side) =>
    t(s)
      .blockMs.map((ms, b) => t(RAW).blockMs[b]! / ms)
      .sort((a, b) => a - b);
  const rows = SIDES.map((s) => {
    const lat = [...t(s).latencies].sort((a, b) => a - b);
    const br = blockRatios(s);
    return [
      s.name,
      `${fmtInt(rateOf(s))}/s`,
      fmtMs(percentile(lat, 50)),
      fmtMs(percentile(lat, 99)),
      `${fmtInt(t(s).cpuUs / t(s).appended)} µs`,
      s === RAW ? "-" : `${ratio === 0 ? "-" : (rateOf(s) / base).toFixed(2)}x`,
      s === RAW
        ? "-"
        : `${percentile(br, 25).toFixed(2)} / ${percentile(br, 50).toFixed(2)} / ${percentile(br, 75).toFixed(2)}`,
    ];
  });
  const blocks = Math.ceil(cfg.entries / cfg.block);
  return [
    "",
    `PayLane journal append benchmark: ${fmtInt(cfg.entries)} appends per side after ${cfg.warmup} warm-up, ` +
      `in ${blocks} blocks of ${cfg.block} taking turns, ${cfg.inFlight} in flight; ` +
      "WAL, synchronous=FULL, one entry per transaction",
    `files in ${cfg.dir}: ${describeFileSystem(cfg.dir)}; SQLite ${sqlite3.VERSION}; ${cpus().length} cores, ` +
      `load average ${loadavg()[0]!.toFixed(2)}`,
    "",
    table(["side", "appends/s", "p50", "p99", "CPU/append", "ratio to raw", "per-block ratio p25 / p50 / p75"], rows),
    "",
    `Journal.append / raw sqlite3: ${ratio.toFixed(2)}x (target >= ${TARGET_RATIO}x: ${ratio >= TARGET_RATIO ? "met" : "NOT met"})`,
    "raw, journal's SQL = the journal's INSERT (meta read, seq trigger, its indexes) through bare sqlite3 callbacks:" +
      " Journal.append minus it is the JS layer, it minus raw is the schema",
  ].join("\n");
}

async function main(): Promise<number> {
  const dir = await mkdtemp(join(cfg.dir, "paylane-journal-bench-"));
  const open: { append: Append; close(): Promise<void> }[] = [];
  try {
    const sides = new Map<Side, Append>();
    for (const side of SIDES) {
      const db = await side.open(join(dir, `${SIDES.indexOf(side)}.db`));
      open.push(db);
      sides.set(side, db.append);
      for (let n = 1; n <= cfg.warmup; n++) await db.append(n);
    }
    const tallies = new Map<Side, Tally>(
      SIDES.map((s) => [s, { appended: 0, ms: 0, cpuUs: 0, latencies: [], blockMs: [] }]),
    );
    let reported = performance.now();
    for (let b = 0, from = cfg.warmup + 1; from <= TOTAL; b++, from += cfg.block) {
      const to = Math.min(TOTAL, from + cfg.block - 1);
      // Rotate the order, so no side always runs right after the same other one.
      for (let i = 0; i < SIDES.length; i++) {
        const side = SIDES[(i + b) % SIDES.length]!;
        await runBlock(sides.get(side)!, from, to, tallies.get(side)!);
      }
      if (performance.now() - reported >= 1000 || to === TOTAL) {
        reported = performance.now();
        progress(
          `${fmtInt(to - cfg.warmup)}/${fmtInt(cfg.entries)} per side: ` +
            SIDES.map((s) => `${s.name} ${fmtInt(rate(tallies.get(s)!.appended, tallies.get(s)!.ms))}/s`).join(", "),
        );
      }
    }
    process.stdout.write(`${report(tallies)}\n`);
    return 0;
  } finally {
    for (const db of open) await db.close().catch(() => {});
    await rm(dir, { recursive: true, force: true });
  }
}

runBench(main);
