/**
 * The bridge's side of truthful status (docs/status.md), against the aedes
 * gateway with a fake clock: the retained STATE is republished every
 * heartbeatSeconds with a fresh heartbeatAt, and beats stop with the bridge.
 * A device's late Will of an older session is ignored; its own Will is not.
 */
import { Gateway } from "@paylane/gateway";
import {
  type CloudStatus,
  type DeviceAddress,
  deviceIdentity,
  hashSecret,
  Registry,
  type Status,
  serviceUsername,
  topics,
} from "@paylane/protocol";
import { connectAsync, type MqttClient } from "mqtt";
import { pino } from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { FakeTimers } from "../../test/support/fake-timers.ts";
import { Signal } from "../../test/support/signal.ts";
import { Bridge } from "../src/bridge/bridge.ts";
import type { Database } from "../src/db/database.ts";
import { MemoryPresence } from "../src/presence/memory-presence.ts";

const K1: DeviceAddress = { site: "s1", device: "k1" };
const SECRET = { k1: "k1-secret-for-tests", cloud: "cloud-secret-for-tests" };

let gateway: Gateway;
let bridge: Bridge;
let timers: FakeTimers;
let watcher: MqttClient;
const presence = new MemoryPresence();
const signal = new Signal();
const states: CloudStatus[] = [];
/** Statuses the bridge handed to the fleet's listeners. */
const seen: Status[] = [];

test.before(async () => {
  const registry = new Registry({
    version: 1,
    devices: [{ ...K1, secretHash: await hashSecret(SECRET.k1) }],
    services: [{ id: "cloud", role: "bridge", secretHash: await hashSecret(SECRET.cloud) }],
  });
  gateway = new Gateway({ registry, port: 0, logger: pino({ level: "silent" }), metrics: new MetricsRegistry() });
  await gateway.start();
  timers = new FakeTimers(new Date("2024-05-01T09:00:00.000Z"));
  bridge = new Bridge({
    url: `mqtt://127.0.0.1:${gateway.port}`,
    username: serviceUsername("cloud"),
    password: SECRET.cloud,
    // status and heartbeats never reach the database
    db: {} as Database,
    presence,
    isKnownDevice: () => true,
    logger: pino({ level: "silent" }),
    metrics: new MetricsRegistry(),
    now: timers.now,
    timers,
    instance: "test",
    heartbeatSeconds: 3,
  });
  bridge.fleet.on("status", (_device, status) => {
    seen.push(status);
    signal.notify();
  });
  watcher = await connectAsync(`mqtt://127.0.0.1:${gateway.port}`, {
    clientId: "watcher",
    username: serviceUsername("cloud"),
    password: SECRET.cloud,
    protocolVersion: 4,
    reconnectPeriod: 0,
  });
  watcher.on("message", (topic, payload) => {
    if (topic === topics.cloudStatus) states.push(JSON.parse(payload.toString()) as CloudStatus);
    signal.notify();
  });
  await watcher.subscribeAsync(topics.cloudStatus, { qos: 1 });
  await bridge.start();
});

test.after(async () => {
  await bridge.stop();
  await watcher.endAsync(true);
  await gateway.stop();
});

const heartbeats = () => states.filter((s) => s.state === "online");

test("the retained STATE is republished every heartbeatSeconds with a fresh heartbeatAt", async () => {
  await signal.until(() => heartbeats().length >= 1, "the birth", 10_000);
  const [birth] = heartbeats();
  assert.equal(birth, {
    state: "online",
    since: "2024-05-01T09:00:00.000Z",
    instance: "test",
    heartbeatAt: "2024-05-01T09:00:00.000Z",
    heartbeatSeconds: 3,
  });
  timers.advance(3000);
  await signal.until(() => heartbeats().length >= 2, "a heartbeat", 10_000);
  timers.advance(3000);
  await signal.until(() => heartbeats().length >= 3, "another heartbeat", 10_000);
  assert.equal(
    heartbeats().map((s) => s.state === "online" && s.heartbeatAt),
    ["2024-05-01T09:00:00.000Z", "2024-05-01T09:00:03.000Z", "2024-05-01T09:00:06.000Z"],
  );
  assert.ok(
    heartbeats().every((s) => s.state === "online" && s.since === "2024-05-01T09:00:00.000Z"),
    "since stays the start",
  );
});

test("a Will of an older session after a newer birth is ignored; the current session's Will is not", async () => {
  const device = await connectAsync(`mqtt://127.0.0.1:${gateway.port}`, {
    clientId: deviceIdentity.clientId(K1),
    username: deviceIdentity.username(K1),
    password: SECRET.k1,
    protocolVersion: 4,
    reconnectPeriod: 0,
  });
  const status = (json: object) =>
    device.publishAsync(topics.status(K1), JSON.stringify(json), { qos: 1, retain: true });
  const birth = { state: "online", version: "1", bootedAt: "2024-05-01T08:00:00.000Z", protocol: 1 };
  const presenceState = async () => (await presence.get([K1]))[0]!.state;
  await status({ ...birth, session: 8 });
  await signal.until(async () => (await presenceState()) === "online", "online", 10_000);
  // A late Will of session 7 (what a broker publishes for a replaced connection), then a marker birth:
  // messages of one publisher arrive in order, so once the marker is in, the Will was handled before it.
  await status({ state: "offline", session: 7 });
  await status({ ...birth, version: "marker", session: 8 });
  await signal.until(async () => (await presence.get([K1]))[0]!.version === "marker", "the marker birth", 10_000);
  assert.is(await presenceState(), "online");
  assert.not.ok(
    seen.some((s) => s.state === "offline"),
    "the stale Will never reached the fleet's listeners (alerts, ops) either",
  );
  await status({ state: "offline", session: 8 });
  await signal.until(async () => (await presenceState()) === "offline", "offline on its own session's Will", 10_000);
  await device.endAsync(true);
});

test("beats stop with the bridge: the goodbye is the last STATE", async () => {
  await bridge.stop();
  await signal.until(() => states.at(-1)?.state === "offline", "the goodbye", 10_000);
  const count = states.length;
  timers.advance(60_000);
  assert.is(timers.pending, 0, "no heartbeat timer left");
  assert.is(states.length, count);
});

test.run();
