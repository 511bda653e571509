/**
 * Operators on the aedes gateway, through real TCP with mqtt.js clients as
 * `paylane-ops` and Node-RED use it: what each role may publish, what it
 * receives (filtered per message by its granted sites), the `by` the gateway
 * stamps on commands, and revocation through the watched registry file.
 * Every absence ("the viewer never receives site B's status") is proven by a
 * later positive control message that travels the same path.
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
  watchRegistry,
} from "@paylane/protocol";
import { connectAsync, ErrorWithReasonCode, ErrorWithSubackPacket, type IClientOptions, type MqttClient } from "mqtt";
import { pino } from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Gateway, MAX_OPERATOR_PAYLOAD_BYTES } from "../src/gateway.ts";
import { suiteSharing } from "./support/fleet.ts";

/** In memory, or on Redis for operators-on-redis.test.ts. */
const sharing = suiteSharing("operators-suite");

const a1: DeviceAddress = { site: "sa", device: "k1" };
const b1: DeviceAddress = { site: "sb", device: "k1" };
const SECRET: Record<string, string> = {
  a1: "secret-of-a1",
  b1: "secret-of-b1",
  bridge: "secret-of-bridge",
  viewer: "pw-viewer",
  operator: "pw-operator",
  "operator-b": "pw-operator-b",
  admin: "pw-admin",
};

const logger = pino({ level: "silent" });
let dir: string;
let registryPath: string;
let file: RegistryFile;
let metrics: MetricsRegistry;
let gateway: Gateway;
let stopWatching: () => void;
let open: MqttClient[] = [];

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), "paylane-operators-"));
  registryPath = join(dir, "registry.json");
  file = {
    version: 1,
    devices: [
      { ...a1, secretHash: await hashSecret(SECRET.a1!) },
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
  await Registry.save(registryPath, file);
  metrics = new MetricsRegistry();
  gateway = new Gateway({ registry: await Registry.load(registryPath), port: 0, logger, metrics, ...sharing.options });
  await gateway.start();
  // As GatewayService wires it: the registry file is watched.
  stopWatching = watchRegistry(registryPath, (next) => gateway.replaceRegistry(next), logger, { debounceMs: 10 });
});

test.after.each(async () => {
  await Promise.all(open.map((client) => client.endAsync(true)));
  open = [];
});

test.after(async () => {
  stopWatching();
  await gateway.stop();
  await sharing.clear();
  await rm(dir, { recursive: true, force: true });
});

const base: IClientOptions = { reconnectPeriod: 0, protocolVersion: 4, clean: true };

async function connect(options: IClientOptions): Promise<MqttClient> {
  const client = await connectAsync(`mqtt://127.0.0.1:${gateway.port}`, { ...base, ...options });
  open.push(client);
  return client;
}

const device = (address: DeviceAddress, secret: string) =>
  connect({ clientId: deviceIdentity.clientId(address), username: deviceIdentity.username(address), password: secret });
const bridge = () =>
  connect({ clientId: "paylane-bridge-1", username: serviceUsername("cloud"), password: SECRET.bridge });
const ops = (id: string, extra: IClientOptions = {}) =>
  connect({ clientId: `ops-${id}-${open.length}`, username: operatorUsername(id), password: SECRET[id], ...extra });

interface Received {
  topic: string;
  payload: string;
}

/** Records everything a client receives; `next` resolves on the first match. */
function recorder(client: MqttClient) {
  const seen: Received[] = [];
  const waiting: { match: (m: Received) => boolean; resolve: (m: Received) => void }[] = [];
  client.on("message", (topic, payload) => {
    const message = { topic, payload: payload.toString("utf8") };
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

const closed = (client: MqttClient) => new Promise<void>((resolve) => client.once("close", () => resolve()));

async function metricValue(name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = await metrics.getSingleMetric(name)?.get();
  const values = metric?.values.filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l)) ?? [];
  return values.reduce((sum, v) => sum + v.value, 0);
}

test("a viewer publishing a command is refused and disconnected; the kiosk never gets it", async () => {
  const kiosk = await device(a1, SECRET.a1!);
  const got = recorder(kiosk);
  await kiosk.subscribeAsync(topics.cmdAll(a1), { qos: 1 });
  const before = await metricValue("paylane_gateway_publishes_refused_total", { kind: "operator" });
  const viewer = await ops("viewer");
  const gone = closed(viewer);
  viewer.publish(topics.cmd(a1, "reboot"), JSON.stringify({ id: "v-1" }), { qos: 1 });
  await gone;
  assert.is(await metricValue("paylane_gateway_publishes_refused_total", { kind: "operator" }), before + 1);
  // Positive control on the same path: the site's operator's command arrives, the viewer's never did.
  const operator = await ops("operator");
  await operator.publishAsync(topics.cmd(a1, "reboot"), JSON.stringify({ id: "o-1" }), { qos: 1 });
  await got.next((m) => m.payload.includes('"o-1"'));
  assert.not.ok(
    got.seen.some((m) => m.payload.includes('"v-1"')),
    "the viewer's command was delivered",
  );
});

test("an operator of site A commanding site B is refused; B's own operator gets through", async () => {
  const kioskB = await device(b1, SECRET.b1!);
  const got = recorder(kioskB);
  await kioskB.subscribeAsync(topics.cmdAll(b1), { qos: 1 });
  const operatorA = await ops("operator");
  const gone = closed(operatorA);
  operatorA.publish(topics.cmd(b1, "unlock"), JSON.stringify({ id: "a-to-b" }), { qos: 1 });
  await gone;
  const operatorB = await ops("operator-b");
  await operatorB.publishAsync(topics.cmd(b1, "unlock"), JSON.stringify({ id: "b-to-b" }), { qos: 1 });
  await got.next((m) => m.payload.includes('"b-to-b"'));
  assert.not.ok(
    got.seen.some((m) => m.payload.includes('"a-to-b"')),
    "A's operator commanded site B",
  );
});

test("an operator's command reaches its own site's kiosk with `by` stamped by the gateway, whatever it wrote", async () => {
  const kiosk = await device(a1, SECRET.a1!);
  const got = recorder(kiosk);
  await kiosk.subscribeAsync(topics.cmdAll(a1), { qos: 1 });
  const cloud = await bridge();
  const audit = recorder(cloud);
  await cloud.subscribeAsync("paylane/v1/+/+/cmd/+", { qos: 1 });
  const operator = await ops("operator");
  // A forged sender is overwritten; the rest of the command is kept as sent.
  await operator.publishAsync(
    topics.cmd(a1, "unlock"),
    JSON.stringify({ id: "c-1", args: { seconds: 3 }, by: "admin" }),
    { qos: 1 },
  );
  const delivered = JSON.parse((await got.next((m) => m.payload.includes('"c-1"'))).payload);
  assert.equal(delivered, { id: "c-1", args: { seconds: 3 }, by: "operator" });
  const seenByCloud = JSON.parse((await audit.next((m) => m.payload.includes('"c-1"'))).payload);
  assert.is(seenByCloud.by, "operator");
  // Desired configuration is stamped the same way.
  await kiosk.subscribeAsync(topics.config(a1), { qos: 1 });
  await operator.publishAsync(topics.config(a1), JSON.stringify({ version: 7, settings: {} }), {
    qos: 1,
    retain: true,
  });
  const config = JSON.parse((await got.next((m) => m.topic === topics.config(a1))).payload);
  assert.equal(config, { version: 7, settings: {}, by: "operator" });
});

test("an operator's command that is not a JSON object is refused with its reason, never delivered", async () => {
  const kiosk = await device(a1, SECRET.a1!);
  const got = recorder(kiosk);
  await kiosk.subscribeAsync(topics.cmdAll(a1), { qos: 1 });
  for (const payload of ["reboot now", "[1,2]", "42"]) {
    const operator = await ops("operator");
    const gone = closed(operator);
    operator.publish(topics.cmd(a1, "reboot"), payload, { qos: 1 });
    await gone;
  }
  const operator = await ops("operator");
  await operator.publishAsync(topics.cmd(a1, "reboot"), JSON.stringify({ id: "good" }), { qos: 1 });
  await got.next((m) => m.payload.includes('"good"'));
  assert.is(got.seen.length, 1, `only the JSON object arrives: ${JSON.stringify(got.seen)}`);
});

test("a viewer subscribed with + for the site receives only its granted site's statuses; admin receives every site", async () => {
  const kioskA = await device(a1, SECRET.a1!);
  const kioskB = await device(b1, SECRET.b1!);
  const filtersBefore = await metricValue("paylane_gateway_forwards_filtered_total");
  const viewer = await ops("viewer");
  const admin = await ops("admin");
  const seenByViewer = recorder(viewer);
  const seenByAdmin = recorder(admin);
  assert.equal(await subscribeCodes(viewer, ["paylane/v1/+/+/status"]), [1]);
  assert.equal(await subscribeCodes(admin, ["paylane/v1/+/+/status"]), [1]);
  // B first, then A: once A's arrives at the viewer, B's had its chance on the same path.
  await kioskB.publishAsync(topics.status(b1), JSON.stringify({ state: "online", n: 1 }), { qos: 1 });
  await kioskA.publishAsync(topics.status(a1), JSON.stringify({ state: "online", n: 1 }), { qos: 1 });
  await seenByViewer.next((m) => m.topic === topics.status(a1));
  await seenByAdmin.next((m) => m.topic === topics.status(a1));
  await seenByAdmin.next((m) => m.topic === topics.status(b1));
  assert.not.ok(
    seenByViewer.seen.some((m) => m.topic === topics.status(b1)),
    "the viewer of site sa received site sb's status",
  );
  assert.ok((await metricValue("paylane_gateway_forwards_filtered_total")) > filtersBefore);
  // Retained messages delivered on SUBSCRIBE are filtered the same way.
  await kioskB.publishAsync(topics.status(b1), JSON.stringify({ state: "online" }), { qos: 1, retain: true });
  await kioskA.publishAsync(topics.status(a1), JSON.stringify({ state: "online" }), { qos: 1, retain: true });
  const late = await ops("viewer");
  const seenLate = recorder(late);
  await late.subscribeAsync(["paylane/v1/sb/+/status", "paylane/v1/+/+/status"], { qos: 1 }).catch(() => {});
  await seenLate.next((m) => m.topic === topics.status(a1));
  assert.not.ok(
    seenLate.seen.some((m) => m.topic === topics.status(b1)),
    "a retained status of sb leaked",
  );
  // Clean the retained statuses for the other tests.
  await kioskA.publishAsync(topics.status(a1), "", { qos: 1, retain: true });
  await kioskB.publishAsync(topics.status(b1), "", { qos: 1, retain: true });
});

test("a viewer may not read events, ack, errors or commands, nor another site by name", async () => {
  const viewer = await ops("viewer");
  assert.equal(
    await subscribeCodes(viewer, [
      topics.events(a1),
      "paylane/v1/+/+/events",
      topics.ack(a1),
      topics.errors(a1),
      topics.cmdAll(a1),
      "paylane/v1/#",
      "paylane/v1/sb/+/status",
      topics.telemetry(a1),
    ]),
    [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 1],
  );
});

test("an operator may not set a Will: CONNACK 5", async () => {
  try {
    await ops("operator", {
      will: { topic: topics.cmd(a1, "reboot"), payload: Buffer.from("{}"), qos: 0, retain: false },
    });
    assert.unreachable("the CONNECT with a Will should have been refused");
  } catch (err) {
    assert.instance(err, ErrorWithReasonCode);
    assert.is((err as ErrorWithReasonCode).code, 5);
  }
});

test("an operator cannot take over another identity's session by its client id: CONNACK 5, the bridge stays", async () => {
  const cloud = await bridge();
  const admin = await ops("admin", { clientId: "ops-admin-laptop" });
  for (const [clientId, who] of [
    ["paylane-bridge-1", "viewer"],
    ["ops-admin-laptop", "operator"],
  ] as const) {
    try {
      await ops(who, { clientId });
      assert.unreachable(`${who} took client id ${clientId}`);
    } catch (err) {
      assert.instance(err, ErrorWithReasonCode);
      assert.is((err as ErrorWithReasonCode).code, 5);
    }
  }
  // Both sessions are still up: a round trip through each.
  await cloud.subscribeAsync(topics.cloudStatus, { qos: 1 });
  await admin.subscribeAsync(topics.cloudStatus, { qos: 1 });
  assert.ok(cloud.connected && admin.connected);
  // The same identity may still take over its own session (a reconnect over a half-open one).
  const again = await ops("admin", { clientId: "ops-admin-laptop" });
  assert.ok(again.connected);
});

test("an operator's oversized command is refused at the gateway, so the cloud never republishes a packet too big", async () => {
  const kiosk = await device(a1, SECRET.a1!);
  const got = recorder(kiosk);
  await kiosk.subscribeAsync(topics.cmdAll(a1), { qos: 1 });
  const operator = await ops("operator");
  const gone = closed(operator);
  const pad = "x".repeat(MAX_OPERATOR_PAYLOAD_BYTES);
  operator.publish(topics.cmd(a1, "reboot"), JSON.stringify({ id: "big", args: { pad } }), { qos: 1 });
  await gone;
  const control = await ops("operator");
  await control.publishAsync(topics.cmd(a1, "reboot"), JSON.stringify({ id: "small" }), { qos: 1 });
  await got.next((m) => m.payload.includes('"small"'));
  assert.not.ok(
    got.seen.some((m) => m.payload.includes('"big"')),
    "the oversized command was delivered",
  );
});

test("removing an operator from the registry file cuts its live session and refuses its reconnect; a narrowed grant reconnects under the new grant", async () => {
  const viewer = await ops("viewer");
  const admin = await ops("admin");
  const viewerGone = closed(viewer);
  const adminGone = closed(admin);
  const operator = await ops("operator");
  const operatorStays = recorder(operator);
  await operator.subscribeAsync(topics.status(a1), { qos: 1 });

  const next: RegistryFile = {
    ...file,
    operators: (file.operators ?? [])
      .filter((o) => o.id !== "viewer")
      .map((o) => (o.id === "admin" ? { ...o, role: "viewer" as const, sites: ["sb"] } : o)),
  };
  await Registry.save(registryPath, next);
  await viewerGone;
  await adminGone;
  try {
    await ops("viewer");
    assert.unreachable("a removed operator reconnected");
  } catch (err) {
    assert.instance(err, ErrorWithReasonCode);
    assert.is((err as ErrorWithReasonCode).code, 4);
  }
  // The former admin is now a viewer of sb: it reconnects, and may read sb only.
  const demoted = await ops("admin");
  assert.equal(await subscribeCodes(demoted, ["paylane/v1/sa/+/status", "paylane/v1/sb/+/status"]), [0x80, 1]);
  // The untouched operator's session was left alone.
  const kiosk = await device(a1, SECRET.a1!);
  await kiosk.publishAsync(topics.status(a1), JSON.stringify({ state: "online" }), { qos: 1 });
  await operatorStays.next((m) => m.topic === topics.status(a1));
  assert.ok(operator.connected);
  assert.ok((await metricValue("paylane_gateway_revocations_total", { reason: "grant-changed" })) >= 1);
  await Registry.save(registryPath, file);
});

test.run();
