/**
 * The bridge's stop ends every wait on the broker. `Bridge.publish` resolves
 * on the broker's PUBACK, and the cloud's stop waits for those who await it
 * (the config desk's queue, the command desk's redelivery). mqtt.js, which
 * reconnects by itself, keeps a QoS 1 publish whose connection dropped to
 * resend it after the reconnect, and never settles it once the client is
 * ended: without the bridge settling it, a config set during a broker blip
 * held the cloud's stop for ever. A FaultProxy sits between the bridge and
 * the aedes gateway.
 */
import { Gateway } from "@paylane/gateway";
import { hashSecret, Registry, serviceUsername, topics } from "@paylane/protocol";
import { connectAsync } from "mqtt";
import { pino } from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { FaultProxy } from "../../test/support/fault-proxy.ts";
import { Signal } from "../../test/support/signal.ts";
import { within } from "../../test/support/within.ts";
import { Bridge } from "../src/bridge/bridge.ts";
import type { Database } from "../src/db/database.ts";
import { MemoryPresence } from "../src/presence/memory-presence.ts";

const K1 = { site: "s1", device: "k1" };
const SECRET = "cloud-secret-for-tests";
/** Far above the stop's own 2 s bounds; only ever reached by a wait that never settles. */
const WAIT_MS = 8000;

let gateway: Gateway;
let proxy: FaultProxy;
let bridge: Bridge;
const signal = new Signal();
/** The bridge's log messages: "bridge disconnected" is its connection closing. */
let logged: string[] = [];
const logger = pino(
  { level: "debug" },
  {
    write(line: string) {
      logged.push((JSON.parse(line) as { msg: string }).msg);
      signal.notify();
    },
  },
);
const disconnected = () => logged.includes("bridge disconnected");

test.before.each(async () => {
  const registry = new Registry({
    version: 1,
    devices: [],
    services: [{ id: "cloud", role: "bridge", secretHash: await hashSecret(SECRET) }],
  });
  gateway = new Gateway({ registry, port: 0, logger: pino({ level: "silent" }), metrics: new MetricsRegistry() });
  await gateway.start();
  proxy = new FaultProxy({ target: { host: "127.0.0.1", port: gateway.port } });
  await proxy.start();
  proxy.events.on("data", signal.notify);
  logged = [];
  bridge = new Bridge({
    url: proxy.url("mqtt"),
    username: serviceUsername("cloud"),
    password: SECRET,
    // nothing here reaches the database
    db: {} as Database,
    presence: new MemoryPresence(),
    isKnownDevice: () => true,
    logger,
    metrics: new MetricsRegistry(),
    now: () => new Date(),
    instance: "test",
    sites: [K1.site],
  });
  // Subscribed and announced (its birth follows the SUBACK): only the publish below is left unconfirmed.
  const watcher = await connectAsync(`mqtt://127.0.0.1:${gateway.port}`, {
    clientId: "watcher",
    username: serviceUsername("cloud"),
    password: SECRET,
    protocolVersion: 4,
    reconnectPeriod: 0,
  });
  let born = false;
  watcher.on("message", () => {
    born = true;
    signal.notify();
  });
  await watcher.subscribeAsync(topics.cloudStatus, { qos: 1 });
  await bridge.start();
  await signal.until(() => born, "the bridge's birth", WAIT_MS);
  await watcher.endAsync(true);
});

test.after.each(async () => {
  await bridge.stop();
  await proxy.stop();
  await gateway.stop();
});

/** A desired config published as the config desk does (retained, QoS 1), once the broker has it and its PUBACK is held. */
async function publishUnconfirmed(): Promise<{ published: Promise<string> }> {
  proxy.stall("down"); // the broker's PUBACK never reaches the bridge
  const before = proxy.stats.held;
  const published = bridge
    .publish(topics.config(K1), JSON.stringify({ version: 1, settings: {}, by: "ops", at: "" }), {
      qos: 1,
      retain: true,
    })
    .then(
      () => "confirmed",
      (err: Error) => `failed: ${err.message}`,
    );
  await signal.until(() => proxy.stats.held > before, "the PUBACK held by the proxy", WAIT_MS);
  // wrapped: an async function returning the promise itself would wait for it
  return { published };
}

test("a publish whose connection dropped before its PUBACK settles when the bridge stops", async () => {
  const { published } = await publishUnconfirmed();
  proxy.refuse(true); // the bridge's reconnects fail: the broker is away when the cloud stops
  assert.is(proxy.reset(), 1, "the bridge's connection is reset");
  await signal.until(disconnected, "the bridge sees the cut", WAIT_MS);
  await within(bridge.stop(), WAIT_MS, "the bridge's stop");
  const outcome = await within(published, WAIT_MS, "the publish after the stop");
  assert.match(outcome, /^failed: /, "the caller hears that the broker never confirmed it");
});

test("a publish unconfirmed by a silent broker settles when the bridge stops, and the socket is closed", async () => {
  const { published } = await publishUnconfirmed();
  await within(bridge.stop(), WAIT_MS, "the bridge's stop");
  const outcome = await within(published, WAIT_MS, "the publish after the stop");
  assert.match(outcome, /^failed: /, "the caller hears that the broker never confirmed it");
  await signal.until(disconnected, "the bridge's connection closed", WAIT_MS);
});

test.run();
