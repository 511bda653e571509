/**
 * The singleton duties' leader (cloud/src/bridge/leader.ts): of instances on
 * one schema exactly one leads; a clone in another schema of the same
 * database leads its own; when the leader's connection is cut (its backend
 * terminated, as a Postgres restart or a network cut does), it stops leading
 * at once — without an unhandled 'error' ending the process — and the other
 * takes the lock at its next try; a stopped leader hands over the same way.
 * The followers' retry and the leader's lease run on a fake clock (the lease
 * itself: bridge-leader-lease.test.ts). A deployment owning some sites beside
 * the running every-site one is refused (the rest of CLOUD_SITES overlaps:
 * bridge-leader-sites.test.ts). And the alerts of two instances
 * hearing the same telemetry: both keep the alert firing in their view, only
 * the leader records it and notifies.
 */
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import { alertKey } from "@paylane/protocol";
import { pino } from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { FakeTimers, untilDriven } from "../../test/support/fake-timers.ts";
import { Signal } from "../../test/support/signal.ts";
import { AlertService, alertSettings } from "../src/alerts/notifier.ts";
import type { FleetEvents } from "../src/bridge/bridge.ts";
import { Leader } from "../src/bridge/leader.ts";
import { parseCloudEnv } from "../src/config.ts";
import type { Database } from "../src/db/database.ts";
import { migrate } from "../src/db/migrate.ts";
import { openPg } from "../src/db/pg.ts";

const PG_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const quiet = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });
const schemas = [`t_${randomBytes(6).toString("hex")}`, `t_${randomBytes(6).toString("hex")}`];

const ctx = {
  dbs: [] as Database[],
  leaders: [] as Leader[],
  timers: new FakeTimers(),
  /** The leaders' own clock (tries and lease pings): the alerts' clock jumps an hour, which no lease survives. */
  leaderTimers: new FakeTimers(),
  signal: new Signal(),
};

const L = suite("one leader per schema");

L.before(async () => {
  // a, b on the first schema; c alone on the second
  for (const schema of [schemas[0]!, schemas[0]!, schemas[1]!]) {
    const db = await openPg({ url: PG_URL, schema });
    await migrate(db);
    ctx.dbs.push(db);
    const leader = new Leader({
      db,
      logger: quiet,
      instance: `i${ctx.leaders.length}`,
      timers: ctx.leaderTimers,
      everyMs: 1000,
    });
    await leader.start();
    ctx.leaders.push(leader);
  }
});

L.after(async () => {
  for (const l of ctx.leaders) await l.stop().catch(() => {});
  for (const s of schemas) await ctx.dbs[0]!.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`).catch(() => {});
  for (const db of ctx.dbs) await db.close().catch(() => {});
});

/** Waits for `check`, re-checked as the leaders' fake clock is advanced (or not at all). */
function until(check: () => boolean, what: string, advance = true): Promise<void> {
  // a quarter of a retry each time: a lease ping has 20 polls of real time to answer
  return untilDriven(ctx.leaderTimers, ctx.signal, check, what, { stepMs: advance ? 250 : 0, limitMs: 10_000 });
}

const leading = () => ctx.leaders.map((l) => l.leading);

L("exactly one of a schema's instances leads; another schema's leads its own", () => {
  assert.equal(leading(), [true, false, true]);
});

L("a deployment owning some sites (CLOUD_SITES) beside the running every-site one does not lead", async () => {
  const other = new Leader({
    db: ctx.dbs[0]!,
    logger: quiet,
    instance: "sites",
    timers: ctx.leaderTimers,
    sites: ["venue-x"],
  });
  await other.start();
  try {
    assert.not.ok(other.leading, "venue-x is led by the every-site deployment already");
    assert.equal(leading(), [true, false, true], "the every-site leader is untouched");
  } finally {
    await other.stop();
  }
  // Deployments with disjoint CLOUD_SITES each leading their own: bridge-leader-sites.test.ts.
});

L("the leader's connection cut: it stops leading at once, the other takes over", async () => {
  const [a, b] = ctx.leaders as [Leader, Leader];
  const { rows } = await ctx.dbs[1]!.query<{ n: number }>(
    `SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_locks
     WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()
       AND objid = hashtext('paylane-leader:' || $1::text || ':*')::oid`,
    [schemas[0]],
  );
  assert.is(rows[0]!.n, 1, "the one backend holding the lock of the first schema");
  // Lost at once: the client's error, no timer involved.
  await until(() => !a.leading, "a no longer leading", false);
  // Then whichever tries first takes the lock (the cut one may, too), and only one.
  await until(() => a.leading !== b.leading, "one of a and b leading again");
  assert.ok(ctx.leaders[2]!.leading, "the other schema's leader is untouched");
  ctx.leaderTimers.advance(1000);
  assert.is(leading().slice(0, 2).filter(Boolean).length, 1, "still exactly one");
});

L("a stopped leader hands over at the other's next try", async () => {
  const [a, b] = ctx.leaders as [Leader, Leader];
  const [holder, other] = a.leading ? [a, b] : [b, a];
  await holder.stop();
  await until(() => other.leading, "the other leading");
  assert.not.ok(holder.leading);
});

L("alerts: two instances hear the same report; both see it firing, the leader alone records and notifies", async () => {
  const [a, b] = ctx.leaders as [Leader, Leader];
  const [lead, follow] = a.leading ? [a, b] : [b, a];
  assert.ok(lead.leading && !follow.leading);
  const fleet = new EventEmitter<FleetEvents>();
  const published: string[][] = [[], []];
  const services = [lead, follow].map(
    (leader, i) =>
      new AlertService({
        db: ctx.dbs[i]!,
        settings: alertSettings(parseCloudEnv({ REGISTRY_PATH: "unused.json" })),
        publish: async (topic) => {
          published[i]!.push(topic);
        },
        logger: quiet,
        metrics: new MetricsRegistry(),
        now: ctx.timers.now,
        timers: ctx.timers,
        leads: leader.isLeader,
      }),
  );
  for (const s of services) {
    await s.start();
    s.attach(fleet);
  }
  const report = {
    at: ctx.timers.now().toISOString(),
    backlog: 0,
    ackedUpTo: 1,
    lastSeq: 1,
    replicaVersion: 1,
    reader: "ok",
    uptimeSeconds: 1,
    printer: { state: "ok", paper: "out" },
  } as const;
  fleet.emit("telemetry", { site: "s1", device: "k1" }, report);
  for (const s of services) await s.idle();
  const key = alertKey("paper-out", "s1", "k1");
  assert.equal(
    services.map((s) => s.active().map((x) => x.key)),
    [[key], [key]],
    "both instances' views have it firing",
  );
  assert.is(published[0]!.length, 1, "the leader published it");
  assert.equal(published[1], [], "the follower published nothing");
  const { rows } = await ctx.dbs[0]!.query<{ fired_count: number }>(
    "SELECT fired_count FROM alert_states WHERE key = $1",
    [key],
  );
  assert.equal(rows, [{ fired_count: 1 }], "one row, fired once");

  // An event-like alert (a staff call in the inbox), resolved by an operator on the follower (an API
  // instance): written and sent there; the leader's own expiry later finds it resolved and sends nothing.
  await ctx.dbs[0]!.query(
    `INSERT INTO inbox (site_id, device_id, seq, entry_id, kind, outcome, at, body, received_at)
     VALUES ('s1', 'k1', 1, 'e-1', 'staff-call', 'applied', $1, '{"source":"button"}', $1)`,
    [new Date(ctx.timers.now().getTime() + 1000)],
  );
  ctx.timers.advance(2000);
  for (const s of services) {
    s.scan();
    await s.idle();
  }
  const call = alertKey("staff-called", "s1", "k1");
  assert.ok(
    services.every((s) => s.active().some((x) => x.key === call)),
    "both views have the staff call firing",
  );
  assert.is(published[0]!.length, 2, "the leader sent it");
  assert.is(services[1]!.resolveByOperator(call, "op1"), "resolved");
  await services[1]!.idle();
  // a resolve is two publishes on the alert's topic: the resolved state, then its retained copy cleared
  assert.is(published[1]!.length, 2, `the follower sent the operator's resolve: ${published[1]!.join(" ")}`);
  ctx.timers.advance(3_600_000); // past ALERT_EVENT_RESOLVE_S: the leader's expiry fires
  await services[0]!.idle();
  assert.is(published[0]!.length, 2, "the leader's expiry sent no second resolve");
  const state = await ctx.dbs[0]!.query<{ state: string; resolved_by: string }>(
    "SELECT state, resolved_by FROM alert_states WHERE key = $1",
    [call],
  );
  assert.equal(state.rows, [{ state: "resolved", resolved_by: "ops:op1" }]);
  for (const s of services) await s.stop();
});

L.run();
