/**
 * Issue 4: "kill -9 the device daemon at random points during 10,000
 * appends, 50 cycles: every entry the UI was told is done is, in the end, in
 * Postgres exactly once; integrity_check passes every cycle."
 *
 * The victim is the real kiosk daemon (test/support/crash-daemon-child.ts),
 * offline, checking members in through its own local API (`POST /api/code`,
 * the touch UI's path): it prints `done <seq> <id>` when the daemon answers
 * "Welcome", which is what the user sees. Each cycle SIGKILLs it at a random
 * point (during start, journal open and WAL recovery, or after a random
 * number of answers, with 1-4 check-ins in flight), then reopens the journal
 * and checks integrity, gap-free seqs and every answer given. Then a real
 * KioskDaemon, online, opens that same journal and drains it through aedes
 * into the cloud on Postgres.
 *
 * SIGKILL ends the process, not the machine: the page cache survives, so
 * this proves atomicity and recovery (seq from the INSERT, WAL replay), not
 * that fsync happened. A power cut needs a different rig.
 *
 *   CRASH_APPENDS (10000)  answered appends to reach, at least
 *   CRASH_CYCLES  (50)     kill cycles, at least
 *   CRASH_SEED    (random) replays the same kill plan (timing still varies)
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomInt } from "node:crypto";
import { mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { Journal, Replica } from "@paylane/device";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { crashMembers } from "../support/crash-members.ts";
import { intEnv } from "../support/env.ts";
import { loud } from "../support/hooks.ts";
import { TestSite } from "../support/site.ts";

const APPENDS = intEnv("CRASH_APPENDS", 10_000);
const CYCLES = intEnv("CRASH_CYCLES", 50);
const SEED = intEnv("CRASH_SEED", randomInt(1, 2 ** 31));
const repo = join(import.meta.dirname, "../..");
const CHILD = join(repo, "test/support/crash-daemon-child.ts");
const CYCLE_TIMEOUT_MS = 30_000; // only ever fails the test
const DRAIN_TIMEOUT_MS = 60_000; // only ever fails the test

let site: TestSite;
let journalPath = "";
const children = new Set<ChildProcess>();
/** seq -> entry id of every `done` the appender printed: what users were told. */
const told = new Map<number, string>();
/** seq -> entry id of every row in the journal, verified after each kill: gap-free from 1. */
const journaled = new Map<number, string>();
const phase1 = { cycles: 0, journaled: 0, ms: 0 };

test.before(
  loud("crash site setup", async () => {
    // k1 is enrolled but has no daemon yet: the kill cycles own its journal first.
    site = new TestSite({ db: "pg", presence: "memory", broker: "aedes", kiosks: [], probes: ["k1"] });
    await site.start();
    await mkdir(join(site.dir, "k1"), { recursive: true });
    journalPath = join(site.dir, "k1", "journal.db");
    // The offline daemon decides from this replica: members the victim checks in by booking code.
    const replica = await Replica.open(join(site.dir, "k1", "replica.db"));
    await replica.replace(
      { site: site.site, version: 1, timezone: "UTC", siteName: "Crash", members: crashMembers() },
      new Date(),
    );
    await replica.close();
  }),
);
test.after(async () => {
  for (const c of children) c.kill("SIGKILL");
  children.clear();
  await site?.stop();
});

test(`kill -9 at random points during ${APPENDS} appends, ${CYCLES} cycles: integrity ok, every done entry journaled`, async () => {
  const rand = mulberry32(SEED);
  const started = performance.now();
  const ids = new Set<string>();
  let killedDuringOpen = 0;
  for (let cycle = 1; cycle <= CYCLES || told.size < APPENDS; cycle++) {
    const cyclesLeft = Math.max(1, CYCLES - cycle + 1);
    const remaining = Math.max(0, APPENDS - told.size);
    const plan = killPlan(rand, remaining, cyclesLeft);
    if (plan.at === "opening") killedDuringOpen++;
    const inflight = [1, 2, 4][Math.floor(rand() * 3)]!;
    const done = await runChild(`c${cycle}`, inflight, plan);

    // The parent is the next process to open the file: WAL recovery and integrity_check happen here.
    const journal = await Journal.open(journalPath);
    try {
      const check = await journal.db.all<{ integrity_check: string }>("PRAGMA integrity_check");
      assert.equal(
        check.map((r) => r.integrity_check),
        ["ok"],
        `cycle ${cycle}: integrity_check (seed ${SEED})`,
      );
      const { lastSeq } = await journal.stats();
      const before = journaled.size;
      assert.ok(lastSeq >= before, `cycle ${cycle}: last seq went back from ${before} to ${lastSeq}`);
      const fresh = await journal.db.all<{ seq: number; id: string }>(
        "SELECT seq, id FROM journal WHERE seq > ? ORDER BY seq",
        [before],
      );
      fresh.forEach((r, i) => {
        assert.is(r.seq, before + 1 + i, `cycle ${cycle}: seq gap after ${before + i}`);
        journaled.set(r.seq, r.id);
      });
      assert.is(journaled.size, lastSeq, `cycle ${cycle}: rows 1..${journaled.size} but meta says ${lastSeq}`);
      const whole = await journal.db.get<{ n: number; lo: number | null; hi: number | null }>(
        "SELECT count(*) AS n, min(seq) AS lo, max(seq) AS hi FROM journal",
      );
      assert.equal(whole, { n: lastSeq, lo: lastSeq > 0 ? 1 : null, hi: lastSeq > 0 ? lastSeq : null });
      const lost = done.filter(([seq, id]) => journaled.get(seq) !== id).map(([seq]) => seq);
      assert.equal(
        lost,
        [],
        `cycle ${cycle} (${inflight} in flight, seed ${SEED}): told done but not in the journal after the kill, ` +
          `which ends at seq ${lastSeq}`,
      );
      for (const [seq, id] of done) {
        assert.not.ok(ids.has(id), `cycle ${cycle}: entry ${id} was told done twice`);
        ids.add(id);
        told.set(seq, id);
      }
    } finally {
      await journal.close();
    }
    phase1.cycles = cycle;
  }
  // Nothing verified in an earlier cycle changed later.
  const journal = await Journal.open(journalPath);
  try {
    const all = await journal.db.all<{ seq: number; id: string }>("SELECT seq, id FROM journal ORDER BY seq");
    assert.is(all.length, journaled.size, "rows in the journal at the end");
    assert.equal(
      all.filter((r) => journaled.get(r.seq) !== r.id).map((r) => r.seq),
      [],
      "rows that changed after their cycle verified them",
    );
  } finally {
    await journal.close();
  }
  phase1.journaled = journaled.size;
  phase1.ms = performance.now() - started;
  console.log(
    `kill -9 (seed ${SEED}): ${phase1.cycles} cycles (${killedDuringOpen} planned during open), ` +
      `${fmt(told.size)} done appends, ${fmt(journaled.size)} journaled, integrity ok every cycle, ` +
      `${(phase1.ms / 1000).toFixed(1)} s`,
  );
});

test("a real daemon on that journal delivers every done entry to Postgres exactly once", async () => {
  assert.ok(phase1.journaled > 0, "needs the journal left by the kill -9 cycles, which did not finish");
  const started = performance.now();
  const daemon = await site.startKiosk("k1");
  await site.drained("k1", DRAIN_TIMEOUT_MS);
  const drainMs = performance.now() - started;
  const { lastSeq } = await daemon.journal.stats();
  assert.is(lastSeq, phase1.journaled, "the daemon sees the journal the kill cycles left");

  const where = [site.site];
  assert.is(
    await site.count("SELECT count(*) AS n FROM inbox WHERE site_id = $1 AND device_id = 'k1'", where),
    lastSeq,
  );
  const { rows } = await site.db.query<{ seq: string; entry_id: string; outcome: string }>(
    "SELECT seq, entry_id, outcome FROM inbox WHERE site_id = $1 AND device_id = 'k1' ORDER BY seq",
    where,
  );
  const bySeq = new Map(rows.map((r) => [Number(r.seq), r.entry_id]));
  const entryIds = rows.map((r) => r.entry_id);
  assert.is(new Set(entryIds).size, rows.length, "entry ids in the inbox are distinct");
  assert.equal(
    rows.filter((r) => r.outcome !== "applied").map((r) => r.seq),
    [],
    "every entry applied, none quarantined",
  );
  rows.forEach((r, i) => {
    assert.is(Number(r.seq), i + 1, `inbox seq gap after ${i}`);
  });
  assert.equal(
    [...journaled].filter(([seq, id]) => bySeq.get(seq) !== id).map(([seq]) => seq),
    [],
    "every journaled entry is the inbox row with its seq",
  );
  assert.equal(
    [...told].filter(([seq, id]) => bySeq.get(seq) !== id).map(([seq]) => seq),
    [],
    "every entry the UI was told is done is in Postgres, with its seq",
  );
  console.log(
    `kill -9: ${phase1.cycles} cycles, ${fmt(told.size)} done appends, ${fmt(phase1.journaled)} journaled, ` +
      `integrity ok every cycle; Postgres: ${fmt(rows.length)} rows, every done entry exactly once ` +
      `(daemon start + drain ${(drainMs / 1000).toFixed(1)} s)`,
  );
});

test.run();

/** Where a cycle kills the appender. */
type KillPlan = { at: "opening"; delayMs: number } | { at: "lines"; lines: number; delayMs: number };

/**
 * Random kill points whose expected total reaches `remaining` answers over
 * the cycles left. One cycle in ten dies during open (recovery of the last
 * kill's WAL and integrity_check); the last planned cycle takes whatever is
 * still missing, so both the cycle and the append counts are reached.
 */
function killPlan(rand: () => number, remaining: number, cyclesLeft: number): KillPlan {
  // Half the kills land on the answer itself, half a few ms later, inside the next append.
  const delayMs = rand() < 0.5 ? 0 : Math.floor(rand() * 4);
  if (cyclesLeft > 1 && rand() < 0.1) return { at: "opening", delayMs: Math.floor(rand() * 20) };
  const mean = remaining / cyclesLeft;
  const lines = cyclesLeft === 1 ? remaining + Math.floor(rand() * 20) : Math.floor(rand() * 2 * mean);
  return { at: "lines", lines, delayMs };
}

type Done = [seq: number, id: string];
let childDays = 0;

/**
 * Runs the appender until `plan` says to kill it, SIGKILLs it, and returns
 * every `done` line it got out. Lines still in the pipe when it died count:
 * each was written after its append resolved, so each was a promise made.
 */
function runChild(tag: string, inflight: number, plan: KillPlan): Promise<Done[]> {
  // Each cycle is a new day on the daemon's clock, so the same members check in again.
  const day = String(++childDays);
  const proc = spawn(process.execPath, ["--import", "tsx", CHILD, dirname(journalPath), tag, String(inflight), day], {
    cwd: repo,
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(proc);
  const done: Done[] = [];
  const odd: string[] = [];
  let killTimer: NodeJS.Timeout | undefined;
  let killed = false;
  const kill = () => {
    if (killed) return;
    killed = true;
    proc.kill("SIGKILL");
  };
  const killAfterDelay = () => {
    if (killed || killTimer) return;
    if (plan.delayMs === 0) kill();
    else killTimer = setTimeout(kill, plan.delayMs);
  };
  const onLine = (line: string) => {
    const [word, a, b] = line.split(" ");
    if (word === "done" && a && b) {
      done.push([Number(a), b]);
      if (plan.at === "lines" && done.length >= plan.lines) killAfterDelay();
    } else if (word === "opening") {
      if (plan.at === "opening") killAfterDelay();
    } else if (word === "ready") {
      if (plan.at === "lines" && plan.lines === 0) killAfterDelay();
    } else {
      odd.push(line);
    }
  };
  let pending = "";
  proc.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    pending += chunk;
    for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
      onLine(pending.slice(0, nl));
      pending = pending.slice(nl + 1);
    }
  });
  let stderr = "";
  proc.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  return new Promise((resolve, reject) => {
    const guard = setTimeout(() => {
      kill();
      reject(new Error(`appender ${tag} did not reach its kill point (${JSON.stringify(plan)}) in time:\n${stderr}`));
    }, CYCLE_TIMEOUT_MS);
    proc.on("close", (code, signal) => {
      clearTimeout(guard);
      clearTimeout(killTimer);
      children.delete(proc);
      if (!killed || signal !== "SIGKILL") {
        reject(new Error(`appender ${tag} ended by itself (code ${code}, signal ${signal}):\n${stderr}`));
      } else if (odd.length > 0) {
        reject(new Error(`appender ${tag} printed unexpected lines: ${JSON.stringify(odd.slice(0, 5))}`));
      } else {
        // A torn last line (`pending`) was never a complete answer; small pipe writes are atomic, so it stays empty.
        resolve(done);
      }
    });
  });
}

/** A small seeded PRNG, so CRASH_SEED replays the kill plan. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const fmt = (n: number) => n.toLocaleString("en-US");
