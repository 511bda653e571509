/**
 * The singleton duties' leader (cloud/src/bridge/leader.ts): of instances on
 * one schema exactly one leads; a clone in another schema of the same
 * database leads its own; when the leader's connection is cut (its backend
 * terminated, as a Postgres restart or a network cut does), it stops leading
 * at once — without an unhandled 'error' ending the process — and the other
 * takes the lock at its next try; a stopped leader hands over the same way.
 * The followers' retry runs on a fake clock.
 */
import { randomBytes } from "node:crypto";
import { pino } from "pino";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { FakeTimers } from "../../test/support/fake-timers.ts";
import { Signal } from "../../test/support/signal.ts";
import { Leader } from "../src/bridge/leader.ts";
import type { Database } from "../src/db/database.ts";
import { openPg } from "../src/db/pg.ts";

const PG_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const quiet = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });
const schemas = [`t_${randomBytes(6).toString("hex")}`, `t_${randomBytes(6).toString("hex")}`];

const ctx = {
  dbs: [] as Database[],
  leaders: [] as Leader[],
  timers: new FakeTimers(),
  signal: new Signal(),
};

const L = suite("one leader per schema");

L.before(async () => {
  // a, b on the first schema; c alone on the second
  for (const schema of [schemas[0]!, schemas[0]!, schemas[1]!]) {
    const db = await openPg({ url: PG_URL, schema });
    ctx.dbs.push(db);
    const leader = new Leader({
      db,
      logger: quiet,
      instance: `i${ctx.leaders.length}`,
      timers: ctx.timers,
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

/** Waits for `check`, re-checked as the fake clock is advanced one retry at a time. */
async function until(check: () => boolean, what: string): Promise<void> {
  const poll = setInterval(() => {
    ctx.timers.advance(1000);
    ctx.signal.notify();
  }, 20);
  try {
    await ctx.signal.until(check, what, 10_000);
  } finally {
    clearInterval(poll);
  }
}

const leading = () => ctx.leaders.map((l) => l.leading);

L("exactly one of a schema's instances leads; another schema's leads its own", () => {
  assert.equal(leading(), [true, false, true]);
});

L("the leader's connection cut: it stops leading at once, the other takes over", async () => {
  const [a, b] = ctx.leaders as [Leader, Leader];
  const { rows } = await ctx.dbs[1]!.query<{ n: number }>(
    `SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_locks
     WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()
       AND objid = hashtext('paylane-leader:' || $1::text)::oid`,
    [schemas[0]],
  );
  assert.is(rows[0]!.n, 1, "the one backend holding the lock of the first schema");
  await until(() => !a.leading && b.leading, "b leading, a not");
  assert.ok(ctx.leaders[2]!.leading, "the other schema's leader is untouched");
  // a tries again and finds the lock taken: it follows
  ctx.timers.advance(5000);
  assert.equal(leading(), [false, true, true]);
});

L("a stopped leader hands over at the other's next try", async () => {
  const [a, b] = ctx.leaders as [Leader, Leader];
  await b.stop();
  await until(() => a.leading, "a leading again");
  assert.not.ok(b.leading);
});

L.run();
