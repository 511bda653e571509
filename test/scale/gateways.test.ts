/**
 * Two gateway instances on one Redis (GATEWAY_REDIS_URL, a key prefix of this
 * file's own) act as one broker: a kiosk on A gets what an operator publishes
 * on B; retained statuses survive a restart of both; a persistent session
 * queued while the kiosk was away is delivered on the other instance; Redis
 * lost makes an instance unready until it is back (docs/scale-gateways.md).
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { Registry, topics } from "@paylane/protocol";
import { pino } from "pino";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { parseGatewayEnv } from "../../gateway/src/config.ts";
import { GatewayService } from "../../gateway/src/service.ts";
import {
  Clients,
  eventually,
  fleetRegistryFile,
  k1,
  k2,
  k3,
  REDIS_URL,
  recorder,
  redisPrefix,
} from "../../gateway/test/support/fleet.ts";
import { FaultProxy } from "../support/fault-proxy.ts";

const logger = pino({ level: "silent" });
const keys = redisPrefix("gateways");
const clients = new Clients();
let dir: string;
let registryPath: string;
let running: GatewayService[] = [];

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), "paylane-gateways-"));
  registryPath = join(dir, "registry.json");
  await Registry.save(registryPath, await fleetRegistryFile());
});

test.after.each(async () => {
  await clients.closeAll();
  await Promise.all(running.map((g) => g.stop()));
  running = [];
});

test.after(async () => {
  const removed = await keys.clear();
  console.log(`    removed ${removed} Redis keys under ${keys.prefix}:`);
  await rm(dir, { recursive: true, force: true });
});

/** An instance as `paylane-gateway` would run it from these variables. */
const env = (name: string, redisUrl = REDIS_URL): Record<string, string> => ({
  REGISTRY_PATH: registryPath,
  MQTT_PORT: "0",
  GATEWAY_HTTP_PORT: "0",
  GATEWAY_REDIS_URL: redisUrl,
  GATEWAY_REDIS_PREFIX: keys.prefix,
  GATEWAY_INSTANCE: name,
});

async function instance(name: string, redisUrl = REDIS_URL, extra: Record<string, string> = {}) {
  const config = parseGatewayEnv({ ...env(name, redisUrl), ...extra });
  const service = new GatewayService({ config, logger });
  await service.start();
  running.push(service);
  return service;
}

async function metric(service: GatewayService, name: string): Promise<number> {
  const values = (await service.metrics.getSingleMetric(name)?.get())?.values ?? [];
  return values.reduce((n, v) => n + v.value, 0);
}

test("a kiosk connected to A gets the command an operator publishes on B, stamped by the gateway", async () => {
  const [a, b] = [await instance("gw-a"), await instance("gw-b")];
  const kiosk = await clients.device(a.mqttPort, k1);
  const inbox = recorder(kiosk);
  await kiosk.subscribeAsync(topics.cmdAll(k1), { qos: 1 });
  const operator = await clients.operator(b.mqttPort);
  await operator.publishAsync(topics.cmd(k1, "reboot"), JSON.stringify({ id: "c-1", args: {}, by: "forged" }), {
    qos: 1,
  });
  const cmd = await inbox.next((m) => m.topic === topics.cmd(k1, "reboot"));
  assert.equal(JSON.parse(cmd.payload), { id: "c-1", args: {}, by: "olivia" });
  assert.is(cmd.qos, 1);
});

test("retained statuses (a kiosk's birth, the cloud's) survive a restart of both instances", async () => {
  let [a, b] = [await instance("gw-a"), await instance("gw-b")];
  const offline = (topic: string) => ({
    topic,
    payload: Buffer.from('{"state":"offline"}'),
    qos: 1 as const,
    retain: true,
  });
  const kiosk = await clients.device(a.mqttPort, k1, { will: offline(topics.status(k1)) });
  await kiosk.publishAsync(topics.status(k1), '{"state":"online","version":"1.0.0"}', { qos: 1, retain: true });
  const cloud = await clients.bridge(b.mqttPort, "paylane-bridge-1", { will: offline(topics.cloudStatus) });
  await cloud.publishAsync(topics.cloudStatus, '{"state":"online"}', { qos: 1, retain: true });
  // Both instances count the same retained messages: they read one store.
  await eventually(async () => (await metric(a, "paylane_gateway_retained_messages")) === 2, 5000, "2 retained on A");
  assert.is(await metric(b, "paylane_gateway_retained_messages"), 2);
  // Clean disconnects (DISCONNECT: no Will), then both instances stop: nothing of them is left running.
  await Promise.all([kiosk.endAsync(), cloud.endAsync()]);
  await clients.closeAll();
  await Promise.all([a.stop(), b.stop()]);
  running = [];

  [a, b] = [await instance("gw-a"), await instance("gw-b")];
  assert.is(await metric(a, "paylane_gateway_retained_messages"), 2);
  for (const service of [a, b]) {
    const reader = await clients.operator(service.mqttPort, `reader-${service.mqttPort}`);
    const inbox = recorder(reader);
    await reader.subscribeAsync([topics.cloudStatus, `paylane/v1/${k1.site}/+/status`], { qos: 1 });
    const status = await inbox.next((m) => m.topic === topics.status(k1));
    const cloudStatus = await inbox.next((m) => m.topic === topics.cloudStatus);
    assert.equal(JSON.parse(status.payload), { state: "online", version: "1.0.0" });
    assert.equal(JSON.parse(cloudStatus.payload), { state: "online" });
    assert.ok(status.retain && cloudStatus.retain);
  }
});

test("a persistent session (clean:false, QoS 1) queued while the kiosk was away is delivered on the other instance", async () => {
  const [a, b] = [await instance("gw-a"), await instance("gw-b")];
  const session = { clean: false };
  const first = await clients.device(a.mqttPort, k2, session);
  await first.subscribeAsync(topics.cmdAll(k2), { qos: 1 });
  await first.endAsync();

  const operator = await clients.operator(b.mqttPort);
  for (const id of ["q-1", "q-2"]) {
    await operator.publishAsync(topics.cmd(k2, "print-test"), JSON.stringify({ id, args: {} }), { qos: 1 });
  }
  // Back through the other instance, without subscribing again: the session is in Redis.
  const again = await clients.device(b.mqttPort, k2, session);
  assert.ok(again.connected);
  const inbox = recorder(again);
  const q1 = await inbox.next((m) => m.payload.includes('"q-1"'));
  const q2 = await inbox.next((m) => m.payload.includes('"q-2"'));
  assert.is(q1.topic, topics.cmd(k2, "print-test"));
  assert.is(q2.qos, 1);
  // The session ends clean, so nothing of it is left in Redis for another run.
  await again.endAsync();
  await clients.device(b.mqttPort, k2, { clean: true });
});

test("Redis lost while running: /readyz 503 (alive on /healthz), ready again and delivering once it is back", async () => {
  const proxy = new FaultProxy({ target: { host: "127.0.0.1", port: Number(new URL(REDIS_URL).port || 6379) } });
  await proxy.start();
  try {
    const c = await instance("gw-c", proxy.url(REDIS_URL));
    const probe = async (path: string) => (await fetch(`http://127.0.0.1:${c.httpPort}${path}`)).status;
    assert.is(await probe("/readyz"), 200);
    proxy.refuse();
    proxy.reset();
    await eventually(async () => (await probe("/readyz")) === 503, 5000, "/readyz 503");
    const body = await (await fetch(`http://127.0.0.1:${c.httpPort}/readyz`)).json();
    console.log(`    Redis cut: /readyz 503 ${JSON.stringify(body)}`);
    assert.is(await probe("/healthz"), 200);

    proxy.heal();
    await eventually(async () => (await probe("/readyz")) === 200, 10_000, "/readyz 200 again");
    const kiosk = await clients.device(c.mqttPort, k1);
    const inbox = recorder(kiosk);
    await kiosk.subscribeAsync(topics.cmdAll(k1), { qos: 1 });
    const operator = await clients.operator(c.mqttPort);
    await operator.publishAsync(topics.cmd(k1, "ping"), '{"id":"after","args":{}}', { qos: 1 });
    await inbox.next((m) => m.topic === topics.cmd(k1, "ping"));
  } finally {
    await clients.closeAll();
    await Promise.all(running.map((g) => g.stop()));
    running = [];
    await proxy.stop();
  }
});

test("an instance killed with -9: another one publishes the Wills of its kiosks", async () => {
  const heartbeat = { GATEWAY_REDIS_HEARTBEAT_MS: "300" };
  const child = spawn(process.execPath, ["--import", "tsx", "gateway/src/main.ts"], {
    cwd: join(import.meta.dirname, "../.."),
    env: { PATH: process.env.PATH, LOG_LEVEL: "info", ...env("gw-doomed"), ...heartbeat },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const reap = () => child.kill("SIGKILL");
  process.once("exit", reap);
  try {
    const port = await new Promise<number>((resolve, reject) => {
      createInterface({ input: child.stdout! }).on("line", (line) => {
        const entry = JSON.parse(line) as { msg?: string; port?: number };
        if (entry.msg === "MQTT gateway listening") resolve(entry.port!);
      });
      child.once("exit", (code) => reject(new Error(`paylane-gateway exited ${code}`)));
    });
    const b = await instance("gw-b", REDIS_URL, heartbeat);
    const offline = {
      topic: topics.status(k3),
      payload: Buffer.from('{"state":"offline"}'),
      qos: 1 as const,
      retain: true,
    };
    const kiosk = await clients.device(port, k3, { will: offline });
    await kiosk.publishAsync(topics.status(k3), '{"state":"online"}', { qos: 1, retain: true });
    const watcher = await clients.bridge(b.mqttPort, "watcher");
    const inbox = recorder(watcher);
    await watcher.subscribeAsync(topics.status(k3), { qos: 1 });
    await inbox.next((m) => m.payload === '{"state":"online"}');

    const died = Date.now();
    child.kill("SIGKILL");
    const will = await inbox.next((m) => m.payload === '{"state":"offline"}');
    console.log(
      `    gw-doomed killed: its kiosk's Will published by gw-b ${Date.now() - died} ms later (heartbeat 300 ms)`,
    );
    assert.is(will.topic, topics.status(k3));
  } finally {
    child.kill("SIGKILL");
    process.off("exit", reap);
    await clients
      .device((running[0] as GatewayService).mqttPort, k3)
      .then((k) => k.publishAsync(topics.status(k3), "", { qos: 1, retain: true }));
  }
});

test.run();
