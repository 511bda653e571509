/**
 * Gap detection across bridges (issue 19): with the ingest on a shared
 * subscription, a device's batches land on different instances, so one
 * bridge's view of a stream has holes another filled. Two bridges on one
 * Postgres schema and one broker (a private Mosquitto), their gap timers on a
 * fake clock; entries are handed to each bridge's ingestor as its share of
 * the device's messages would be. Seqs 6–10 committed on b2 before 1–5 on b1
 * leave b2 with an open gap: at its deadline b2 re-reads the inbox, finds the
 * stream contiguous up to 10, drops the gap and asks for nothing. A real hole
 * (11 never sent) is asked for once, from 11.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type DeviceAddress, topics } from "@paylane/protocol";
import { connectAsync, type MqttClient } from "mqtt";
import { pino } from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { FakeTimers } from "../../test/support/fake-timers.ts";
import { PrivateMosquitto } from "../../test/support/private-mosquitto.ts";
import { Signal } from "../../test/support/signal.ts";
import { admitEvents } from "../src/bridge/admit.ts";
import { Bridge } from "../src/bridge/bridge.ts";
import type { Database } from "../src/db/database.ts";
import { migrate } from "../src/db/migrate.ts";
import { openPg } from "../src/db/pg.ts";
import { tapBody } from "../src/dr/failover-kiosk.ts";
import { MemoryPresence } from "../src/presence/memory-presence.ts";
import { DEMO_MEMBERS, seedSite } from "../src/seed.ts";

const PG_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const SITE = `g${randomBytes(4).toString("hex")}`;
const K1: DeviceAddress = { site: SITE, device: "k1" };
const GAP_WAIT_MS = 1000;
const quiet = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });

const ctx = {
  dir: "",
  schema: `t_${randomBytes(6).toString("hex")}`,
  db: undefined as unknown as Database,
  broker: undefined as unknown as PrivateMosquitto,
  timers: new FakeTimers(),
  bridges: [] as Bridge[],
  metrics: [] as MetricsRegistry[],
  device: undefined as unknown as MqttClient,
  replays: [] as number[],
  acks: [] as number[],
  signal: new Signal(),
};

const Gaps = suite("gaps across two bridges: the inbox decides");

Gaps.before(async () => {
  ctx.dir = await mkdtemp(join(tmpdir(), "paylane-bridge-gaps-"));
  ctx.broker = new PrivateMosquitto(ctx.dir);
  await ctx.broker.start();
  ctx.db = await openPg({ url: PG_URL, schema: ctx.schema });
  await migrate(ctx.db);
  await seedSite(ctx.db, { id: SITE, name: "Gaps", timezone: "UTC", currency: "EUR" });
  await ctx.db.query("INSERT INTO devices (site_id, id) VALUES ($1, $2)", [K1.site, K1.device]);
  for (const name of ["b1", "b2"]) {
    const metrics = new MetricsRegistry();
    const bridge = new Bridge({
      url: ctx.broker.url,
      db: ctx.db,
      presence: new MemoryPresence(),
      isKnownDevice: () => true,
      logger: quiet,
      metrics,
      now: ctx.timers.now,
      timers: ctx.timers,
      instance: name,
      sites: [SITE],
      shareGroup: "bridge",
      gapWaitMs: GAP_WAIT_MS,
      onCommitted: ctx.signal.notify,
    });
    await bridge.start();
    ctx.bridges.push(bridge);
    ctx.metrics.push(metrics);
  }
  // The device's side: what the cloud tells it.
  ctx.device = await connectAsync(ctx.broker.url, { clientId: `device-${SITE}`, reconnectPeriod: 0 });
  ctx.device.on("message", (topic, payload) => {
    const body = JSON.parse(payload.toString()) as { upTo?: number; args?: { from?: number } };
    if (topic === topics.ack(K1)) ctx.acks.push(body.upTo ?? -1);
    else if (topic.startsWith(topics.cmdPrefix(K1))) ctx.replays.push(body.args?.from ?? -1);
    ctx.signal.notify();
  });
  await ctx.device.subscribeAsync([topics.ack(K1), `${topics.cmdPrefix(K1)}+`], { qos: 1 });
});

Gaps.after(async () => {
  for (const b of ctx.bridges) await b.kill().catch(() => {});
  await ctx.device?.endAsync(true).catch(() => {});
  await ctx.db?.query(`DROP SCHEMA IF EXISTS ${ctx.schema} CASCADE`).catch(() => {});
  await ctx.db?.close().catch(() => {});
  await ctx.broker?.kill();
  await rm(ctx.dir, { recursive: true, force: true });
});

/** Entries `from`..`to` of k1, as one events message would bring them, into `bridge`'s ingestor. */
function deliver(bridge: Bridge, from: number, to: number): void {
  const entries = [];
  for (let seq = from; seq <= to; seq++) {
    entries.push({
      seq,
      id: randomUUID(),
      kind: "checkin",
      at: new Date().toISOString(),
      body: tapBody("checkin", seq, [DEMO_MEMBERS[0]!.id], "EUR"),
    });
  }
  const admitted = admitEvents(K1, Buffer.from(JSON.stringify({ device: K1.device, entries })));
  assert.is(admitted.refusals.length, 0, JSON.stringify(admitted.refusals));
  bridge.ingestor.add(admitted.entries);
}

async function openGaps(i: number): Promise<number> {
  const metric = await ctx.metrics[i]!.getSingleMetricAsString("paylane_bridge_open_gaps");
  return Number(/ (\d+)$/m.exec(metric)?.[1]);
}

async function committedUpTo(): Promise<number> {
  const { rows } = await ctx.db.query<{ acked_seq: string }>(
    "SELECT acked_seq FROM device_streams WHERE site_id = $1 AND device_id = $2",
    [K1.site, K1.device],
  );
  return Number(rows[0]?.acked_seq ?? 0);
}

Gaps("6–10 on one bridge before 1–5 on the other: no replay, the gap is dropped from the inbox", async () => {
  const [b1, b2] = ctx.bridges as [Bridge, Bridge];
  deliver(b2, 6, 10);
  await b2.ingestor.drain();
  assert.is(await openGaps(1), 1, "b2 saw 6–10 with nothing below: a gap from 1");
  deliver(b1, 1, 5);
  await b1.ingestor.drain();
  assert.is(await committedUpTo(), 10, "b1's statement saw b2's rows: the stream is contiguous to 10");
  assert.is(await openGaps(0), 0, "b1 has no gap");
  // b2's deadline: it re-reads the inbox instead of asking.
  ctx.timers.advance(GAP_WAIT_MS);
  await ctx.signal.until(async () => (await openGaps(1)) === 0, "b2 dropping its gap after the re-read", 10_000);
  ctx.timers.advance(60_000);
  await ctx.signal.until(() => ctx.acks.includes(10), "an ack up to 10", 10_000);
  assert.equal(ctx.replays, [], "no spurious replay-from");
});

Gaps("a real hole (11 never sent, 12–15 on b2) is asked for once, from 11", async () => {
  const [, b2] = ctx.bridges as [Bridge, Bridge];
  deliver(b2, 12, 15);
  await b2.ingestor.drain();
  assert.is(await openGaps(1), 1);
  ctx.timers.advance(GAP_WAIT_MS - 1);
  assert.equal(ctx.replays, [], "nothing before the wait");
  ctx.timers.advance(1);
  await ctx.signal.until(() => ctx.replays.length > 0, "a replay-from", 10_000);
  assert.equal(ctx.replays, [11], "asked once, from the first missing seq");
  assert.is(await committedUpTo(), 10);
  // The device answers; the gap closes on whichever bridge takes the resend.
  deliver(ctx.bridges[0]!, 11, 15);
  await ctx.bridges[0]!.ingestor.drain();
  assert.is(await committedUpTo(), 15);
  ctx.timers.advance(2 * GAP_WAIT_MS);
  await ctx.signal.until(async () => (await openGaps(1)) === 0, "b2's gap dropped once 11 is in", 10_000);
  // Dropped by the re-read, so no timer is left to ask again.
  ctx.timers.advance(60_000);
  assert.equal(ctx.replays, [11], "no second request once the inbox holds 11");
});

Gaps.run();
