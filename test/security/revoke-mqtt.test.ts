/**
 * Issue 12: "A device removed from the registry keeps its live MQTT session
 * ... until restarted." Now: "Removing or rotating a device identity takes
 * effect without a restart: the gateway disconnects its live session within
 * 1 s and refuses its reconnect."
 *
 * The real `paylane-gateway` CLI watches its REGISTRY_PATH. The test rewrites
 * the file as an operator's tool does (`Registry.save`: temp file + rename)
 * and times the live session's end from the moment the file is in place.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type DeviceAddress, hashSecret, Registry, type RegistryFile, topics } from "@paylane/protocol";
import { connectAsync, ErrorWithReasonCode, type MqttClient } from "mqtt";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { deviceLogin, type GatewayCli, metric, runGateway } from "./gateway-cli.ts";

const K1: DeviceAddress = { site: "revoke", device: "k1" };
const K2: DeviceAddress = { site: "revoke", device: "k2" };
const SECRET = { k1: "secret-of-k1-0123456789", k2: "secret-of-k2-0123456789", k2new: "rotated-k2-0123456789" };
const REVOKE_BOUND_MS = 1000;

let dir: string;
let registryPath: string;
let cli: GatewayCli;
let mqttPort: number;
let httpPort: number;
let file: RegistryFile;
const open: MqttClient[] = [];

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), "paylane-revoke-mqtt-"));
  registryPath = join(dir, "registry.json");
  file = {
    version: 1,
    devices: [
      { ...K1, secretHash: await hashSecret(SECRET.k1) },
      { ...K2, secretHash: await hashSecret(SECRET.k2) },
    ],
    services: [],
  };
  await Registry.save(registryPath, file);
  cli = runGateway({ REGISTRY_PATH: registryPath, MQTT_PORT: "0" });
  mqttPort = (await cli.logLine("MQTT gateway listening")).port as number;
  httpPort = (await cli.logLine("health and metrics listening")).port as number;
});

test.after(async () => {
  await Promise.all(open.map((c) => c.endAsync(true)));
  await cli?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function device(address: DeviceAddress, secret: string): Promise<MqttClient> {
  const client = await connectAsync(`mqtt://127.0.0.1:${mqttPort}`, {
    ...deviceLogin(address, secret),
    reconnectPeriod: 0,
    protocolVersion: 4,
  });
  open.push(client);
  return client;
}

/** The CONNACK refusal code of a connect that must fail. */
async function refusal(address: DeviceAddress, secret: string): Promise<number> {
  try {
    await device(address, secret);
  } catch (err) {
    assert.instance(err, ErrorWithReasonCode);
    return (err as ErrorWithReasonCode).code;
  }
  assert.unreachable("the connect should have been refused");
  return 0;
}

/** ms from `since` until the client's connection closes; fails past the bound. */
function closedWithin(client: MqttClient, since: () => number, what: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${what}: still connected after ${3 * REVOKE_BOUND_MS} ms`)),
      3 * REVOKE_BOUND_MS,
    );
    client.once("close", () => {
      clearTimeout(timer);
      resolve(Math.round(performance.now() - since()));
    });
  });
}

/** A publish that round-trips through the broker: the session is alive. */
async function alive(client: MqttClient, address: DeviceAddress): Promise<void> {
  await client.publishAsync(topics.telemetry(address), "{}", { qos: 1 });
}

test("a device removed from the registry file loses its live session within 1 s, and its reconnect gets CONNACK 4", async () => {
  const k1 = await device(K1, SECRET.k1);
  const k2 = await device(K2, SECRET.k2);
  let writtenAt = 0;
  const k1Closed = closedWithin(k1, () => writtenAt, "k1 after its removal");

  file = { ...file, devices: file.devices.filter((d) => d.device !== K1.device) };
  await Registry.save(registryPath, file);
  writtenAt = performance.now();
  const ms = await k1Closed;
  console.log(`k1 removed from ${registryPath}: its session closed ${ms} ms after the file was replaced`);
  assert.ok(ms < REVOKE_BOUND_MS, `took ${ms} ms`);

  assert.is(await refusal(K1, SECRET.k1), 4);
  // k2 is untouched.
  assert.ok(k2.connected);
  await alive(k2, K2);
  assert.is(await metric(httpPort, "paylane_gateway_revocations_total", { reason: "removed" }), 1);
  const line = await cli.logLine("identity revoked by the new registry; disconnecting its session");
  assert.is(line.username, "revoke/k1");
  assert.is(line.reason, "removed");
});

test("a rotated secret ends the session that used the old one; the old secret is refused, the new one connects", async () => {
  const k2 = await device(K2, SECRET.k2);
  let writtenAt = 0;
  const k2Closed = closedWithin(k2, () => writtenAt, "k2 after its rotation");

  const newHash = await hashSecret(SECRET.k2new);
  file = { ...file, devices: file.devices.map((d) => (d.device === K2.device ? { ...d, secretHash: newHash } : d)) };
  await Registry.save(registryPath, file);
  writtenAt = performance.now();
  const ms = await k2Closed;
  console.log(`k2's secret rotated: the session on the old secret closed ${ms} ms after the file was replaced`);
  assert.ok(ms < REVOKE_BOUND_MS, `took ${ms} ms`);

  assert.is(await refusal(K2, SECRET.k2), 4);
  const rotated = await device(K2, SECRET.k2new);
  await alive(rotated, K2);
  assert.is(await metric(httpPort, "paylane_gateway_revocations_total", { reason: "secret-changed" }), 1);
});

test("a registry file that does not parse keeps the last good one; the next good write applies", async () => {
  const k2 = await device(K2, SECRET.k2new);
  await writeFile(registryPath, '{"version": 1, "devices": [');
  await cli.logLine("registry file changed but does not load; keeping the previous version");
  await alive(k2, K2);
  assert.ok(k2.connected);

  // Restored, with k1 back: k1 connects again without a restart.
  file = { ...file, devices: [...file.devices, { ...K1, secretHash: await hashSecret(SECRET.k1) }] };
  await Registry.save(registryPath, file);
  await cli.logLine("registry file changed; new version in force", (l) => l.devices === 2);
  const k1 = await device(K1, SECRET.k1);
  await alive(k1, K1);
  assert.ok(k2.connected, "an unchanged identity keeps its session");
});

test.run();
