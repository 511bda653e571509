/**
 * A gateway on Redis told to stop while Redis is unreachable stops (SIGTERM
 * during a Redis outage): before, the shared-subscription directory waited for
 * ioredis' 20 retries, then aedes' close waited for ever on mqemitter-redis'
 * QUIT of connections that were reconnecting, so the process never exited
 * (a compose or systemd stop hung; Kubernetes had to SIGKILL it).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "@paylane/protocol";
import { pino } from "pino";
import { test } from "uvu";
import { FaultProxy } from "../../test/support/fault-proxy.ts";
import { within } from "../../test/support/within.ts";
import { parseGatewayEnv } from "../src/config.ts";
import { GatewayService } from "../src/service.ts";
import { Clients, eventually, fleetRegistryFile, REDIS_URL, redisPrefix } from "./support/fleet.ts";

const keys = redisPrefix("redis-stop");
const clients = new Clients();
let dir: string;

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), "paylane-redis-stop-"));
});

test.after(async () => {
  await clients.closeAll();
  await keys.clear();
  await rm(dir, { recursive: true, force: true });
});

test("stop() with Redis unreachable resolves within seconds, a shared-subscription member connected", async () => {
  const registryPath = join(dir, "registry.json");
  await Registry.save(registryPath, await fleetRegistryFile());
  const proxy = new FaultProxy({ target: { host: "127.0.0.1", port: Number(new URL(REDIS_URL).port || 6379) } });
  await proxy.start();
  try {
    const config = parseGatewayEnv({
      REGISTRY_PATH: registryPath,
      MQTT_PORT: "0",
      GATEWAY_HTTP_PORT: "0",
      GATEWAY_REDIS_URL: proxy.url(REDIS_URL),
      GATEWAY_REDIS_PREFIX: keys.prefix,
      GATEWAY_INSTANCE: "gw-stop",
    });
    const service = new GatewayService({ config, logger: pino({ level: "silent" }) });
    await service.start();
    const bridge = await clients.bridge(service.mqttPort, "bridge-stop", { reconnectPeriod: 0 });
    bridge.on("error", () => {});
    await bridge.subscribeAsync("$share/bridge/paylane/v1/+/+/events", { qos: 1 });
    proxy.refuse();
    proxy.reset();
    const readyz = async () => (await fetch(`http://127.0.0.1:${service.httpPort}/readyz`)).status;
    await eventually(async () => (await readyz()) === 503, 5000, "/readyz 503 with Redis cut");
    const started = Date.now();
    await within(service.stop(), 15_000, "the gateway to stop with Redis unreachable");
    console.log(`    stopped in ${Date.now() - started} ms with Redis unreachable`);
  } finally {
    await proxy.stop();
  }
});

test.run();
