/**
 * The Wills a dead gateway instance left in Redis (dead-wills.ts): one
 * surviving instance publishes each, once; a kiosk that already reconnected
 * to a live instance gets no stale Will; a Redis outage longer than three
 * heartbeats makes nobody take a live instance for dead; an instance cut off
 * alone, taken for dead, has its kiosks reconnect and read online again once
 * it is back. The dead instance is
 * a `paylane-gateway` child killed with -9; the others run here, heartbeat
 * 300 ms, on a key prefix of this file's own.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { type DeviceAddress, Registry, topics } from "@paylane/protocol";
import { Redis } from "ioredis";
import { pino } from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { FaultProxy } from "../../test/support/fault-proxy.ts";
import { Gateway } from "../src/gateway.ts";
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
  until,
} from "./support/fleet.ts";

const HEARTBEAT_MS = 300;
const logger = pino({ level: "silent" });
const keys = redisPrefix("dead-wills");
const clients = new Clients();
let dir: string;
let registryPath: string;
let registryFile: Awaited<ReturnType<typeof fleetRegistryFile>>;
/** Kiosks of their own for the first test: many Wills make the survivors' sweeps overlap, as in a real fleet. */
const many: DeviceAddress[] = Array.from({ length: 24 }, (_, i) => ({ site: "s9", device: `m${i}` }));
let running: { gateway: Gateway; metrics: MetricsRegistry }[] = [];
const children: ChildProcess[] = [];

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), "paylane-dead-wills-"));
  registryPath = join(dir, "registry.json");
  const file = await fleetRegistryFile();
  const secretHash = file.devices[0]!.secretHash;
  registryFile = { ...file, devices: [...file.devices, ...many.map((a) => ({ ...a, secretHash }))] };
  await Registry.save(registryPath, registryFile);
});

test.after.each(async () => {
  await clients.closeAll();
  for (const child of children.splice(0)) child.kill("SIGKILL");
  await Promise.all(running.map((r) => r.gateway.stop()));
  running = [];
});

test.after(async () => {
  await keys.clear();
  await rm(dir, { recursive: true, force: true });
});

/** A live instance in this process. */
async function instance(name: string, redisUrl = REDIS_URL) {
  const metrics = new MetricsRegistry();
  const gateway = new Gateway({
    registry: new Registry(registryFile),
    port: 0,
    logger,
    metrics,
    instance: name,
    redis: { url: redisUrl, prefix: keys.prefix, heartbeatMs: HEARTBEAT_MS },
  });
  await gateway.start();
  const entry = { gateway, metrics };
  running.push(entry);
  return entry;
}

/** An instance to kill: `paylane-gateway` as a child process; resolves its MQTT port. */
async function doomed(name: string): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ["--import", "tsx", "gateway/src/main.ts"], {
    cwd: join(import.meta.dirname, "../.."),
    env: {
      PATH: process.env.PATH,
      LOG_LEVEL: "info",
      REGISTRY_PATH: registryPath,
      MQTT_PORT: "0",
      GATEWAY_HTTP_PORT: "0",
      GATEWAY_REDIS_URL: REDIS_URL,
      GATEWAY_REDIS_PREFIX: keys.prefix,
      GATEWAY_REDIS_HEARTBEAT_MS: String(HEARTBEAT_MS),
      GATEWAY_INSTANCE: name,
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  children.push(child);
  const port = await new Promise<number>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on("line", (line) => {
      const entry = JSON.parse(line) as { msg?: string; port?: number };
      if (entry.msg === "MQTT gateway listening") resolve(entry.port!);
    });
    child.once("exit", (code) => reject(new Error(`paylane-gateway exited ${code}`)));
  });
  return { child, port };
}

/** A counter of one instance by outcome. */
async function count(metrics: MetricsRegistry, name: string, outcome: string): Promise<number> {
  const values = (await metrics.getSingleMetric(name)?.get())?.values ?? [];
  return values.filter((v) => v.labels.outcome === outcome).reduce((n, v) => n + v.value, 0);
}
const sweeps = (r: { metrics: MetricsRegistry }) => count(r.metrics, "paylane_gateway_will_sweeps_total", "run");

const offline = (address: DeviceAddress) => ({
  topic: topics.status(address),
  payload: Buffer.from('{"state":"offline"}'),
  qos: 1 as const,
  retain: true,
});

/** A watcher of `address`' status on `port`, once it saw the kiosk online. */
async function watch(port: number, address: DeviceAddress) {
  const watcher = await clients.bridge(port, `watcher-${port}-${address.device}`);
  const inbox = recorder(watcher);
  await watcher.subscribeAsync(topics.status(address), { qos: 1 });
  await inbox.next((m) => m.payload === '{"state":"online"}');
  return { offlines: () => inbox.seen.filter((m) => m.payload === '{"state":"offline"}').length, inbox };
}

/** Clears the kiosk's retained status, so no other test (or run) reads it. */
async function forget(port: number, address: DeviceAddress) {
  const kiosk = await clients.device(port, address);
  await kiosk.publishAsync(topics.status(address), "", { qos: 1, retain: true }).catch(() => {});
}

test("an instance killed with -9: each of its kiosks' Wills is published once, by one of the two survivors", async () => {
  const gone = await doomed("gw-doomed-1");
  // Started together, the survivors sweep at about the same moments: each finds every Will of the dead one.
  const [b, c] = await Promise.all([instance("gw-b"), instance("gw-c")]);
  const statuses = "paylane/v1/s9/+/status";
  try {
    for (const address of many) {
      const kiosk = await clients.device(gone.port, address, { will: offline(address) });
      await kiosk.publishAsync(topics.status(address), '{"state":"online"}', { qos: 1, retain: true });
    }
    const watcher = await clients.bridge(b.gateway.port, "watcher-many");
    const inbox = recorder(watcher);
    await watcher.subscribeAsync(statuses, { qos: 1 });
    await until([inbox], () => inbox.seen.length >= many.length, 5000, "every kiosk online");
    const offlines = () => inbox.seen.filter((m) => m.payload === '{"state":"offline"}');
    // What goes out fleet-wide: every PUBLISH crosses Redis pub/sub once. (A subscriber connected all along
    // would not show a second copy: aedes drops a packet whose broker counter it has seen.)
    const wire = new Redis(REDIS_URL);
    let crossed = 0;
    wire.on("pmessageBuffer", () => {
      crossed++;
    });
    await wire.psubscribe(`${keys.prefix}/paylane/v1/s9/*`);
    const died = Date.now();
    gone.child.kill("SIGKILL");
    await until([inbox], () => offlines().length >= many.length, 10_000, "every kiosk's Will");
    const after = Date.now() - died;
    // Both survivors sweep twice more after the Wills went out: a second copy would come from one of them.
    const [sb, sc] = [await sweeps(b), await sweeps(c)];
    await eventually(
      async () => (await sweeps(b)) >= sb + 2 && (await sweeps(c)) >= sc + 2,
      10_000,
      "two more sweeps on each survivor",
    );
    const published = [
      await count(b.metrics, "paylane_gateway_dead_wills_total", "published"),
      await count(c.metrics, "paylane_gateway_dead_wills_total", "published"),
    ];
    console.log(
      `    ${many.length} Wills out within ${after} ms of kill -9 (heartbeat ${HEARTBEAT_MS} ms); published by gw-b/gw-c ${published.join("/")}; ${crossed} through Redis; watcher saw ${offlines().length} offline`,
    );
    wire.disconnect();
    assert.is(crossed, many.length, "each Will published once fleet-wide");
    assert.is(published[0]! + published[1]!, many.length);
    assert.is(offlines().length, many.length, "each Will exactly once");
    assert.equal(new Set(offlines().map((m) => m.topic)).size, many.length);
  } finally {
    for (const address of many) await forget(b.gateway.port, address);
  }
});

test("a kiosk that reconnected to a live instance before the sweep gets no stale Will", async () => {
  const gone = await doomed("gw-doomed-2");
  const b = await instance("gw-b");
  try {
    const kiosk = await clients.device(gone.port, k2, { will: offline(k2) });
    await kiosk.publishAsync(topics.status(k2), '{"state":"online"}', { qos: 1, retain: true });
    const watcher = await watch(b.gateway.port, k2);
    gone.child.kill("SIGKILL");
    kiosk.end(true);
    // Back at once through the balancer, on B, with its Will and birth, as a kiosk does.
    const again = await clients.device(b.gateway.port, k2, { will: offline(k2) });
    await again.publishAsync(topics.status(k2), '{"state":"online"}', { qos: 1, retain: true });
    // B takes the killed instance for dead (it claims its Wills), then sweeps once more.
    const redis = new Redis(REDIS_URL, { keyPrefix: `${keys.prefix}:` });
    const claimed = async () => (await redis.keys(`${keys.prefix}:wills:claim:gw-doomed-2-*`)).length === 1;
    await eventually(claimed, 10_000, "gw-b to take gw-doomed-2 for dead");
    redis.disconnect();
    const s = await sweeps(b);
    await eventually(async () => (await sweeps(b)) >= s + 2, 5000, "two more sweeps");
    const dropped = await count(b.metrics, "paylane_gateway_dead_wills_total", "connected");
    console.log(`    stale Wills dropped: ${dropped}; watcher saw ${watcher.offlines()} offline`);
    assert.is(watcher.offlines(), 0, "no offline for a kiosk that is online on gw-b");
    assert.is(dropped, 1);
  } finally {
    await forget(b.gateway.port, k2);
  }
});

test("a Redis outage longer than three heartbeats publishes no Will of a live client", async () => {
  // One proxy per instance: B gets Redis back first, as happens when connections retry at different moments.
  const target = { host: "127.0.0.1", port: Number(new URL(REDIS_URL).port || 6379) };
  const [toA, toB] = [new FaultProxy({ target }), new FaultProxy({ target })];
  await Promise.all([toA.start(), toB.start()]);
  try {
    const a = await instance("gw-a", toA.url(REDIS_URL));
    const b = await instance("gw-b", toB.url(REDIS_URL));
    const kiosk = await clients.device(a.gateway.port, k1, { will: offline(k1) });
    await kiosk.publishAsync(topics.status(k1), '{"state":"online"}', { qos: 1, retain: true });
    const watcher = await watch(b.gateway.port, k1);

    for (const proxy of [toA, toB]) {
      proxy.refuse();
      proxy.reset();
    }
    await eventually(() => a.gateway.redis === "down" && b.gateway.redis === "down", 5000, "both to lose Redis");
    const cut = Date.now();
    // The outage itself is what is tested: it must outlast three heartbeats (every key of A expires).
    await eventually(() => Date.now() - cut > 4 * HEARTBEAT_MS, 5000, "an outage of four heartbeats");
    toB.heal();
    await eventually(() => b.gateway.redis === "ok", 10_000, "Redis back on gw-b");
    toA.heal();
    await eventually(() => a.gateway.redis === "ok", 10_000, "Redis back on gw-a");
    const [sa, sb] = [await sweeps(a), await sweeps(b)];
    await eventually(
      async () => (await sweeps(a)) >= sa + 2 && (await sweeps(b)) >= sb + 2,
      15_000,
      "two sweeps on each instance after Redis is back",
    );
    const deferred = await count(b.metrics, "paylane_gateway_will_sweeps_total", "deferred");
    console.log(
      `    outage ${Date.now() - cut} ms in all; gw-b deferred ${deferred} sweep(s); watcher saw ${watcher.offlines()} offline`,
    );
    assert.ok(kiosk.connected, "the kiosk stayed connected to gw-a");
    assert.is(watcher.offlines(), 0, "no Will of the live kiosk");
    // Its Will is still stored: a real loss of the kiosk's connection still publishes it.
    kiosk.stream.destroy();
    await watcher.inbox.next((m) => m.payload === '{"state":"offline"}');
  } finally {
    await clients.closeAll();
    await Promise.all(running.map((r) => r.gateway.stop()));
    running = [];
    await forget((await instance("gw-z")).gateway.port, k1);
    await Promise.all([toA.stop(), toB.stop()]);
  }
});

/**
 * gw-a alone loses Redis for longer than three heartbeats: loudly (connections reset and refused: ioredis
 * reconnects) or silently (every byte held, as in a network partition: no error, its commands just wait).
 */
async function cutOffAlone(how: "loud" | "silent"): Promise<void> {
  // Only gw-a loses Redis; gw-b keeps it, so gw-a's keys expire and gw-b publishes the Wills of gw-a's kiosks.
  const target = { host: "127.0.0.1", port: Number(new URL(REDIS_URL).port || 6379) };
  const toA = new FaultProxy({ target });
  await toA.start();
  try {
    const a = await instance("gw-a", toA.url(REDIS_URL));
    const b = await instance("gw-b");
    // A kiosk as the device runs: its Will is offline, and it announces itself online at every connect.
    const kiosk = await clients.device(a.gateway.port, k3, { will: offline(k3), reconnectPeriod: 100 });
    let connects = 1;
    const birth = () => kiosk.publish(topics.status(k3), '{"state":"online"}', { qos: 1, retain: true });
    kiosk.on("connect", () => {
      connects++;
      birth();
    });
    birth();
    const watcher = await watch(b.gateway.port, k3);
    const statuses = () => watcher.inbox.seen.map((m) => JSON.parse(m.payload).state as string);

    // gw-b carries more traffic than gw-a, as the bridge's instance does: its message counter runs ahead, and a
    // Will it published under gw-a's id would make subscribers drop gw-a's next messages (aedes' dedupe).
    const busy = await clients.bridge(b.gateway.port, "busy-bridge");
    const command = topics.cmd(many[0]!, "ping");
    await Promise.all(Array.from({ length: 300 }, (_, i) => busy.publishAsync(command, `{"n":${i}}`, { qos: 1 })));
    if (how === "loud") {
      toA.refuse();
      toA.reset();
      await eventually(() => a.gateway.redis === "down", 5000, "gw-a to lose Redis");
    } else {
      toA.stall();
    }
    await until([watcher.inbox], () => watcher.offlines() === 1, 10_000, "gw-b to publish the Will of gw-a's kiosk");
    assert.ok(kiosk.connected, "the kiosk is still connected to gw-a while its status reads offline");
    const published = () => count(b.metrics, "paylane_gateway_dead_wills_total", "published");
    await eventually(async () => (await published()) === 1, 5000, "gw-b to count the Will it published");

    toA.heal();
    const healed = Date.now();
    if (how === "silent") assert.is(a.gateway.redis, "ok", "ioredis never noticed the silent cut");
    await eventually(() => a.gateway.redis === "ok", 10_000, "Redis back on gw-a");
    await until([watcher.inbox], () => statuses().at(-1) === "online", 5000, "the kiosk's status to read online again");
    const back = Date.now() - healed;
    // gw-a looks once more three heartbeats after its return; two of its sweeps run after that.
    const sa = await sweeps(a);
    await eventually(async () => (await sweeps(a)) >= sa + 2, 10_000, "two sweeps on gw-a after Redis is back");
    const reannounced = (await a.metrics.getSingleMetric("paylane_gateway_reannounced_clients_total")?.get())?.values[0]
      ?.value;
    const reader = await clients.bridge(b.gateway.port, "late-reader");
    const retained = recorder(reader);
    await reader.subscribeAsync(topics.status(k3), { qos: 1 });
    const last = await retained.next(() => true);
    console.log(
      `    (${how} cut) gw-b published ${await published()} Will of cut-off gw-a; gw-a back: kiosk online again ${back} ms after the heal (reannounced ${reannounced}); watcher saw ${statuses().join(" -> ")}`,
    );
    assert.equal(
      statuses(),
      ["online", "offline", "online"],
      "offline once (gw-b's sweep), then online, nothing after",
    );
    assert.is(last.payload, '{"state":"online"}', "the retained status reads online");
    assert.is(connects, 2, "the kiosk reconnected once");
    assert.is(reannounced, 1);
  } finally {
    await clients.closeAll();
    await Promise.all(running.map((r) => r.gateway.stop()));
    running = [];
    await forget((await instance("gw-z")).gateway.port, k3);
    await toA.stop();
  }
}

test("an instance cut off from Redis alone is taken for dead: once back, its kiosks reconnect and read online again", () =>
  cutOffAlone("loud"));

test("the same after a silent cut ioredis never reports: its own heartbeat finds it was taken for dead", () =>
  cutOffAlone("silent"));

test.run();
