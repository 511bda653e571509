import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deviceIdentity, hashSecret, Registry } from "@paylane/protocol";
import { ConfigError, describeListenError } from "@paylane/protocol/service";
import { connectAsync } from "mqtt";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { defaultInstance, mqttPortHint, parseGatewayEnv as parseEnv } from "../src/config.ts";
import { DEFAULT_LIMITS } from "../src/limits.ts";
import { runGatewayCli } from "./support/cli.ts";

const kiosk = { site: "s1", device: "k1" };
const SECRET = "secret-of-k1";
let dir: string;
let registryPath: string;

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), "paylane-gateway-"));
  registryPath = join(dir, "registry.json");
  await Registry.save(registryPath, {
    version: 1,
    devices: [{ ...kiosk, secretHash: await hashSecret(SECRET) }],
    services: [],
  });
});

test.after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const run = runGatewayCli;

test("parseEnv applies the defaults: loopback only, no TLS, the default limits", () => {
  assert.equal(parseEnv({ REGISTRY_PATH: "/etc/paylane/registry.json" }), {
    mqttPort: 1883,
    mqttHost: "127.0.0.1",
    httpPort: 8070,
    registryPath: "/etc/paylane/registry.json",
    logLevel: "info",
    limits: { ...DEFAULT_LIMITS },
    tls: undefined,
    redis: undefined,
    instance: defaultInstance(),
  });
  assert.is(DEFAULT_LIMITS.maxPacketBytes, 256 * 1024);
});

test("parseEnv reads the limits and refuses values out of range, naming each variable", () => {
  const config = parseEnv({
    REGISTRY_PATH: "r.json",
    MQTT_MAX_PACKET_BYTES: "1024",
    MQTT_CONNECT_TIMEOUT_MS: "2500",
    MQTT_CONNECTS_PER_ADDRESS: "500",
    MQTT_CONNECT_WINDOW_S: "60",
    MQTT_AUTH_CHECKS_PER_ADDRESS: "4",
    MQTT_AUTH_FAILURES_PER_ADDRESS: "3",
    MQTT_MESSAGES_PER_SECOND: "50",
  });
  assert.equal(config.limits, {
    maxPacketBytes: 1024,
    connectTimeoutMs: 2500,
    connectsPerAddress: 500,
    connectWindowSeconds: 60,
    authChecksPerAddress: 4,
    authFailuresPerAddress: 3,
    messagesPerSecond: 50,
  });
  try {
    parseEnv({ REGISTRY_PATH: "r.json", MQTT_MAX_PACKET_BYTES: "300000000", MQTT_MESSAGES_PER_SECOND: "lots" });
    assert.unreachable("should throw");
  } catch (err) {
    assert.instance(err, ConfigError);
    assert.match((err as Error).message, "MQTT_MAX_PACKET_BYTES");
    assert.match((err as Error).message, "MQTT_MESSAGES_PER_SECOND");
  }
});

test("parseEnv: a certificate and key turn on mqtts on 8883; a TLS port without them names what is missing", () => {
  const both = { REGISTRY_PATH: "r.json", MQTT_TLS_CERT: "/etc/c.pem", MQTT_TLS_KEY: "/etc/k.pem" };
  assert.equal(parseEnv(both).tls, { certPath: "/etc/c.pem", keyPath: "/etc/k.pem", port: 8883, wssPort: undefined });
  assert.equal(parseEnv({ ...both, MQTT_WSS_PORT: "8884" }).tls, {
    certPath: "/etc/c.pem",
    keyPath: "/etc/k.pem",
    port: undefined,
    wssPort: 8884,
  });
  assert.equal(parseEnv({ ...both, MQTT_TLS_PORT: "0", MQTT_WSS_PORT: "0" }).tls?.port, 0);
  assert.throws(() => parseEnv({ REGISTRY_PATH: "r.json", MQTT_TLS_PORT: "8883" }), /MQTT_TLS_CERT and MQTT_TLS_KEY/);
  assert.throws(() => parseEnv({ REGISTRY_PATH: "r.json", MQTT_TLS_CERT: "/c.pem" }), /MQTT_TLS_KEY is required/);
});

test("parseEnv names every bad variable", () => {
  const bad = { MQTT_PORT: "70000", GATEWAY_HTTP_PORT: "http", LOG_LEVEL: "loud" };
  try {
    parseEnv(bad);
    assert.unreachable("should throw");
  } catch (err) {
    assert.instance(err, ConfigError);
    const message = (err as Error).message;
    for (const name of ["MQTT_PORT", "GATEWAY_HTTP_PORT", "LOG_LEVEL", "REGISTRY_PATH"]) assert.match(message, name);
    assert.not.match(message, "\n");
  }
  assert.throws(() => parseEnv({ REGISTRY_PATH: "r.json", MQTT_PORT: "-1" }), /MQTT_PORT/);
  assert.throws(() => parseEnv({ REGISTRY_PATH: "r.json", MQTT_PORT: "18 83" }), /MQTT_PORT/);
  assert.is(parseEnv({ REGISTRY_PATH: "r.json", MQTT_PORT: "0" }).mqttPort, 0);
});

test("a busy 1883 points at an MQTT broker already running and at MQTT_URL", () => {
  const inUse = Object.assign(new Error("listen EADDRINUSE"), { code: "EADDRINUSE" });
  const mqtt = { what: "MQTT", host: "0.0.0.0", setting: "MQTT_PORT", hostSetting: "MQTT_HOST" };
  const listenErrorMessage = (err: Error, o: typeof mqtt & { port: number }) =>
    describeListenError(err, { ...o, hint: mqttPortHint(o.port) }).message;
  const message = listenErrorMessage(inUse, { ...mqtt, port: 1883 });
  assert.match(message, "1883");
  assert.match(message, "MQTT_PORT");
  assert.match(message, "Mosquitto");
  assert.match(message, "MQTT_URL=mqtt://127.0.0.1:1883");
  assert.not.match(message, "\n");
  assert.not.match(listenErrorMessage(inUse, { ...mqtt, port: 11883 }), "Mosquitto");
});

test("the CLI exits non-zero with one line naming the busy port and MQTT_PORT", async () => {
  const blocker: Server = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", () => resolve()));
  const address = blocker.address();
  assert.ok(address !== null && typeof address === "object");
  const port = address.port;
  try {
    const { code, stderr } = await run({
      REGISTRY_PATH: registryPath,
      MQTT_PORT: String(port),
      MQTT_HOST: "127.0.0.1",
      GATEWAY_HTTP_PORT: "0",
    }).exit;
    assert.is(code, 1);
    const lines = stderr.trim().split("\n");
    assert.is(lines.length, 1, stderr);
    assert.match(lines[0] ?? "", `port ${port}`);
    assert.match(lines[0] ?? "", "MQTT_PORT");
  } finally {
    await new Promise<void>((resolve) => blocker.close(() => resolve()));
  }
});

test("the CLI refuses a missing REGISTRY_PATH with exit code 2", async () => {
  const { code, stderr } = await run({}).exit;
  assert.is(code, 2);
  assert.match(stderr, "REGISTRY_PATH");
});

test("GATEWAY_REDIS_URL: a bad URL and an unreachable Redis each stop the CLI with one line, no password in it", async () => {
  const bad = await run({ REGISTRY_PATH: registryPath, GATEWAY_REDIS_URL: "http://user:hunter2@127.0.0.1:6379" }).exit;
  assert.is(bad.code, 2);
  assert.match(bad.stderr, /GATEWAY_REDIS_URL.*redis:\/\//);
  assert.not.match(bad.stderr, "hunter2");
  assert.is(bad.stderr.trim().split("\n").length, 1, bad.stderr);

  // A port nobody listens on: taken and released.
  const free = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
  const down = await run({
    REGISTRY_PATH: registryPath,
    MQTT_PORT: "0",
    GATEWAY_HTTP_PORT: "0",
    GATEWAY_REDIS_URL: `redis://:hunter2@127.0.0.1:${free}/2`,
  }).exit;
  assert.is.not(down.code, 0);
  const lines = down.stderr.trim().split("\n");
  assert.is(lines.length, 1, down.stderr);
  assert.match(lines[0]!, `GATEWAY_REDIS_URL=redis://:***@127.0.0.1:${free}/2: cannot reach Redis`);
  assert.not.match(down.stderr, "hunter2");
  console.log(`    Redis down at start: ${lines[0]}`);
});

test("GATEWAY_REDIS_URL: a database index that is not a number, or one Redis does not have, is one line, not a stack or db 0", async () => {
  const word = await run({ REGISTRY_PATH: registryPath, GATEWAY_REDIS_URL: "redis://:hunter2@127.0.0.1:6379/abc" })
    .exit;
  assert.is(word.code, 2, word.stderr);
  assert.is(word.stderr.trim().split("\n").length, 1, word.stderr);
  assert.match(word.stderr, /GATEWAY_REDIS_URL.*database/);
  assert.not.match(word.stderr, "hunter2");

  // Redis has 16 databases unless configured otherwise: SELECT 99 fails, and the gateway must not run on db 0 instead.
  const missing = await run({
    REGISTRY_PATH: registryPath,
    MQTT_PORT: "0",
    GATEWAY_HTTP_PORT: "0",
    GATEWAY_REDIS_URL: "redis://127.0.0.1:6379/99",
  }).exit;
  assert.is(missing.code, 1, missing.stderr);
  const lines = missing.stderr.trim().split("\n");
  assert.is(lines.length, 1, missing.stderr);
  assert.match(lines[0]!, /GATEWAY_REDIS_URL=redis:\/\/127\.0\.0\.1:6379\/99: cannot reach Redis \(ERR DB index/);
});

test("the CLI serves MQTT and /healthz, and SIGTERM stops it with exit 0", async () => {
  const cli = run({
    REGISTRY_PATH: registryPath,
    MQTT_PORT: "0",
    MQTT_HOST: "127.0.0.1",
    GATEWAY_HTTP_PORT: "0",
    GATEWAY_INSTANCE: "gw-main-test",
  });
  const mqttPort = (await cli.logLine("MQTT gateway listening")).port as number;
  const httpPort = (await cli.logLine("health and metrics listening")).port as number;

  const client = await connectAsync(`mqtt://127.0.0.1:${mqttPort}`, {
    clientId: deviceIdentity.clientId(kiosk),
    username: deviceIdentity.username(kiosk),
    password: SECRET,
    reconnectPeriod: 0,
  });
  const health = await fetch(`http://127.0.0.1:${httpPort}/healthz`);
  assert.is(health.status, 200);
  assert.equal(await health.json(), { status: "ok", clients: 1, instance: "gw-main-test", persistence: "memory" });
  const metrics = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  assert.match(metrics, "paylane_gateway_connections_total 1");
  assert.match(metrics, "process_cpu_seconds_total");

  const clientClosed = new Promise<void>((resolve) => client.once("close", () => resolve()));
  cli.child.kill("SIGTERM");
  const { code, stderr } = await cli.exit;
  assert.is(code, 0, stderr);
  await clientClosed;
  await client.endAsync(true);
});

test.run();
