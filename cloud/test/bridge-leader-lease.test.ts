/**
 * The leader's lease (cloud/src/bridge/leader.ts, docs/scale-bridges.md): a
 * leader whose lock connection goes silent — a FaultProxy between it and
 * Postgres drops every byte, no FIN, no RST, as a cut cable does — gives the
 * lead up within the lease while Postgres still holds its lock, so it never
 * leads at the same time as the instance the server hands the lock to (about
 * 25 s later, by its keepalive). It does not lead again until it holds a lock
 * for real: not while its tries go nowhere, not while another instance holds
 * the lock, only once it takes the lock on a working connection.
 *
 * The leaders' tries and pings run on a fake clock, advanced a quarter of a
 * second at a time; Postgres and the proxy are real.
 */
import { randomBytes } from "node:crypto";
import { pino } from "pino";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { FakeTimers, untilDriven } from "../../test/support/fake-timers.ts";
import { FaultProxy } from "../../test/support/fault-proxy.ts";
import { Signal } from "../../test/support/signal.ts";
import { LEASE, Leader } from "../src/bridge/leader.ts";
import type { Database } from "../src/db/database.ts";
import { migrate } from "../src/db/migrate.ts";
import { openPg } from "../src/db/pg.ts";

const PG_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const quiet = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });
const schema = `t_${randomBytes(6).toString("hex")}`;
const STEP_MS = 250;

const ctx = {
  proxy: undefined as unknown as FaultProxy,
  /** Straight to Postgres: the other instance, and the test's own look at pg_locks. */
  direct: undefined as unknown as Database,
  /** Through the proxy: the instance whose network is cut. */
  cut: undefined as unknown as Database,
  a: undefined as unknown as Leader,
  b: undefined as unknown as Leader,
  timers: new FakeTimers(),
  signal: new Signal(),
  /** What instance a logged, one parsed line each. */
  logged: [] as { level: number; msg: string; err?: string }[],
};

const Lease = suite("the leader's lease on a silent connection");

Lease.before(async () => {
  ctx.proxy = new FaultProxy({ target: { host: "127.0.0.1", port: Number(new URL(PG_URL).port || 5432) } });
  await ctx.proxy.start();
  ctx.direct = await openPg({ url: PG_URL, schema });
  await migrate(ctx.direct);
  ctx.cut = await openPg({ url: ctx.proxy.url(PG_URL), schema });
  const aLog = pino({ level: "info" }, { write: (line: string) => void ctx.logged.push(JSON.parse(line)) });
  ctx.a = new Leader({ db: ctx.cut, logger: aLog, instance: "a", timers: ctx.timers, everyMs: 1000 });
  ctx.b = new Leader({ db: ctx.direct, logger: quiet, instance: "b", timers: ctx.timers, everyMs: 1000 });
  await ctx.a.start();
  await ctx.b.start();
});

Lease.after(async () => {
  ctx.proxy?.heal();
  ctx.proxy?.reset();
  for (const l of [ctx.a, ctx.b]) await l?.stop().catch(() => {});
  await ctx.direct?.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
  for (const db of [ctx.cut, ctx.direct]) await db?.close().catch(() => {});
  await ctx.proxy?.stop();
});

/** Advances the fake clock a step every 20 ms of real time (replies come in between) until `check` holds. */
function until(check: () => boolean, what: string): Promise<void> {
  return untilDriven(ctx.timers, ctx.signal, check, what, { stepMs: STEP_MS });
}

/** Advances the fake clock by `ms` the same way, asserting `invariant` after every step. */
async function during(ms: number, invariant: () => void): Promise<void> {
  for (let t = 0; t < ms; t += STEP_MS) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    ctx.timers.advance(STEP_MS);
    invariant();
  }
}

/** The backends holding the every-site leader lock of this schema (the test's own query answers first). */
async function lockHolders(): Promise<number[]> {
  const { rows } = await ctx.direct.query<{ pid: number }>(
    `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
       AND objid = hashtext('paylane-leader:' || $1::text || ':*')::oid`,
    [schema],
  );
  return rows.map((r) => r.pid);
}

Lease("a leader cut off in silence gives the lead up within the lease, before the server frees its lock", async () => {
  assert.ok(ctx.a.leading && !ctx.b.leading, "a leads (it started first), b follows");
  const [holder] = await lockHolders();
  assert.ok(holder, "a's backend holds the lock");
  // Some healthy pings first: the lease holds while the session answers.
  await during(3 * LEASE.pingEveryMs, () => assert.ok(ctx.a.leading, "a keeps leading while its pings answer"));

  ctx.proxy.blackhole();
  const cutAt = ctx.timers.now().getTime();
  await until(() => !ctx.a.leading, "a no longer leading");
  const gaveUpAfter = ctx.timers.now().getTime() - cutAt;
  assert.ok(
    gaveUpAfter <= LEASE.pingEveryMs + LEASE.answerMs,
    `gave up ${gaveUpAfter} ms after the cut: within one ping and its answer time`,
  );
  assert.ok(gaveUpAfter < LEASE.serverReleaseMs, "before the server's keepalive could free the lock");
  assert.equal(await lockHolders(), [holder], "Postgres still holds the lock for a's silent session");
  assert.not.ok(ctx.b.leading, "b cannot take it meanwhile: nobody leads, nobody notifies twice");

  const warned = ctx.logged.filter((l) => l.level === 40);
  assert.is(warned.length, 1, JSON.stringify(warned));
  assert.is(warned[0]!.msg, "this instance no longer leads the singleton duties");
  assert.match(warned[0]!.err ?? "", `a ping of the lock session had no answer within ${LEASE.answerMs} ms`);
});

Lease("it does not lead again until it can really hold a lock", async () => {
  // Its tries go into the same silence: none of them leads.
  await during(30_000, () => assert.ok(!ctx.a.leading && !ctx.b.leading, "nobody leads while the old lock is held"));
  assert.is((await lockHolders()).length, 1, "the lock is still the silent session's");

  // The server's keepalive gives up on the silent session (here: the backend ended): b takes the lock.
  await ctx.direct.query("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", [await lockHolders()]);
  await until(() => ctx.b.leading, "b leading once the server freed the lock");
  assert.not.ok(ctx.a.leading, "a, still cut off, does not");

  // The network back (what was open during the cut is dead, as its retransmits timed out): b still holds the lock.
  ctx.proxy.heal();
  ctx.proxy.reset();
  await during(5000, () => assert.ok(ctx.b.leading && !ctx.a.leading, "b leads, a follows"));

  // b goes: a takes the lock on a fresh connection, and leads again.
  await ctx.b.stop();
  await until(() => ctx.a.leading, "a leading again");
  assert.is((await lockHolders()).length, 1, "one holder");
  assert.is(ctx.logged.filter((l) => l.msg === "this instance leads the singleton duties").length, 2);
});

Lease.run();
