/**
 * The live feed under the WebSocket (DatabaseLiveFeed), on both database
 * backends: what a commit announces (migrations/016_live_notify.sql) comes
 * out as the row its REST read shows, in commit order; another schema's
 * notifications on the same database are not this cloud's; a status that
 * several instances announce goes out once. On real Postgres the LISTEN
 * connection is terminated (pg_terminate_backend) and the feed keeps delivering.
 */
import { randomBytes, randomUUID } from "node:crypto";
import type { LiveEvent } from "@paylane/protocol";
import pino from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { Database } from "../src/db/database.ts";
import { migrate } from "../src/db/migrate.ts";
import { openPg } from "../src/db/pg.ts";
import { openPglite } from "../src/db/pglite.ts";
import { DatabaseLiveFeed } from "../src/live/database-live-feed.ts";
import { LIVE_CHANNEL, notifyDeviceStatus } from "../src/live/notify.ts";
import { seedSite } from "../src/seed.ts";

const PG_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const quiet = pino({ level: "silent" });

interface Ctx {
  db: Database;
  schema?: string;
  feed: DatabaseLiveFeed;
  events: LiveEvent[];
  metrics: MetricsRegistry;
  stop: () => void;
}

/** Resolves once `events` holds an event matching `match`, or fails after `ms` (real time). */
async function eventWhere(ctx: Ctx, match: (e: LiveEvent) => boolean, what: string, ms = 5000): Promise<LiveEvent> {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = ctx.events.find(match);
    if (found) return found;
    if (Date.now() > deadline)
      throw new Error(`no live event: ${what}; got ${JSON.stringify(ctx.events.map((e) => e.type))}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

let seqs = 0;
async function checkin(db: Database, site: string, device: string, member = "m-ada") {
  const seq = ++seqs;
  const id = randomUUID();
  await db.query(
    `INSERT INTO inbox (site_id, device_id, seq, entry_id, kind, outcome, at, body, received_at)
     VALUES ($1, $2, $3, $4, 'checkin', 'applied', now(), $5::jsonb, now())`,
    [
      site,
      device,
      seq,
      id,
      JSON.stringify({ memberId: member, credential: { type: "card" }, replicaVersion: 1, offline: false }),
    ],
  );
  return { id, seq };
}

for (const kind of ["pglite", "pg"] as const) {
  const t = suite<Ctx>(`live feed on ${kind}`);

  t.before(async (ctx) => {
    ctx.schema = kind === "pg" ? `t_${randomBytes(6).toString("hex")}` : undefined;
    ctx.db = ctx.schema ? await openPg({ url: PG_URL, schema: ctx.schema }) : await openPglite();
    await migrate(ctx.db);
    await seedSite(ctx.db, { id: "s1", name: "Venue", timezone: "UTC" });
    await ctx.db.query("INSERT INTO devices (site_id, id) VALUES ('s1', 'k1') ON CONFLICT DO NOTHING");
    ctx.metrics = new MetricsRegistry();
    ctx.feed = new DatabaseLiveFeed({ db: ctx.db, logger: quiet, metrics: ctx.metrics });
    await ctx.feed.start();
    ctx.events = [];
    ctx.stop = ctx.feed.subscribe((e) => ctx.events.push(e));
  });
  t.after(async (ctx) => {
    ctx.stop();
    await ctx.feed.stop();
    if (ctx.schema) await ctx.db.query(`DROP SCHEMA IF EXISTS ${ctx.schema} CASCADE`);
    await ctx.db.close();
  });
  t.before.each((ctx) => {
    ctx.events.length = 0;
  });

  t("a committed check-in comes out as GET /api/v1/checkins shows it", async (ctx) => {
    const { id, seq } = await checkin(ctx.db, "s1", "k1");
    const e = await eventWhere(ctx, (e) => e.type === "checkin", "the check-in");
    assert.is(e.site, "s1");
    assert.is(e.device, "k1");
    assert.equal(Object.keys(e.data).sort(), [
      "at",
      "credential",
      "device",
      "id",
      "memberId",
      "memberName",
      "offline",
      "receivedAt",
      "replicaVersion",
      "seq",
      "site",
    ]);
    assert.is(e.data.id, id);
    assert.is(e.data.seq, seq);
    assert.is(e.data.memberName, "Ada Lovelace");
    assert.is(e.at, e.data.receivedAt);
  });

  t("a rolled-back check-in is never announced", async (ctx) => {
    const ended = await ctx.db
      .transaction(async (tx) => {
        await tx.query(
          `INSERT INTO inbox (site_id, device_id, seq, entry_id, kind, outcome, at, body, received_at)
           VALUES ('s1', 'k1', 9999, $1, 'checkin', 'applied', now(), '{"memberId":"m-ada","credential":{"type":"card"}}', now())`,
          [randomUUID()],
        );
        throw new Error("rolled back");
      })
      .then(
        () => "committed",
        (err: Error) => err.message,
      );
    // Only the test's own throw: an INSERT that failed would roll back nothing worth announcing.
    assert.is(ended, "rolled back");
    await checkin(ctx.db, "s1", "k1");
    await eventWhere(ctx, (e) => e.type === "checkin", "the committed check-in");
    assert.is(ctx.events.filter((e) => e.data.seq === 9999).length, 0);
  });

  t("a replayed backlog (600 check-ins in one statement) comes out whole, in commit order", async (ctx) => {
    const first = seqs + 1;
    const rows = Array.from({ length: 600 }, (_, i) => first + i);
    seqs += 600;
    await ctx.db.query(
      `INSERT INTO inbox (site_id, device_id, seq, entry_id, kind, outcome, at, body, received_at)
       SELECT 's1', 'k1', s, gen_random_uuid()::text, 'checkin', 'applied', now(),
              '{"memberId":"m-grace","credential":{"type":"code"},"replicaVersion":1,"offline":true}'::jsonb, now()
       FROM unnest($1::bigint[]) AS s`,
      [rows],
    );
    await eventWhere(ctx, (e) => e.data.seq === first + 599, "the last check-in");
    assert.equal(
      ctx.events.filter((e) => e.type === "checkin").map((e) => e.data.seq),
      rows,
    );
  });

  t("a payment, a staff call, an alert firing and a command result each come out as their REST read", async (ctx) => {
    // a kiosk's payment, through the ledger's own function (what ingest and authorize call)
    await ctx.db.query(
      `SELECT * FROM ledger_post('s1', 'm-ada', 'purchase', -300, 'EUR', $1, 'k1', NULL, NULL, 'online', NULL, NULL, NULL, now(), now())`,
      [`kiosk:k1:${randomUUID()}`],
    );
    const payment = await eventWhere(ctx, (e) => e.type === "payment", "the payment");
    assert.is(payment.device, "k1");
    assert.is(payment.data.amount, -300);
    assert.is(payment.data.kind, "purchase");
    assert.equal(payment.data.origin, { device: "k1", seq: null });

    const seq = ++seqs;
    await ctx.db.query(
      `INSERT INTO inbox (site_id, device_id, seq, entry_id, kind, outcome, at, body, received_at)
       VALUES ('s1', 'k1', $1, $2, 'staff-call', 'applied', now(), '{"source":"button"}', now())`,
      [seq, randomUUID()],
    );
    const call = await eventWhere(ctx, (e) => e.type === "alert" && e.data.kind === "staff-call", "the staff call");
    assert.equal(call.data.detail, { source: "button" });

    await ctx.db.query(
      `INSERT INTO alert_states (key, rule, site_id, device_id, severity, state, summary, fired_at, updated_at)
       VALUES ('kiosk-offline:s1/k1', 'kiosk-offline', 's1', 'k1', 'warning', 'firing', 'k1 is offline', now(), now())`,
    );
    const firing = await eventWhere(ctx, (e) => e.type === "alert" && e.data.key !== undefined, "the alert firing");
    assert.is(firing.data.state, "firing");
    assert.is(firing.data.rule, "kiosk-offline");
    // its scan bookkeeping is not news; its resolving is
    await ctx.db.query("UPDATE alert_states SET last_event_at = now() WHERE key = 'kiosk-offline:s1/k1'");
    await ctx.db.query(
      "UPDATE alert_states SET state = 'resolved', resolved_at = now(), updated_at = now() WHERE key = 'kiosk-offline:s1/k1'",
    );
    const resolved = await eventWhere(ctx, (e) => e.data.state === "resolved", "the alert resolving");
    assert.is(resolved.data.key, "kiosk-offline:s1/k1");
    assert.is(ctx.events.filter((e) => e.data.key === "kiosk-offline:s1/k1").length, 2);

    await ctx.db.query(
      `INSERT INTO device_commands (site_id, device_id, id, name, requested_at, updated_at)
       VALUES ('s1', 'k1', 'c-1', 'self-test', now(), now())`,
    );
    await ctx.db.query(
      `UPDATE device_commands SET status = 'done', result = '{"ok":true}', answered_at = now(), updated_at = now()
       WHERE id = 'c-1'`,
    );
    const result = await eventWhere(ctx, (e) => e.type === "command-result", "the command result");
    assert.is(result.data.status, "done");
    assert.is(result.data.command, "self-test");
    assert.equal(result.data.result, { ok: true });
    // the command as sent (pending) is not a result
    assert.is(ctx.events.filter((e) => e.type === "command-result").length, 1);
  });

  t("a device status announced by two instances goes out once", async (ctx) => {
    const birth = { state: "online", version: "1.2.3", bootedAt: "2026-12-05T10:00:00.000Z", protocol: 1, session: 7 };
    await notifyDeviceStatus(ctx.db, { site: "s1", device: "k1" }, birth as never, new Date());
    await notifyDeviceStatus(ctx.db, { site: "s1", device: "k1" }, birth as never, new Date());
    await notifyDeviceStatus(ctx.db, { site: "s1", device: "k1" }, { state: "offline", session: 7 }, new Date());
    const offline = await eventWhere(ctx, (e) => e.data.state === "offline", "the offline");
    assert.is(offline.type, "device-status");
    const statuses = ctx.events.filter((e) => e.type === "device-status");
    assert.equal(
      statuses.map((e) => e.data.state),
      ["online", "offline"],
    );
    assert.is(statuses[0]!.data.version, "1.2.3");
  });

  t("another schema's notifications on the same database are not this cloud's", async (ctx) => {
    await ctx.db.query("SELECT pg_notify($1, $2)", [
      LIVE_CHANNEL,
      JSON.stringify({ s: "someone_else", t: "checkin", site: "s1", device: "k1", seq: 1 }),
    ]);
    await ctx.db.query("SELECT pg_notify($1, 'not json')", [LIVE_CHANNEL]);
    await checkin(ctx.db, "s1", "k1");
    await eventWhere(ctx, (e) => e.type === "checkin", "the check-in after");
    assert.is(ctx.events.length, 1);
    const text = await ctx.metrics.metrics();
    assert.match(text, /paylane_live_notifications_total\{outcome="other-schema"\} [1-9]/);
    assert.match(text, /paylane_live_notifications_total\{outcome="invalid"\} [1-9]/);
  });

  if (kind === "pg") {
    t("the LISTEN connection terminated by Postgres comes back and the feed keeps delivering", async (ctx) => {
      const listener = async () =>
        (
          await ctx.db.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE application_name = $1", [
            `paylane-live:${ctx.schema}`,
          ])
        ).rows.map((r) => r.pid);
      const before = await listener();
      assert.is(before.length, 1, "one LISTEN connection for this cloud");
      await ctx.db.query("SELECT pg_terminate_backend($1)", [before[0]]);
      // Until it listens again, commits are missed (docs/live-feed.md); once it does, they are delivered.
      const deadline = Date.now() + 8000;
      for (;;) {
        await checkin(ctx.db, "s1", "k1");
        try {
          await eventWhere(ctx, (e) => e.type === "checkin", "a check-in after the cut", 200);
          break;
        } catch (err) {
          if (Date.now() > deadline) throw err;
        }
      }
      const after = await listener();
      assert.is(after.length, 1);
      assert.is.not(after[0], before[0], "a new LISTEN connection");
    });
  }

  t.run();
}
