/**
 * MQTT shared subscriptions on the aedes gateway (shared-subscriptions.ts):
 * one member of a `$share/{group}/{filter}` gets each message, on one
 * instance and across two instances on Redis; the ACL applies to the inner
 * filter; no retained message on a shared subscription (MQTT 5 §4.8.2).
 * Absences are proven by a later message that travels the same path.
 */
import { topics } from "@paylane/protocol";
import { Redis } from "ioredis";
import type { MqttClient } from "mqtt";
import { ErrorWithSubackPacket } from "mqtt";
import { pino } from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Gateway } from "../src/gateway.ts";
import {
  Clients,
  eventually,
  fleetRegistry,
  k1,
  k2,
  k3,
  REDIS_URL,
  type Received,
  recorder,
  redisPrefix,
  until,
} from "./support/fleet.ts";

const logger = pino({ level: "silent" });
const EVENTS = "paylane/v1/+/+/events";
const SHARED = `$share/g/${EVENTS}`;
const clients = new Clients();
let gateway: Gateway;

test.before(async () => {
  gateway = new Gateway({ registry: await fleetRegistry(), port: 0, logger, metrics: new MetricsRegistry() });
  await gateway.start();
});

test.after.each(() => clients.closeAll());
test.after(() => gateway.stop());

const payloads = (seen: Received[]) => seen.map((m) => m.payload);
const sorted = (xs: string[]) => [...xs].sort();
const batch = (from: number, n: number) => Array.from({ length: n }, (_, i) => JSON.stringify({ n: from + i }));

async function publishAll(kiosk: MqttClient, topic: string, messages: string[]): Promise<void> {
  for (const m of messages) await kiosk.publishAsync(topic, m, { qos: 1 });
}

async function subackCodes(client: MqttClient, filter: string): Promise<number[]> {
  try {
    return (await client.subscribeAsync(filter, { qos: 1 })).map((g) => g.qos);
  } catch (err) {
    assert.instance(err, ErrorWithSubackPacket);
    return [...((err as ErrorWithSubackPacket).packet.granted as number[])];
  }
}

test("3 members of $share/g share the events (each once, each some); an ordinary subscriber gets them all", async () => {
  const port = gateway.port;
  const members = await Promise.all(["b1", "b2", "b3"].map((id) => clients.bridge(port, id)));
  const inboxes = members.map(recorder);
  const normal = await clients.bridge(port, "b0");
  const all = recorder(normal);
  for (const m of members) await m.subscribeAsync(SHARED, { qos: 1 });
  await normal.subscribeAsync(EVENTS, { qos: 1 });
  assert.is(gateway.sharedMembers(SHARED), 3);

  const kiosk = await clients.device(port, k1);
  const sent = batch(0, 30);
  await publishAll(kiosk, topics.events(k1), sent);
  const shared = () => inboxes.flatMap((r) => payloads(r.seen));
  await until([all, ...inboxes], () => all.seen.length >= 30 && shared().length >= 30, 5000, "30 events everywhere");

  assert.equal(sorted(payloads(all.seen)), sorted(sent), "the ordinary subscriber gets every event");
  assert.equal(sorted(shared()), sorted(sent), "the group gets every event once, none twice");
  const split = inboxes.map((r) => r.seen.length);
  console.log(`    split over 3 members of ${SHARED}: ${split.join(" / ")} (of 30)`);
  assert.ok(
    split.every((n) => n > 0),
    `each member takes some: ${split.join("/")}`,
  );
  // The original topic, the subscription's QoS, never flagged retained.
  for (const m of inboxes.flatMap((r) => r.seen)) {
    assert.is(m.topic, topics.events(k1));
    assert.is(m.qos, 1);
    assert.is(m.retain, false);
  }
});

test("a member that leaves (disconnects or unsubscribes) gets nothing more; the rest get everything", async () => {
  const port = gateway.port;
  const [b1, b2, b3] = await Promise.all(["b1", "b2", "b3"].map((id) => clients.bridge(port, id)));
  const [r1, r2, r3] = [recorder(b1!), recorder(b2!), recorder(b3!)];
  for (const m of [b1!, b2!, b3!]) await m.subscribeAsync(SHARED, { qos: 1 });
  const kiosk = await clients.device(port, k2);

  await b3!.endAsync();
  await eventually(() => gateway.sharedMembers(SHARED) === 2, 2000, "b3 to leave the group");
  const second = batch(100, 20);
  await publishAll(kiosk, topics.events(k2), second);
  await until([r1, r2], () => r1.seen.length + r2.seen.length >= 20, 5000, "20 events on b1 and b2");
  assert.equal(sorted([...payloads(r1.seen), ...payloads(r2.seen)]), sorted(second));
  assert.is(r3.seen.length, 0);
  console.log(`    after b3 left: ${r1.seen.length} / ${r2.seen.length} (of 20)`);

  await b2!.unsubscribeAsync(SHARED);
  assert.is(gateway.sharedMembers(SHARED), 1);
  const before2 = r2.seen.length;
  const third = batch(200, 10);
  await publishAll(kiosk, topics.events(k2), third);
  await until([r1], () => payloads(r1.seen).filter((p) => third.includes(p)).length >= 10, 5000, "b1 to get all 10");
  assert.is(r2.seen.length, before2, "b2 unsubscribed: nothing more");
});

test("a clean:false member is a member again when its session is restored, without subscribing again", async () => {
  const port = gateway.port;
  const session = { clean: false };
  const first = await clients.bridge(port, "persistent-member", session);
  await first.subscribeAsync(SHARED, { qos: 1 });
  await first.endAsync();
  await eventually(() => gateway.sharedMembers(SHARED) === 0, 2000, "the member to leave on disconnect");
  const again = await clients.bridge(port, "persistent-member", session);
  // aedes restores the session before CONNACK and reports the client ready just after it.
  await eventually(() => gateway.sharedMembers(SHARED) === 1, 2000, "the member restored from its session");
  const inbox = recorder(again);
  const kiosk = await clients.device(port, k1);
  await publishAll(kiosk, topics.events(k1), batch(300, 3));
  await until([inbox], () => inbox.seen.length >= 3, 5000, "3 events on the restored member");
  assert.equal(sorted(payloads(inbox.seen)), sorted(batch(300, 3)));
  // The session ends clean, so the next test starts without it.
  await again.endAsync();
  await clients.bridge(port, "persistent-member", { clean: true });
});

test("a member subscribed at QoS 0 gets QoS 0; the group's messages keep their topic", async () => {
  const port = gateway.port;
  const member = await clients.bridge(port, "q0");
  const inbox = recorder(member);
  await member.subscribeAsync(SHARED, { qos: 0 });
  const kiosk = await clients.device(port, k1);
  await kiosk.publishAsync(topics.events(k1), '{"q":0}', { qos: 1 });
  const got = await inbox.next(() => true);
  assert.equal(got, { topic: topics.events(k1), payload: '{"q":0}', qos: 0, retain: false });
});

test("ACL: a kiosk may not $share another kiosk's events (it would steal them); the bridge may", async () => {
  const port = gateway.port;
  const thief = await clients.device(port, k1);
  const thiefInbox = recorder(thief);
  // The attack: every kiosk's events through a group the thief alone is in.
  assert.equal(await subackCodes(thief, `$share/x/${EVENTS}`), [128]);
  assert.equal(await subackCodes(thief, `$share/x/${topics.events(k2)}`), [128]);
  assert.is(gateway.sharedMembers(`$share/x/${EVENTS}`), 0);
  // A filter the kiosk may subscribe is still refused as $share: shared subscriptions are for services.
  assert.equal(await subackCodes(thief, `$share/x/${topics.cmdAll(k1)}`), [128]);

  const bridge = await clients.bridge(port, "legit");
  const bridgeInbox = recorder(bridge);
  assert.equal(await subackCodes(bridge, `$share/x/${EVENTS}`), [1]);
  const victim = await clients.device(port, k2);
  await victim.publishAsync(topics.events(k2), '{"secret":true}', { qos: 1 });
  await bridgeInbox.next((m) => m.topic === topics.events(k2));
  // The control: a message to the thief after the victim's event, on the same path.
  await thief.subscribeAsync(topics.ack(k1), { qos: 1 });
  await bridge.publishAsync(topics.ack(k1), '{"upTo":1}', { qos: 1 });
  await thiefInbox.next((m) => m.topic === topics.ack(k1));
  assert.equal(
    thiefInbox.seen.filter((m) => m.topic === topics.events(k2)),
    [],
    "the thief got none of the victim's events",
  );
});

test("no retained message on a shared subscription; an ordinary one gets it", async () => {
  const port = gateway.port;
  const kiosk = await clients.device(port, k3);
  await kiosk.publishAsync(topics.status(k3), '{"state":"online"}', { qos: 1, retain: true });
  const STATUS = `paylane/v1/${k3.site}/+/status`;
  const member = await clients.bridge(port, "st-member");
  const memberInbox = recorder(member);
  await member.subscribeAsync(`$share/st/${STATUS}`, { qos: 1 });
  const plain = await clients.bridge(port, "st-plain");
  const plainInbox = recorder(plain);
  await plain.subscribeAsync(STATUS, { qos: 1 });
  const retained = await plainInbox.next((m) => m.topic === topics.status(k3));
  assert.is(retained.retain, true);
  // A live status after the retained one: the member gets it, and only it.
  await kiosk.publishAsync(topics.status(k3), '{"state":"live"}', { qos: 1 });
  const live = await memberInbox.next((m) => m.topic === topics.status(k3));
  assert.is(live.payload, '{"state":"live"}');
  assert.equal(payloads(memberInbox.seen), ['{"state":"live"}']);
  await kiosk.publishAsync(topics.status(k3), "", { qos: 1, retain: true });
});

test("two instances on Redis: members on A and B, publishes on A and B, every message delivered once in total", async () => {
  const keys = redisPrefix("shared");
  const registry = await fleetRegistry();
  const metrics = { "gw-a": new MetricsRegistry(), "gw-b": new MetricsRegistry() };
  const make = (instance: "gw-a" | "gw-b") =>
    new Gateway({
      registry,
      port: 0,
      logger,
      metrics: metrics[instance],
      instance,
      redis: { url: REDIS_URL, prefix: keys.prefix },
    });
  /** This instance's `paylane_gateway_shared_messages_total` by outcome. */
  const outcomes = async (instance: "gw-a" | "gw-b") => {
    const metric = await metrics[instance].getSingleMetric("paylane_gateway_shared_messages_total")?.get();
    const by: Record<string, number> = {};
    for (const v of metric?.values ?? []) by[String(v.labels.outcome)] = v.value;
    return by;
  };
  const a = make("gw-a");
  const b = make("gw-b");
  try {
    await a.start();
    await b.start();
    const onA = await Promise.all(["a1", "a2"].map((id) => clients.bridge(a.port, id)));
    const onB = await Promise.all(["b1", "b2"].map((id) => clients.bridge(b.port, id)));
    const inboxes = [...onA, ...onB].map(recorder);
    for (const m of [...onA, ...onB]) await m.subscribeAsync(SHARED, { qos: 1 });
    // Stable membership: both instances see 2 + 2.
    const settled = (g: Gateway) =>
      g
        .sharedHolders(SHARED)
        .map((h) => h.members)
        .join("+") === "2+2";
    await eventually(() => settled(a) && settled(b), 5000, "both instances to see 2 members on each");

    const kioskA = await clients.device(a.port, k1);
    const kioskB = await clients.device(b.port, k2);
    const fromA = batch(0, 40);
    const fromB = batch(1000, 40);
    await Promise.all([publishAll(kioskA, topics.events(k1), fromA), publishAll(kioskB, topics.events(k2), fromB)]);
    const total = () => inboxes.reduce((n, r) => n + r.seen.length, 0);
    // Each instance sees all 80 and delivers those it owns: the delivered counts must add up to 80, not more.
    const seenBy = async (i: "gw-a" | "gw-b") => {
      const o = await outcomes(i);
      return (o.delivered ?? 0) + (o["other-instance"] ?? 0) + (o["no-member"] ?? 0);
    };
    await eventually(async () => (await seenBy("gw-a")) === 80 && (await seenBy("gw-b")) === 80, 10_000, "80 each");
    const [oa, ob] = [await outcomes("gw-a"), await outcomes("gw-b")];
    console.log(`    gw-a ${JSON.stringify(oa)}; gw-b ${JSON.stringify(ob)}`);
    assert.is((oa.delivered ?? 0) + (ob.delivered ?? 0), 80, "delivered once in total, by one instance each");
    await until(inboxes, () => total() >= 80, 10_000, "80 events over the 4 members");
    const all = inboxes.flatMap((r) => payloads(r.seen));
    assert.equal(sorted(all), sorted([...fromA, ...fromB]), "each of the 80 exactly once over both instances");
    const split = inboxes.map((r) => r.seen.length);
    const perInstance = [split[0]! + split[1]!, split[2]! + split[3]!];
    console.log(
      `    split a1/a2 on gw-a, b1/b2 on gw-b: ${split.join(" / ")}; per instance ${perInstance.join(" / ")}`,
    );
    assert.ok(
      perInstance.every((n) => n > 0),
      `both instances' members take load: ${perInstance.join("/")}`,
    );
  } finally {
    await clients.closeAll();
    await Promise.all([a.stop(), b.stop()]);
    await keys.clear();
  }
});

test("a bad directory entry of one instance is skipped with its own log line; the others' members still count", async () => {
  const keys = redisPrefix("shared-bad");
  const lines: string[] = [];
  const capture = pino({ level: "info" }, { write: (line: string) => lines.push(line) });
  const registry = await fleetRegistry();
  const make = (instance: string, log = logger) =>
    new Gateway({
      registry,
      port: 0,
      logger: log,
      metrics: new MetricsRegistry(),
      instance,
      redis: { url: REDIS_URL, prefix: keys.prefix },
    });
  const redis = new Redis(REDIS_URL, { keyPrefix: `${keys.prefix}:` });
  // An entry that is not JSON, as another version or a hand edit could leave it, listed like any instance's.
  await redis.set("shared:broker:gw-broken-0000", "{not json", "PX", 60_000);
  await redis.sadd("shared:brokers", "gw-broken-0000");
  const a = make("gw-a", capture);
  const b = make("gw-b");
  try {
    await a.start();
    await b.start();
    const member = await clients.bridge(b.port, "b1");
    await member.subscribeAsync(SHARED, { qos: 1 });
    const seen = () =>
      a
        .sharedHolders(SHARED)
        .map((h) => h.members)
        .join("+");
    await eventually(() => seen() === "1", 5000, "gw-a to see gw-b's member despite the bad entry");
    const logged = lines.map((l) => JSON.parse(l) as { msg: string; broker?: string });
    const bad = logged.filter((l) => l.broker === "gw-broken-0000");
    console.log(`    gw-a: ${bad[0]?.msg}`);
    assert.is(bad.length, 1, "one line for the bad entry, not one per read");
    assert.ok(!logged.some((l) => l.msg.includes("Redis unreachable")), "not reported as Redis unreachable");
  } finally {
    await clients.closeAll();
    await Promise.all([a.stop(), b.stop()]);
    redis.disconnect();
    await keys.clear();
  }
});

test.run();
