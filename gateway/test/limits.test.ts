/**
 * The gateway's client limits in process, each with a small setting so the
 * test reaches it in a few packets: the connect-rate limit per address, the
 * connect timeout, the failed-password limit per address, the per-device
 * message rate, and revocation on `replaceRegistry`. Each refusal is seen by
 * the client and counted in the metrics.
 */
import { type Socket, connect as tcpConnect } from "node:net";
import { type DeviceAddress, deviceIdentity, hashSecret, Registry, topics } from "@paylane/protocol";
import { connectAsync, ErrorWithReasonCode, type IClientOptions, type MqttClient } from "mqtt";
import { pino } from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Gateway } from "../src/gateway.ts";
import { suiteSharing } from "./support/fleet.ts";

/** In memory, or on Redis for limits-on-redis.test.ts. */
const sharing = suiteSharing("limits-suite");

import type { GatewayLimits } from "../src/limits.ts";

const k1: DeviceAddress = { site: "s1", device: "k1" };
const k2: DeviceAddress = { site: "s1", device: "k2" };
const SECRET = { k1: "secret-of-k1", k2: "secret-of-k2" };
const logger = pino({ level: "silent" });
let registry: Registry;
const running: Gateway[] = [];
const open: MqttClient[] = [];

test.before(async () => {
  registry = new Registry({
    version: 1,
    devices: [
      { ...k1, secretHash: await hashSecret(SECRET.k1) },
      { ...k2, secretHash: await hashSecret(SECRET.k2) },
    ],
    services: [],
  });
});

test.after.each(async () => {
  await Promise.all(open.splice(0).map((c) => c.endAsync(true)));
  await Promise.all(running.splice(0).map((g) => g.stop()));
});

test.after(async () => {
  await sharing.clear();
});

async function gatewayWith(limits: Partial<GatewayLimits>, reg = registry) {
  const metrics = new MetricsRegistry();
  const gateway = new Gateway({ registry: reg, port: 0, logger, metrics, limits, ...sharing.options });
  await gateway.start();
  running.push(gateway);
  const value = async (name: string, labels: Record<string, string> = {}) => {
    const metric = await metrics.getSingleMetric(name)?.get();
    const values = metric?.values.filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l)) ?? [];
    return values.reduce((sum, v) => sum + v.value, 0);
  };
  return { gateway, value };
}

const login = (address: DeviceAddress, secret: string): IClientOptions => ({
  clientId: deviceIdentity.clientId(address),
  username: deviceIdentity.username(address),
  password: secret,
  reconnectPeriod: 0,
  protocolVersion: 4,
});

async function device(gateway: Gateway, address: DeviceAddress, secret: string): Promise<MqttClient> {
  const client = await connectAsync(`mqtt://127.0.0.1:${gateway.port}`, login(address, secret));
  open.push(client);
  return client;
}

async function refusal(gateway: Gateway, address: DeviceAddress, secret: string): Promise<number> {
  try {
    await device(gateway, address, secret);
  } catch (err) {
    assert.instance(err, ErrorWithReasonCode);
    return (err as ErrorWithReasonCode).code;
  }
  assert.unreachable("the connect should have been refused");
  return 0;
}

const closed = (emitter: Socket | MqttClient) => new Promise<void>((resolve) => emitter.once("close", () => resolve()));

function rawSocket(port: number): Promise<Socket> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: "127.0.0.1", port });
    socket.on("error", () => {});
    socket.once("connect", () => resolve(socket));
  });
}

test("past the per-address connect limit, sockets are closed at once; the counter says how many", async () => {
  const { gateway, value } = await gatewayWith({ connectsPerAddress: 3, connectWindowSeconds: 60 });
  const kept = [await device(gateway, k1, SECRET.k1), await device(gateway, k2, SECRET.k2)];
  const third = await rawSocket(gateway.port);
  // The fourth and fifth are over the limit: closed without a byte.
  for (let i = 0; i < 2; i++) {
    const socket = await rawSocket(gateway.port);
    let bytes = 0;
    socket.on("data", (d: Buffer) => {
      bytes += d.length;
    });
    await closed(socket);
    assert.is(bytes, 0);
  }
  assert.is(await value("paylane_gateway_rate_limited_total", { limit: "connect" }), 2);
  assert.is(await value("paylane_gateway_connections_total"), 3);
  // Connections made before the limit are untouched.
  for (const client of kept) assert.ok(client.connected);
  third.destroy();
});

test("a connection that never sends CONNECT is closed after the connect timeout", async () => {
  const { gateway, value } = await gatewayWith({ connectTimeoutMs: 200 });
  const socket = await rawSocket(gateway.port);
  const started = performance.now();
  await closed(socket);
  const ms = Math.round(performance.now() - started);
  assert.ok(ms >= 150, `closed after ${ms} ms, before the timeout`);
  assert.is(await value("paylane_gateway_connect_timeouts_total"), 1);
});

test("an oversize packet closes only its own connection", async () => {
  const { gateway, value } = await gatewayWith({ maxPacketBytes: 1024 });
  const bystander = await device(gateway, k2, SECRET.k2);
  const client = await device(gateway, k1, SECRET.k1);
  const gone = closed(client);
  client.publish(topics.telemetry(k1), Buffer.alloc(2000), { qos: 0 });
  await gone;
  assert.is(await value("paylane_gateway_oversize_packets_total", { reason: "oversize" }), 1);
  // A packet just under the limit passes.
  await bystander.publishAsync(topics.telemetry(k2), Buffer.alloc(900), { qos: 1 });
  assert.ok(bystander.connected);
});

test("a device publishing faster than its message rate is disconnected and counted", async () => {
  const { gateway, value } = await gatewayWith({ messagesPerSecond: 5 });
  const client = await device(gateway, k1, SECRET.k1);
  const gone = closed(client);
  // 3.1.1 has no negative PUBACK: the sixth message within the second closes the connection.
  for (let i = 0; i < 10; i++) client.publish(topics.telemetry(k1), "{}", { qos: 0 });
  await gone;
  assert.is(await value("paylane_gateway_rate_limited_total", { limit: "messages" }), 1);
  // Another device has its own budget.
  const other = await device(gateway, k2, SECRET.k2);
  for (let i = 0; i < 4; i++) await other.publishAsync(topics.telemetry(k2), "{}", { qos: 1 });
  assert.ok(other.connected);
});

test("after too many failed passwords from an address, its unverified CONNECTs get CONNACK 3; verified ones still get in", async () => {
  // A registry of its own: no secret verified by the other tests.
  const fresh = new Registry({
    version: 1,
    devices: [
      { ...k1, secretHash: await hashSecret(SECRET.k1) },
      { ...k2, secretHash: await hashSecret(SECRET.k2) },
    ],
    services: [],
  });
  const { gateway, value } = await gatewayWith({ authFailuresPerAddress: 2 }, fresh);
  // k2 connects first: its secret is verified from now on.
  (await device(gateway, k2, SECRET.k2)).end(true);
  assert.is(await refusal(gateway, k1, "wrong-1"), 4);
  assert.is(await refusal(gateway, k1, "wrong-2"), 4);
  // The limit is reached: even k1's right secret is not checked (no scrypt for this address this minute).
  assert.is(await refusal(gateway, k1, SECRET.k1), 3);
  assert.is(await value("paylane_gateway_rate_limited_total", { limit: "auth-failures" }), 1);
  // k2's secret was verified before: a sha256, not a check, so it still connects.
  const k2again = await device(gateway, k2, SECRET.k2);
  assert.ok(k2again.connected);
});

test("replaceRegistry disconnects sessions of removed or rotated identities, keeps the others", async () => {
  const { gateway, value } = await gatewayWith({});
  const a = await device(gateway, k1, SECRET.k1);
  const b = await device(gateway, k2, SECRET.k2);
  const aGone = closed(a);
  const bGone = closed(b);
  const newHash = await hashSecret("new-k2");
  gateway.replaceRegistry(new Registry({ version: 1, devices: [{ ...k2, secretHash: newHash }], services: [] }));
  await Promise.all([aGone, bGone]);
  assert.is(await value("paylane_gateway_revocations_total", { reason: "removed" }), 1);
  assert.is(await value("paylane_gateway_revocations_total", { reason: "secret-changed" }), 1);
  assert.is(await refusal(gateway, k1, SECRET.k1), 4);
  assert.is(await refusal(gateway, k2, SECRET.k2), 4);
  const c = await device(gateway, k2, "new-k2");
  // The same identity with the same hash in the next registry (k1 enrolled again): the session stays.
  gateway.replaceRegistry(
    new Registry({
      version: 1,
      devices: [
        { ...k2, secretHash: newHash },
        { ...k1, secretHash: await hashSecret(SECRET.k1) },
      ],
      services: [],
    }),
  );
  await c.publishAsync(topics.telemetry(k2), "{}", { qos: 1 });
  assert.ok(c.connected);
  assert.is(await value("paylane_gateway_revocations_total"), 2);
  await device(gateway, k1, SECRET.k1);
});

test.run();
