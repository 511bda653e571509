/**
 * The gateway through real TCP with mqtt.js clients, as devices and the
 * bridge use it. Nothing here waits on the wall clock: every absence
 * ("k1 never receives it") is proven by a later positive control message
 * that travels the same path.
 */
import { type DeviceAddress, deviceIdentity, hashSecret, Registry, serviceUsername, topics } from "@paylane/protocol";
import { connectAsync, ErrorWithReasonCode, ErrorWithSubackPacket, type IClientOptions, type MqttClient } from "mqtt";
import { pino } from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Gateway } from "../src/gateway.ts";
import { gatewayOpsApp } from "../src/ops.ts";
import { suiteSharing } from "./support/fleet.ts";

/** In memory, or on Redis for gateway-on-redis.test.ts. */
const sharing = suiteSharing("gateway-suite");

const k1: DeviceAddress = { site: "s1", device: "k1" };
const k2: DeviceAddress = { site: "s1", device: "k2" };
const k3: DeviceAddress = { site: "s2", device: "k3" };
const SECRET = { k1: "secret-of-k1", k2: "secret-of-k2", k3: "secret-of-k3", bridge: "secret-of-bridge" };
const BRIDGE_ID = "cloud";

const logger = pino({ level: "silent" });
let registry: Registry;
let metrics: MetricsRegistry;
let gateway: Gateway;
/** Every client a test opens; closed after each test. */
let open: MqttClient[] = [];

test.before(async () => {
  registry = new Registry({
    version: 1,
    devices: [
      { ...k1, secretHash: await hashSecret(SECRET.k1) },
      { ...k2, secretHash: await hashSecret(SECRET.k2) },
      { ...k3, secretHash: await hashSecret(SECRET.k3) },
    ],
    services: [{ id: BRIDGE_ID, role: "bridge", secretHash: await hashSecret(SECRET.bridge) }],
  });
  metrics = new MetricsRegistry();
  gateway = new Gateway({ registry, port: 0, logger, metrics, ...sharing.options });
  await gateway.start();
});

test.after.each(async () => {
  await Promise.all(open.map((client) => client.endAsync(true)));
  open = [];
});

test.after(async () => {
  await gateway.stop();
  await sharing.clear();
});

const base: IClientOptions = { reconnectPeriod: 0, protocolVersion: 4, clean: true };

async function connect(options: IClientOptions, on: Gateway = gateway): Promise<MqttClient> {
  const client = await connectAsync(`mqtt://127.0.0.1:${on.port}`, { ...base, ...options });
  open.push(client);
  return client;
}

function deviceOptions(address: DeviceAddress, secret: string): IClientOptions {
  return { clientId: deviceIdentity.clientId(address), username: deviceIdentity.username(address), password: secret };
}

const device = (address: DeviceAddress, secret: string, extra: IClientOptions = {}) =>
  connect({ ...deviceOptions(address, secret), ...extra });
const bridge = (extra: IClientOptions = {}) =>
  connect({ clientId: "paylane-bridge-1", username: serviceUsername(BRIDGE_ID), password: SECRET.bridge, ...extra });

/** Resolves with the CONNACK refusal code, or fails the test if the connect succeeds. */
async function refusal(options: IClientOptions): Promise<number> {
  try {
    await connect(options);
  } catch (err) {
    assert.instance(err, ErrorWithReasonCode);
    return (err as ErrorWithReasonCode).code;
  }
  assert.unreachable("the connect should have been refused");
  return 0;
}

/**
 * The SUBACK return codes for `filters`, in order. mqtt.js rejects the whole
 * subscribe when any code is a failure (0x80), with the SUBACK attached.
 */
async function subscribeCodes(client: MqttClient, filters: string[]): Promise<number[]> {
  try {
    const grants = await client.subscribeAsync(filters, { qos: 1 });
    return grants.map((grant) => grant.qos);
  } catch (err) {
    assert.instance(err, ErrorWithSubackPacket);
    const granted: readonly unknown[] = (err as ErrorWithSubackPacket).packet.granted;
    return granted.filter((code): code is number => typeof code === "number");
  }
}

interface Received {
  topic: string;
  payload: string;
  retain: boolean;
}

/** Records everything a client receives, and resolves `next` when a matching message arrives. */
function recorder(client: MqttClient) {
  const seen: Received[] = [];
  const waiting: { match: (m: Received) => boolean; resolve: (m: Received) => void }[] = [];
  client.on("message", (topic, payload, packet) => {
    const message = { topic, payload: payload.toString("utf8"), retain: packet.retain };
    seen.push(message);
    for (const w of waiting.filter((w) => w.match(message))) {
      waiting.splice(waiting.indexOf(w), 1);
      w.resolve(message);
    }
  });
  return {
    seen,
    next(match: (m: Received) => boolean): Promise<Received> {
      const already = seen.find(match);
      if (already) return Promise.resolve(already);
      return new Promise((resolve) => waiting.push({ match, resolve }));
    },
  };
}

const closed = (client: MqttClient) => new Promise<void>((resolve) => client.once("close", () => resolve()));

async function metricValue(name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = await metrics.getSingleMetric(name)?.get();
  const values = metric?.values.filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l)) ?? [];
  return values.reduce((sum, v) => sum + v.value, 0);
}

test("a wrong secret, an unknown user and missing credentials get CONNACK 4", async () => {
  const before = await metricValue("paylane_gateway_auth_failures_total");
  assert.is(await refusal(deviceOptions(k1, "not-the-secret")), 4);
  assert.is(await refusal({ ...deviceOptions(k1, SECRET.k1), username: "s1/nobody" }), 4);
  assert.is(await refusal({ clientId: deviceIdentity.clientId(k1) }), 4);
  // The secret of one device does not open another.
  assert.is(await refusal(deviceOptions(k2, SECRET.k1)), 4);
  assert.is(await metricValue("paylane_gateway_auth_failures_total"), before + 4);
});

test("a device must use its own client id; a service may not take a device's", async () => {
  assert.is(await refusal({ ...deviceOptions(k1, SECRET.k1), clientId: deviceIdentity.clientId(k2) }), 5);
  assert.is(await refusal({ ...deviceOptions(k1, SECRET.k1), clientId: "anything-else" }), 5);
  // An empty client id would get a broker-generated one: still not the device's.
  assert.is(await refusal({ ...deviceOptions(k1, SECRET.k1), clientId: "" }), 5);
  assert.is(
    await refusal({
      clientId: deviceIdentity.clientId(k1),
      username: serviceUsername(BRIDGE_ID),
      password: SECRET.bridge,
    }),
    5,
  );
  assert.is(await metricValue("paylane_gateway_auth_failures_total", { reason: "client-id" }), 4);
  // The right one connects.
  const client = await device(k1, SECRET.k1);
  assert.ok(client.connected);
});

test("a device publishing under another device's subtree is refused and never delivered", async () => {
  const victim = await device(k1, SECRET.k1);
  await victim.subscribeAsync(topics.deviceTree(k1), { qos: 1 });
  const victimInbox = recorder(victim);
  const cloud = await bridge();
  await cloud.subscribeAsync(topics.fleet("events"), { qos: 1 });
  await cloud.subscribeAsync(topics.fleet("status"), { qos: 1 });
  const cloudInbox = recorder(cloud);
  // k1's real retained birth, to see whether the attack can overwrite it.
  await victim.publishAsync(topics.status(k1), "k1 online", { qos: 1, retain: true });
  await cloudInbox.next((m) => m.payload === "k1 online");

  const refusedBefore = await metricValue("paylane_gateway_publishes_refused_total", { kind: "device" });
  const attacker = await device(k2, SECRET.k2);
  const attackerClosed = closed(attacker);
  attacker.publish(topics.events(k1), "forged events", { qos: 1 });
  // [MQTT-3.3.5-2]: the broker closes the connection instead of acknowledging.
  await attackerClosed;
  assert.is(await metricValue("paylane_gateway_publishes_refused_total", { kind: "device" }), refusedBefore + 1);

  const again = await device(k2, SECRET.k2);
  const againClosed = closed(again);
  again.publish(topics.status(k1), "k1 offline (forged)", { qos: 1, retain: true });
  await againClosed;

  // Positive control: k1's own events travel the same path to both subscribers.
  await victim.publishAsync(topics.events(k1), "real events", { qos: 1 });
  await cloudInbox.next((m) => m.payload === "real events");
  await victimInbox.next((m) => m.payload === "real events");
  assert.equal(
    cloudInbox.seen.map((m) => m.payload),
    ["k1 online", "real events"],
  );
  // k1 reads its own tree, so it sees its own birth and events, and nothing forged.
  assert.equal(
    victimInbox.seen.map((m) => m.payload),
    ["k1 online", "real events"],
  );

  // The retained status is still k1's own.
  const late = await connect({
    clientId: "paylane-bridge-2",
    username: serviceUsername(BRIDGE_ID),
    password: SECRET.bridge,
  });
  const lateInbox = recorder(late);
  await late.subscribeAsync(topics.status(k1), { qos: 1 });
  const retained = await lateInbox.next((m) => m.topic === topics.status(k1));
  assert.is(retained.payload, "k1 online");
  assert.ok(retained.retain);
});

test("a device may not publish to channels addressed to it, nor retain events: refused, never delivered, never retained", async () => {
  const forged = [
    [topics.ack(k1), false],
    [topics.config(k1), true],
    [topics.events(k1), true],
    [topics.cloudStatus, true],
  ] as const;
  const watched = forged.map(([topic]) => topic);
  const cloud = await bridge();
  await cloud.subscribeAsync(watched, { qos: 1 });
  const cloudInbox = recorder(cloud);
  const isForged = (m: Received) => m.payload.startsWith("forged");

  const refusedBefore = await metricValue("paylane_gateway_publishes_refused_total", { kind: "device" });
  for (const [topic, retain] of forged) {
    const client = await device(k1, SECRET.k1);
    const gone = closed(client);
    client.publish(topic, `forged ${topic}`, { qos: 1, retain });
    // [MQTT-3.3.5-2]: the broker closes the connection instead of acknowledging.
    await gone;
  }
  assert.is(await metricValue("paylane_gateway_publishes_refused_total", { kind: "device" }), refusedBefore + 4);

  // Positive control: the same subscriptions carry k1's real events and the bridge's real ack.
  const kiosk = await device(k1, SECRET.k1);
  await kiosk.publishAsync(topics.events(k1), "real events", { qos: 1 });
  await cloud.publishAsync(topics.ack(k1), "real ack", { qos: 1 });
  await cloudInbox.next((m) => m.payload === "real events");
  await cloudInbox.next((m) => m.payload === "real ack");
  assert.equal(cloudInbox.seen.filter(isForged), []);

  // Nothing forged was retained: a late subscriber to those topics gets none of it,
  // proven by k1's real retained status arriving after them on the same connection.
  await kiosk.publishAsync(topics.status(k1), "k1 online (control)", { qos: 1, retain: true });
  const late = await connect({
    clientId: "paylane-bridge-2",
    username: serviceUsername(BRIDGE_ID),
    password: SECRET.bridge,
  });
  const lateInbox = recorder(late);
  await late.subscribeAsync(watched, { qos: 1 });
  await late.subscribeAsync(topics.status(k1), { qos: 1 });
  await lateInbox.next((m) => m.payload === "k1 online (control)");
  assert.equal(lateInbox.seen.filter(isForged), []);
});

test("subscribing to another device's ack is refused with 0x80, the rest of the SUBSCRIBE granted", async () => {
  const refusedBefore = await metricValue("paylane_gateway_subscriptions_refused_total");
  const spy = await device(k1, SECRET.k1);
  const spyInbox = recorder(spy);
  const codes = await subscribeCodes(spy, [
    topics.ack(k2),
    topics.ack(k1),
    "paylane/v1/+/k2/ack",
    "paylane/v1/s1/+/ack",
    "#",
    topics.cloudStatus,
  ]);
  assert.equal(codes, [128, 1, 128, 128, 128, 1]);
  assert.is(await metricValue("paylane_gateway_subscriptions_refused_total"), refusedBefore + 4);
  // The connection stays up.
  assert.ok(spy.connected);

  const owner = await device(k2, SECRET.k2);
  await owner.subscribeAsync(topics.ack(k2), { qos: 1 });
  const ownerInbox = recorder(owner);
  const cloud = await bridge();
  await cloud.publishAsync(topics.ack(k2), JSON.stringify({ upTo: 7 }), { qos: 1 });
  await cloud.publishAsync(topics.ack(k1), JSON.stringify({ upTo: 3 }), { qos: 1 });
  await ownerInbox.next((m) => m.topic === topics.ack(k2));
  // k1 gets its own ack after k2's was published, and never k2's.
  await spyInbox.next((m) => m.topic === topics.ack(k1));
  assert.equal(
    spyInbox.seen.map((m) => m.topic),
    [topics.ack(k1)],
  );
});

test("a device's Will must be its own status", async () => {
  const will = (topic: string) => ({
    topic,
    payload: Buffer.from('{"state":"offline"}'),
    qos: 1 as const,
    retain: true,
  });
  const before = await metricValue("paylane_gateway_auth_failures_total", { reason: "will" });
  assert.is(await refusal({ ...deviceOptions(k1, SECRET.k1), will: will(topics.status(k2)) }), 5);
  assert.is(await refusal({ ...deviceOptions(k1, SECRET.k1), will: will(topics.events(k1)) }), 5);
  assert.is(await refusal({ ...deviceOptions(k1, SECRET.k1), will: will(topics.cloudStatus) }), 5);
  assert.is(await metricValue("paylane_gateway_auth_failures_total", { reason: "will" }), before + 3);

  const cloud = await bridge();
  await cloud.subscribeAsync(topics.status(k1), { qos: 1 });
  const inbox = recorder(cloud);
  const kiosk = await device(k1, SECRET.k1, { will: will(topics.status(k1)) });
  await kiosk.publishAsync(topics.status(k1), "online", { qos: 1, retain: true });
  await inbox.next((m) => m.payload === "online");
  // A lost connection (no DISCONNECT) fires the Will.
  kiosk.stream.destroy();
  const fired = await inbox.next((m) => m.payload === '{"state":"offline"}');
  assert.is(fired.topic, topics.status(k1));
});

test("the bridge receives every device's events and acks them", async () => {
  const cloud = await bridge();
  const grants = await cloud.subscribeAsync(topics.fleet("events"), { qos: 1 });
  assert.is(grants[0]?.qos, 1);
  const cloudInbox = recorder(cloud);
  cloud.on("message", (topic, payload) => {
    // Ack on the device's own ack topic, as the bridge does after its commit.
    if (topic !== topics.events(k3)) return;
    const { seq } = JSON.parse(payload.toString()) as { seq: number };
    cloud.publish(topics.ack(k3), JSON.stringify({ upTo: seq }), { qos: 1 });
  });

  const kiosk = await device(k3, SECRET.k3);
  await kiosk.subscribeAsync(topics.ack(k3), { qos: 1 });
  const kioskInbox = recorder(kiosk);
  await kiosk.publishAsync(topics.events(k3), JSON.stringify({ seq: 42 }), { qos: 1 });

  const event = await cloudInbox.next((m) => m.topic === topics.events(k3));
  assert.equal(JSON.parse(event.payload), { seq: 42 });
  const ack = await kioskInbox.next((m) => m.topic === topics.ack(k3));
  assert.equal(JSON.parse(ack.payload), { upTo: 42 });
  assert.ok((await metricValue("paylane_gateway_messages_published_total", { channel: "events" })) >= 1);
});

test("the bridge's cloud status is retained; its $share subscription is granted (shared-subscriptions.test.ts)", async () => {
  const cloud = await bridge({
    will: { topic: topics.cloudStatus, payload: Buffer.from('{"state":"offline"}'), qos: 1, retain: true },
  });
  await cloud.publishAsync(topics.cloudStatus, '{"state":"online"}', { qos: 1, retain: true });
  const kiosk = await device(k1, SECRET.k1);
  const inbox = recorder(kiosk);
  await kiosk.subscribeAsync(topics.cloudStatus, { qos: 1 });
  const status = await inbox.next((m) => m.topic === topics.cloudStatus);
  assert.is(status.payload, '{"state":"online"}');

  assert.equal(await subscribeCodes(cloud, ["$share/ingest/paylane/v1/+/+/events"]), [1]);
  // The bridge may not publish as a device.
  const gone = closed(cloud);
  cloud.publish(topics.events(k1), "forged", { qos: 1 });
  await gone;
});

test("healthz and metrics answer while the broker runs", async () => {
  const kiosk = await device(k1, SECRET.k1);
  assert.ok(kiosk.connected);
  const app = gatewayOpsApp({ gateway, metrics, logger });

  const health = await app.request("/healthz");
  assert.is(health.status, 200);
  const body = (await health.json()) as { status: string; clients: number };
  assert.is(body.status, "ok");
  assert.is(body.clients, gateway.clients);
  assert.ok(body.clients >= 1);
  assert.is((await app.request("/readyz")).status, 200);

  const scrape = await app.request("/metrics");
  assert.is(scrape.status, 200);
  assert.match(scrape.headers.get("content-type") ?? "", "text/plain");
  const text = await scrape.text();
  for (const name of [
    "paylane_gateway_connections_total",
    "paylane_gateway_auth_failures_total",
    "paylane_gateway_publishes_refused_total",
    "paylane_gateway_subscriptions_refused_total",
    "paylane_gateway_messages_published_total",
    "paylane_gateway_clients",
  ]) {
    assert.match(text, `# TYPE ${name} `);
  }
  assert.match(text, /paylane_gateway_clients [1-9]/);

  const missing = await app.request("/nope");
  assert.is(missing.status, 404);
  assert.is(missing.headers.get("content-type"), "application/problem+json");
});

test("healthz and readyz are 503 problem+json when the broker is not running", async () => {
  const stopped = new Gateway({ registry, port: 0, logger, metrics: new MetricsRegistry() });
  const ops = gatewayOpsApp({ gateway: stopped, metrics });
  assert.is((await ops.request("/readyz")).status, 503);
  const response = await ops.request("/healthz");
  assert.is(response.status, 503);
  assert.is(response.headers.get("content-type"), "application/problem+json");
  const problem = (await response.json()) as { status: number; detail: string };
  assert.is(problem.status, 503);
});

test("a stopped gateway frees its port at once and restarts on it", async () => {
  const own = new MetricsRegistry();
  const first = new Gateway({ registry, port: 0, logger, metrics: own });
  const { port } = await first.start();
  const client = await connect(deviceOptions(k1, SECRET.k1), first);
  const clientClosed = closed(client);
  // A socket that never sends CONNECT is not an aedes client; stop() must end it too.
  const { connect: tcpConnect } = await import("node:net");
  const idle = tcpConnect(port, "127.0.0.1");
  await new Promise<void>((resolve) => idle.once("connect", () => resolve()));
  const idleClosed = new Promise<void>((resolve) => idle.once("close", () => resolve()));

  await first.stop();
  await clientClosed;
  await idleClosed;
  assert.not.ok(first.running);

  // The same instance restarts: its metrics are not registered twice.
  await first.start();
  await first.stop();

  const second = new Gateway({ registry, port, logger, metrics: new MetricsRegistry() });
  assert.is((await second.start()).port, port);
  const again = await connect(deviceOptions(k1, SECRET.k1), second);
  assert.ok(again.connected);
  await again.endAsync(true);
  await second.stop();
});

test("start() on a port in use rejects with EADDRINUSE and leaves nothing running", async () => {
  const busy = new Gateway({ registry, port: gateway.port, logger, metrics: new MetricsRegistry() });
  try {
    await busy.start();
    assert.unreachable("start should fail");
  } catch (err) {
    assert.is((err as NodeJS.ErrnoException).code, "EADDRINUSE");
  }
  assert.not.ok(busy.running);
});

test.run();
