/**
 * CLOUD_SITES of deployments sharing one database schema (cloud/src/bridge/leader.ts,
 * docs/partitioning.md): each deployment has a leader lock of its own, so two
 * that own a site in common would both lead it (its alerts notified twice).
 * An instance does not take its lock while such a deployment runs (one error
 * line naming both CLOUD_SITES, paylane_cloud_overlapping_sites): the one
 * running first leads. It starts all the same, so a rolling update that
 * changes CLOUD_SITES goes through: its new pods lead once the old are gone.
 * N instances of one deployment follow as always; disjoint deployments both
 * lead; a deployment whose instances are all gone blocks nothing; two that
 * took their locks at the same moment find each other while running, and
 * one gives its lead up.
 *
 * Real Postgres; the leaders' tries and pings run on a fake clock.
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { pino } from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { FakeTimers, untilDriven } from "../../test/support/fake-timers.ts";
import { Signal } from "../../test/support/signal.ts";
import { Leader } from "../src/bridge/leader.ts";
import type { Database } from "../src/db/database.ts";
import { migrate } from "../src/db/migrate.ts";
import { openPg } from "../src/db/pg.ts";

const PG_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const schema = `t_${randomBytes(6).toString("hex")}`;
const FIX =
  "the one whose leader holds its lock leads them, the other none of its sites meanwhile; give every site to exactly " +
  "one deployment (a rolling update that changes CLOUD_SITES passes through this until its old pods are gone)";

interface Logged {
  level: number;
  msg: string;
  instance?: string;
}

const ctx = {
  db: undefined as unknown as Database,
  timers: new FakeTimers(),
  signal: new Signal(),
  logged: [] as Logged[],
  running: new Set<Leader>(),
};

const log = pino({ level: "info" }, { write: (line: string) => void ctx.logged.push(JSON.parse(line)) });

const Sites = suite("overlapping CLOUD_SITES on one schema");

Sites.before(async () => {
  ctx.db = await openPg({ url: PG_URL, schema });
  await migrate(ctx.db);
});

Sites.after(async () => {
  for (const l of ctx.running) await l.stop().catch(() => {});
  await ctx.db?.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
  await ctx.db?.close().catch(() => {});
});

/** An instance of the deployment owning `sites` (undefined: CLOUD_SITES unset), started. */
async function instance(name: string, sites: string[] | undefined, metrics?: MetricsRegistry): Promise<Leader> {
  const leader = new Leader({
    db: ctx.db,
    logger: log.child({ instance: name }),
    instance: name,
    timers: ctx.timers,
    everyMs: 1000,
    sites,
    metrics,
  });
  await leader.start();
  ctx.running.add(leader);
  return leader;
}

async function stop(...leaders: Leader[]): Promise<void> {
  for (const l of leaders) {
    await l.stop();
    ctx.running.delete(l);
  }
}

/** The error lines `name` logged. */
const errorsOf = (name: string) => ctx.logged.filter((l) => l.level === 50 && l.instance === name).map((l) => l.msg);

const overlaps = async (m: MetricsRegistry) =>
  (await m.getSingleMetric("paylane_cloud_overlapping_sites")?.get())?.values[0]?.value;

/**
 * Waits for `check`, re-checked every 20 ms of real time (replies come in between), the fake clock
 * advanced a quarter second each time (or not at all).
 */
function until(check: () => boolean | Promise<boolean>, what: string, advance = true): Promise<void> {
  return untilDriven(ctx.timers, ctx.signal, check, what, { stepMs: advance ? 250 : 0 });
}

Sites(
  "b,c does not lead while a,b runs: one line naming both; a second instance of a,b follows as always",
  async () => {
    const metrics = new MetricsRegistry();
    const ab = await instance("ab-1", ["a", "b"]);
    assert.ok(ab.leading);
    const bc = await instance("bc-1", ["b", "c"], metrics);
    const all = await instance("all-1", undefined);
    assert.equal([ab.leading, bc.leading, all.leading], [true, false, false], "a,b, running first, alone leads");
    assert.equal(errorsOf("bc-1"), [
      `CLOUD_SITES=b,c overlaps CLOUD_SITES=a,b of another deployment running on schema ${schema} (site b): ${FIX}`,
    ]);
    assert.equal(errorsOf("all-1"), [
      `CLOUD_SITES unset (every site) overlaps CLOUD_SITES=a,b of another deployment running on schema ${schema} (sites a, b): ${FIX}`,
    ]);
    assert.is(await overlaps(metrics), 1);
    const scrape = await metrics.metrics();
    assert.match(scrape, /^paylane_cloud_overlapping_sites 1$/m);
    const lint = spawnSync("promtool", ["check", "metrics"], { input: scrape, encoding: "utf8" });
    assert.is(lint.status, 0, `${lint.stdout}${lint.stderr}`);
    // Its later tries (every second) find the same: still not leading, and the line is not repeated.
    const t0 = ctx.timers.now().getTime();
    await until(() => ctx.timers.now().getTime() >= t0 + 3000, "three more tries");
    assert.is(errorsOf("bc-1").length, 1);
    assert.not.ok(bc.leading);
    // The same deployment, its sites listed in another order: the same scope, one leader.
    const ab2 = await instance("ab-2", ["b", "a"]);
    assert.equal([ab.leading, ab2.leading], [true, false]);
    assert.equal(errorsOf("ab-2"), [], "no overlap with its own deployment");
    await stop(ab, ab2, bc, all);
  },
);

Sites("a rolling update from a,b to a,b,c: the new pods follow until the old ones are gone, then lead", async () => {
  const old = await instance("old-1", ["a", "b"]);
  const updated = await instance("new-1", ["a", "b", "c"]);
  assert.equal([old.leading, updated.leading], [true, false], "no second leader of a and b meanwhile");
  await stop(old);
  await until(() => updated.leading, "the new pod leading once the old one is gone");
  await until(
    async () =>
      errorsOf("new-1").length === 1 &&
      ctx.logged.some(
        (l) => l.instance === "new-1" && l.msg === "no other running deployment leads this deployment's sites any more",
      ),
    "the new pod saying the overlap ended",
  );
  await stop(updated);
});

Sites("a deployment whose instances are all gone blocks nothing: a and c, disjoint, both start and lead", async () => {
  // every scope seen so far is recorded on the schema; none runs
  const { rows } = await ctx.db.query<{ scope: string }>("SELECT scope FROM leader_scopes ORDER BY scope");
  assert.equal(
    rows.map((r) => r.scope),
    ["*", "a,b", "a,b,c", "b,c"],
  );
  const a = await instance("a-1", ["a"]);
  const c = await instance("c-1", ["c"]);
  assert.equal([a.leading, c.leading], [true, true], "each its own leader");
  await stop(a, c);
});

Sites("a,b and b,c that took their locks at the same moment find each other: b,c gives its lead up", async () => {
  const metrics = new MetricsRegistry();
  const ab = await instance("ab-1", ["a", "b"]);
  // The race, made to happen: b,c's check cannot see a,b (its row not there yet), so both lead.
  await ctx.db.query("DELETE FROM leader_scopes WHERE scope = 'a,b'");
  const bc = await instance("bc-2", ["b", "c"], metrics);
  assert.equal([ab.leading, bc.leading], [true, true], "site b led twice");
  await ctx.db.query("INSERT INTO leader_scopes (scope) VALUES ('a,b')");
  // At its next ping b,c sees a,b running; "a,b" sorts first, so b,c lets go, and then waits.
  await until(() => !bc.leading, "b,c no longer leading");
  assert.ok(ab.leading, "a,b keeps leading");
  assert.equal(errorsOf("bc-2"), [
    `CLOUD_SITES=b,c overlaps CLOUD_SITES=a,b of another deployment running on schema ${schema} (site b): ${FIX}`,
  ]);
  assert.is(await overlaps(metrics), 1);
  await stop(ab);
  await until(() => bc.leading, "b,c leading once a,b is gone");
  await stop(bc);
});

Sites("another instance checking a stale scope at the same moment does not make a healthy leader let go", async () => {
  // a,b was this deployment's list before a rolling update: its row stays, its lock is free.
  const updated = await instance("abc-1", ["a", "b", "c"]);
  assert.ok(updated.leading);
  // A follower's check of a,b, caught mid-statement: it holds that scope's lock for its transaction.
  let done!: () => void;
  const released = new Promise<void>((resolve) => {
    done = resolve;
  });
  let held!: () => void;
  const holding = new Promise<void>((resolve) => {
    held = resolve;
  });
  const checker = ctx.db.session(async (conn) => {
    await conn.query("BEGIN");
    await conn.query("SELECT pg_advisory_xact_lock_shared(hashtext('paylane-leader:' || current_schema() || ':a,b'))");
    held();
    await released;
    await conn.query("COMMIT");
  });
  await holding;
  try {
    const t0 = ctx.timers.now().getTime();
    await until(() => ctx.timers.now().getTime() >= t0 + 12_000, "two lease pings and their checks");
    assert.ok(updated.leading, "still leading: a,b is not running");
    assert.equal(errorsOf("abc-1"), []);
  } finally {
    done();
    await checker;
  }
  await stop(updated);
});

Sites.run();
