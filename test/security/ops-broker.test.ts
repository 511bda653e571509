/**
 * Security review of issue 14 on the broker (aedes gateway, real TCP, mqtt.js
 * clients as the attacker would use them). Hostile conditions of
 * design.md: a stolen kiosk's secret, anyone on the broker's port, operators
 * of one site trying another. Each absence ("B's retained config never
 * reaches A's operator") is proven by a positive control that travels the
 * same path afterwards. gateway/test/operators.test.ts covers the basic role
 * matrix; this file tries what an attacker would try next.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type DeviceAddress,
  deviceIdentity,
  hashSecret,
  operatorUsername,
  Registry,
  type RegistryFile,
  serviceUsername,
  topics,
} from "@paylane/protocol";
import { connectAsync, ErrorWithReasonCode, ErrorWithSubackPacket, type IClientOptions, type MqttClient } from "mqtt";
import { pino } from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Gateway } from "../../gateway/src/gateway.ts";

const a1: DeviceAddress = { site: "sa", device: "k1" };
const a2: DeviceAddress = { site: "sa", device: "k2" };
const b1: DeviceAddress = { site: "sb", device: "k1" };
const SECRET: Record<string, string> = {
  a1: "secret-of-a1",
  a2: "secret-of-a2",
  b1: "secret-of-b1",
  bridge: "secret-of-bridge",
  viewer: "pw-viewer",
  operator: "pw-operator",
  "operator-b": "pw-operator-b",
  admin: "pw-admin",
};
/** The client id the cloud's bridge uses with the default CLOUD_INSTANCE (cloud/src/bridge/bridge.ts). */
const BRIDGE_CLIENT_ID = "paylane-cloud-cloud-1";

const logger = pino({ level: "silent" });
let dir: string;
let gateway: Gateway;
let open: MqttClient[] = [];

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), "paylane-ops-broker-"));
  const file: RegistryFile = {
    version: 1,
    devices: [
      { ...a1, secretHash: await hashSecret(SECRET.a1!) },
      { ...a2, secretHash: await hashSecret(SECRET.a2!) },
      { ...b1, secretHash: await hashSecret(SECRET.b1!) },
    ],
    services: [{ id: "cloud", role: "bridge", secretHash: await hashSecret(SECRET.bridge!) }],
    operators: [
      { id: "viewer", role: "viewer", sites: ["sa"], secretHash: await hashSecret(SECRET.viewer!) },
      { id: "operator", role: "operator", sites: ["sa"], secretHash: await hashSecret(SECRET.operator!) },
      { id: "operator-b", role: "operator", sites: ["sb"], secretHash: await hashSecret(SECRET["operator-b"]!) },
      { id: "admin", role: "admin", sites: [], secretHash: await hashSecret(SECRET.admin!) },
    ],
  };
  const path = join(dir, "registry.json");
  await Registry.save(path, file);
  gateway = new Gateway({ registry: await Registry.load(path), port: 0, logger, metrics: new MetricsRegistry() });
  await gateway.start();
});

test.after.each(async () => {
  await Promise.all(open.map((client) => client.endAsync(true)));
  open = [];
});

test.after(async () => {
  await gateway.stop();
  await rm(dir, { recursive: true, force: true });
});

const base: IClientOptions = { reconnectPeriod: 0, protocolVersion: 4, clean: true };
let counter = 0;

async function connect(options: IClientOptions): Promise<MqttClient> {
  const client = await connectAsync(`mqtt://127.0.0.1:${gateway.port}`, { ...base, ...options });
  open.push(client);
  return client;
}

const device = (address: DeviceAddress, secret: string, extra: IClientOptions = {}) =>
  connect({
    clientId: deviceIdentity.clientId(address),
    username: deviceIdentity.username(address),
    password: secret,
    ...extra,
  });
const bridge = (extra: IClientOptions = {}) =>
  connect({ clientId: BRIDGE_CLIENT_ID, username: serviceUsername("cloud"), password: SECRET.bridge, ...extra });
const ops = (id: string, extra: IClientOptions = {}) =>
  connect({ clientId: `ops-${id}-${++counter}`, username: operatorUsername(id), password: SECRET[id], ...extra });

interface Received {
  topic: string;
  payload: string;
  retain: boolean;
}

function recorder(client: MqttClient) {
  const seen: Received[] = [];
  const waiting: { match: (m: Received) => boolean; resolve: (m: Received) => void }[] = [];
  client.on("message", (topic, payload, packet) => {
    const message = { topic, payload: payload.toString("utf8"), retain: packet.retain === true };
    seen.push(message);
    for (const w of waiting.filter((w) => w.match(message))) {
      waiting.splice(waiting.indexOf(w), 1);
      w.resolve(message);
    }
  });
  return {
    seen,
    next(match: (m: Received) => boolean, what = "a message"): Promise<Received> {
      const already = seen.find(match);
      if (already) return Promise.resolve(already);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), 5000);
        waiting.push({
          match,
          resolve: (m) => {
            clearTimeout(timer);
            resolve(m);
          },
        });
      });
    },
  };
}

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

/** Whether `client` still answers a round trip (a SUBACK), or was closed meanwhile. */
async function stillConnected(client: MqttClient): Promise<boolean> {
  if (!client.connected) return false;
  const alive = await Promise.race([
    client.subscribeAsync(topics.cloudStatus, { qos: 0 }).then(
      () => true,
      () => false,
    ),
    new Promise<boolean>((resolve) => client.once("close", () => resolve(false))),
  ]);
  return alive && client.connected;
}

const closed = (client: MqttClient) =>
  new Promise<void>((resolve) => {
    if (client.disconnected || !client.connected) resolve();
    client.once("close", () => resolve());
  });

test("a stolen kiosk secret cannot command or configure any kiosk (itself included) nor speak for the cloud", async () => {
  const cloud = await bridge();
  const watch = recorder(cloud);
  await cloud.subscribeAsync("paylane/v1/#", { qos: 1 });
  const victim = await device(a2, SECRET.a2!);
  const victimGot = recorder(victim);
  await victim.subscribeAsync([topics.deviceTree(a2), topics.cloudStatus], { qos: 1 });
  const attacks: Array<[topic: string, payload: string, retain: boolean]> = [
    [topics.cmd(a2, "unlock"), JSON.stringify({ id: "stolen-1", args: { seconds: 300 } }), false],
    [topics.config(a2), JSON.stringify({ version: 99, settings: { offlineCaps: { perCardMinor: 1e9 } } }), true],
    [topics.cmd(a1, "unlock"), JSON.stringify({ id: "stolen-2", args: { seconds: 300 } }), false],
    [topics.config(a1), JSON.stringify({ version: 99, settings: { mode: "out-of-service" } }), true],
    [topics.ack(a1), JSON.stringify({ upTo: 1_000_000, stolen: 3 }), false],
    [topics.alert("sa", "device-offline:sa:k2"), JSON.stringify({ stolen: 4, state: "firing" }), true],
    [topics.alert("sa", "device-offline:sa:k2"), JSON.stringify({ stolen: 5, state: "resolved" }), false],
    [topics.eventsMeta(a1), JSON.stringify({ stolen: 6 }), false],
    [topics.eventsMeta(a2), JSON.stringify({ stolen: 7 }), false],
    [topics.cloudStatus, JSON.stringify({ state: "offline", stolen: 8 }), true],
  ];
  for (const [topic, payload, retain] of attacks) {
    const thief = await device(a1, SECRET.a1!);
    const gone = closed(thief);
    thief.publish(topic, payload, { qos: 1, retain });
    await gone; // refused: the gateway closes the connection [MQTT-3.3.5-2]
  }
  // Controls on the same paths: the bridge's own messages get through after the attempts.
  await cloud.publishAsync(topics.cmd(a2, "self-test"), JSON.stringify({ id: "control" }), { qos: 1 });
  await victimGot.next((m) => m.payload.includes('"control"'), "the control command");
  const thief = await device(a1, SECRET.a1!);
  await thief.publishAsync(topics.telemetry(a1), JSON.stringify({ control: true }), { qos: 1 });
  await watch.next((m) => m.topic === topics.telemetry(a1), "the thief's own telemetry");
  const leaked = [...watch.seen, ...victimGot.seen].filter((m) => m.payload.includes("stolen"));
  assert.equal(leaked, [], "a stolen kiosk's message reached a subscriber");
  // Nothing retained either: a late subscriber sees no forged config, alert nor cloud status.
  const late = await bridge({ clientId: "paylane-cloud-late" });
  const lateGot = recorder(late);
  await late.subscribeAsync(["paylane/v1/+/+/config", "paylane/v1/cloud/#"], { qos: 1 });
  await cloud.publishAsync(topics.eventsMeta(a1), JSON.stringify({ control: "late" }), { qos: 1 });
  await lateGot.next((m) => m.payload.includes('"late"'), "the late control");
  assert.equal(
    lateGot.seen.filter((m) => m.payload.includes("stolen")),
    [],
    "a forged retained message was kept",
  );
});

test("a stolen kiosk secret cannot read the fleet: other kiosks' channels, the fleet's configs, alerts and events feed", async () => {
  const thief = await device(a1, SECRET.a1!);
  assert.equal(
    await subscribeCodes(thief, [
      topics.cmdAll(a2),
      topics.config(a2),
      "paylane/v1/sa/+/config",
      "paylane/v1/sa/+/cmd/+",
      topics.alerts("sa"),
      topics.fleetEventsMeta("sa"),
      topics.eventsMeta(a1),
      "paylane/v1/cloud/#",
      "paylane/v1/sa/#",
      `$share/g/${topics.events(a2)}`,
      "#",
      // its own tree and the cloud's status stay readable
      topics.deviceTree(a1),
      topics.cloudStatus,
    ]),
    [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 1, 1],
  );
});

test("operators and viewers cannot speak for the cloud: no status, no alert, no events feed, no ack or errors", async () => {
  const cloud = await bridge();
  const watch = recorder(cloud);
  await cloud.subscribeAsync("paylane/v1/#", { qos: 1 });
  const forged: Array<[who: string, topic: string, retain: boolean]> = [
    ["operator", topics.cloudStatus, true],
    ["admin", topics.cloudStatus, true],
    ["operator", topics.alert("sa", "staff-called:sa:k1"), true],
    ["admin", topics.alert("sb", "staff-called:sb:k1"), true],
    ["operator", topics.eventsMeta(a1), false],
    ["admin", topics.eventsMeta(b1), false],
    ["operator", topics.ack(a1), false],
    ["admin", topics.errors(b1), false],
    ["operator", topics.status(a1), true],
    ["admin", topics.state(b1), true],
    ["admin", topics.events(b1), false],
    // a command is never retained, not even by an admin
    ["admin", topics.cmd(b1, "unlock"), true],
    ["viewer", topics.config(a1), true],
  ];
  for (const [who, topic, retain] of forged) {
    const client = await ops(who);
    const gone = closed(client);
    client.publish(topic, JSON.stringify({ id: "forged", forged: true, state: "offline" }), { qos: 1, retain });
    await gone;
  }
  await cloud.publishAsync(topics.eventsMeta(a1), JSON.stringify({ control: true }), { qos: 1 });
  await watch.next((m) => m.payload.includes('"control"'), "the control");
  assert.equal(
    watch.seen.filter((m) => m.payload.includes("forged")),
    [],
    "an operator's forged cloud message was delivered",
  );
});

test("an operator of site A reads nothing of site B: + and # filters, retained configs, alerts and the events feed", async () => {
  const cloud = await bridge();
  // What site B holds retained: a desired config, a reported state, a status and a firing alert.
  await cloud.publishAsync(topics.config(b1), JSON.stringify({ version: 1, settings: {}, secretOfB: true }), {
    qos: 1,
    retain: true,
  });
  await cloud.publishAsync(topics.alert("sb", "paper-out:sb:k1"), JSON.stringify({ secretOfB: true }), {
    qos: 1,
    retain: true,
  });
  const kioskB = await device(b1, SECRET.b1!);
  await kioskB.publishAsync(topics.state(b1), JSON.stringify({ secretOfB: true }), { qos: 1, retain: true });
  await kioskB.publishAsync(topics.status(b1), JSON.stringify({ secretOfB: true }), { qos: 1, retain: true });
  // And site A the same, as the positive control.
  await cloud.publishAsync(topics.config(a1), JSON.stringify({ version: 1, settings: {}, ofA: true }), {
    qos: 1,
    retain: true,
  });
  await cloud.publishAsync(topics.alert("sa", "paper-out:sa:k1"), JSON.stringify({ ofA: true }), {
    qos: 1,
    retain: true,
  });
  try {
    for (const who of ["viewer", "operator"]) {
      const op = await ops(who);
      const got = recorder(op);
      assert.equal(
        await subscribeCodes(op, [
          "#",
          "paylane/#",
          "paylane/v1/#",
          "paylane/v1/+/#",
          "paylane/v1/sb/#",
          "paylane/v1/sb/+/config",
          "paylane/v1/+/+/+",
          "paylane/v1/cloud/#",
          "paylane/v1/cloud/alerts/#",
          "paylane/v1/cloud/alerts/sb/+",
          "paylane/v1/cloud/events/sb/+",
          "paylane/v1/cloud/+/+/+",
          "$share/g/paylane/v1/+/+/status",
          "$SYS/#",
          "paylane/v1/+/+/events",
          "paylane/v1/+/+/cmd/+",
        ]),
        new Array(16).fill(0x80),
        `${who}: every over-wide or foreign filter is refused`,
      );
      assert.equal(
        await subscribeCodes(op, [
          "paylane/v1/+/+/config",
          "paylane/v1/+/+/state",
          "paylane/v1/+/+/status",
          topics.alerts("+"),
          topics.fleetEventsMeta("+"),
        ]),
        [1, 1, 1, 1, 1],
      );
      // Live messages too: B's feed first, then A's on the same path.
      await cloud.publishAsync(topics.eventsMeta(b1), JSON.stringify({ secretOfB: true }), { qos: 1 });
      await cloud.publishAsync(topics.eventsMeta(a1), JSON.stringify({ ofA: true }), { qos: 1 });
      await got.next((m) => m.topic === topics.eventsMeta(a1), `${who}: A's events feed`);
      await got.next((m) => m.topic === topics.config(a1), `${who}: A's retained config`);
      await got.next((m) => m.topic === topics.alert("sa", "paper-out:sa:k1"), `${who}: A's retained alert`);
      assert.equal(
        got.seen.filter((m) => m.payload.includes("secretOfB")),
        [],
        `${who} of site A received site B's messages`,
      );
    }
  } finally {
    await cloud.publishAsync(topics.config(b1), "", { qos: 1, retain: true });
    await cloud.publishAsync(topics.config(a1), "", { qos: 1, retain: true });
    await cloud.publishAsync(topics.alert("sb", "paper-out:sb:k1"), "", { qos: 1, retain: true });
    await cloud.publishAsync(topics.alert("sa", "paper-out:sa:k1"), "", { qos: 1, retain: true });
    await kioskB.publishAsync(topics.state(b1), "", { qos: 1, retain: true });
    await kioskB.publishAsync(topics.status(b1), "", { qos: 1, retain: true });
  }
});

test("a forged `by` is overwritten in the retained config a late kiosk gets, and on a QoS 2 command", async () => {
  const operator = await ops("operator");
  await operator.publishAsync(
    topics.config(a1),
    JSON.stringify({ version: 5, settings: { mode: "maintenance" }, by: "admin" }),
    { qos: 1, retain: true },
  );
  await operator.publishAsync(topics.cmd(a1, "reboot"), JSON.stringify({ id: "q2", by: "cloud" }), { qos: 2 });
  // The kiosk connects later: the retained copy is what it gets.
  const kiosk = await device(a1, SECRET.a1!);
  const got = recorder(kiosk);
  await kiosk.subscribeAsync(topics.config(a1), { qos: 1 });
  const config = JSON.parse((await got.next((m) => m.topic === topics.config(a1), "the retained config")).payload);
  assert.is(config.by, "operator");
  await kiosk.subscribeAsync(topics.cmdAll(a1), { qos: 2 });
  await operator.publishAsync(topics.cmd(a1, "reboot"), JSON.stringify({ id: "q2-live", by: "cloud" }), { qos: 2 });
  const command = JSON.parse((await got.next((m) => m.payload.includes('"q2-live"'), "the QoS 2 command")).payload);
  assert.is(command.by, "operator");
  // An operator cannot wipe the retained desired config either (an empty payload is not a JSON object).
  const wiper = await ops("operator");
  const gone = closed(wiper);
  wiper.publish(topics.config(a1), "", { qos: 1, retain: true });
  await gone;
  const later = await bridge({ clientId: "paylane-cloud-later" });
  const laterGot = recorder(later);
  await later.subscribeAsync(topics.config(a1), { qos: 1 });
  const kept = await laterGot.next((m) => m.topic === topics.config(a1), "the kept config");
  assert.is(JSON.parse(kept.payload).version, 5);
  await later.publishAsync(topics.config(a1), "", { qos: 1, retain: true });
});

test("a viewer or operator may not leave a Will on any topic: CONNACK 5", async () => {
  for (const [who, topic] of [
    ["viewer", topics.cloudStatus],
    ["operator", topics.config(a1)],
    ["admin", topics.cloudStatus],
  ] as const) {
    try {
      await ops(who, { will: { topic, payload: Buffer.from('{"state":"offline"}'), qos: 1, retain: true } });
      assert.unreachable(`${who}'s CONNECT with a Will on ${topic} was accepted`);
    } catch (err) {
      assert.instance(err, ErrorWithReasonCode);
      assert.is((err as ErrorWithReasonCode).code, 5);
    }
  }
});

test("a kiosk's client id cannot be taken by an operator (a session takeover would knock the kiosk off)", async () => {
  const kiosk = await device(a1, SECRET.a1!);
  try {
    await connect({
      clientId: deviceIdentity.clientId(a1),
      username: operatorUsername("admin"),
      password: SECRET.admin,
    });
    assert.unreachable("an admin took a kiosk's client id");
  } catch (err) {
    assert.instance(err, ErrorWithReasonCode);
  }
  assert.ok(kiosk.connected, "the kiosk was knocked off");
});

// A viewer, who may publish nothing, connecting with the cloud bridge's
// client id: aedes would take the session over, the bridge's Will (cloud
// offline, retained) would reach every kiosk, and a viewer reconnecting in a
// loop would keep the whole fleet on the offline path (fixed in d8287de).
test("a viewer connecting with the cloud bridge's client id does not knock the cloud off the broker", async () => {
  const cloud = await bridge({
    will: { topic: topics.cloudStatus, payload: Buffer.from('{"state":"offline"}'), qos: 1, retain: true },
  });
  await cloud.publishAsync(topics.cloudStatus, JSON.stringify({ state: "online" }), { qos: 1, retain: true });
  const kiosk = await device(a1, SECRET.a1!);
  const got = recorder(kiosk);
  await kiosk.subscribeAsync([topics.cloudStatus, topics.deviceTree(a1)], { qos: 1 });
  await got.next((m) => m.topic === topics.cloudStatus && m.payload.includes("online"), "the cloud online");
  let refused = false;
  try {
    await connect({ clientId: BRIDGE_CLIENT_ID, username: operatorUsername("viewer"), password: SECRET.viewer });
  } catch {
    refused = true;
  }
  const cloudStillUp = await stillConnected(cloud);
  // Control: a round trip through the kiosk's connection, after which the Will would have arrived.
  await kiosk.subscribeAsync(topics.cloudStatus, { qos: 1 });
  const wentOffline = got.seen.some((m) => m.topic === topics.cloudStatus && m.payload.includes("offline"));
  const cleaner = await bridge({ clientId: "paylane-cloud-cleaner" });
  await cleaner.publishAsync(topics.cloudStatus, "", { qos: 1, retain: true });
  assert.equal(
    { viewerRefused: refused, bridgeStillConnected: cloudStillUp, kioskGotCloudOffline: wentOffline },
    { viewerRefused: true, bridgeStillConnected: true, kioskGotCloudOffline: false },
    "a viewer took over the bridge's session",
  );
});

test("an operator of site A connecting with an admin's client id does not take the admin's session", async () => {
  const admin = await connect({
    clientId: "paylane-ops-admin-laptop",
    username: operatorUsername("admin"),
    password: SECRET.admin,
  });
  let refused = false;
  try {
    await connect({
      clientId: "paylane-ops-admin-laptop",
      username: operatorUsername("viewer"),
      password: SECRET.viewer,
    });
  } catch {
    refused = true;
  }
  const adminUp = await stillConnected(admin);
  assert.ok(refused || adminUp, "the viewer took over the admin's session");
});

test.run();
