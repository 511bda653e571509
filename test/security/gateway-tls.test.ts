/**
 * Issue 12: "TLS listener (mqtts, certificate and key from configuration;
 * Node's tls), tested with the real mosquitto_pub --cafile against a
 * certificate the test makes. MQTT over secure WebSocket likewise."
 *
 * The test makes a CA and a server certificate for localhost with openssl,
 * starts the real `paylane-gateway` CLI with MQTT_TLS_CERT / MQTT_TLS_KEY,
 * MQTT_TLS_PORT and MQTT_WSS_PORT, and publishes through both with real
 * clients: mosquitto_pub over mqtts, mqtt.js over wss. The packet size limit
 * holds on both; a bad certificate path is one line naming the variable.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { promisify } from "node:util";
import { type DeviceAddress, hashSecret, Registry, serviceUsername, topics } from "@paylane/protocol";
import { connectAsync, type MqttClient } from "mqtt";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { WebSocket } from "ws";
import { deviceLogin, type GatewayCli, metric, runGateway } from "./gateway-cli.ts";

const run = promisify(execFile);

const K1: DeviceAddress = { site: "tls", device: "k1" };
const SECRET = "secret-of-k1-0123456789";
const BRIDGE_SECRET = "secret-of-the-bridge-0123456789";

let dir: string;
let registryPath: string;
let ca: Buffer;
let cli: GatewayCli;
let tlsPort: number;
let wssPort: number;
let httpPort: number;
let subscriber: MqttClient;
const received: { topic: string; payload: string }[] = [];
let arrived: () => void = () => {};

/** Resolves once a message matching `match` has been received by the subscriber. */
function receivedWhere(match: (m: { topic: string; payload: string }) => boolean): Promise<void> {
  return new Promise((resolve) => {
    const check = () => {
      if (received.some(match)) resolve();
      else arrived = check;
    };
    check();
  });
}

async function openssl(...args: string[]): Promise<void> {
  await run("openssl", args, { cwd: dir });
}

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), "paylane-tls-"));
  // A CA, and a server certificate it signs for localhost and 127.0.0.1 (P-256: quick to make).
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await openssl(
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "2",
    "-subj",
    "/CN=PayLane test CA",
  );
  await openssl("req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost");
  await writeFile(join(dir, "ext.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
  await openssl(
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "server.pem",
    "-days",
    "2",
    "-extfile",
    "ext.cnf",
  );
  ca = await readFile(join(dir, "ca.pem"));

  registryPath = join(dir, "registry.json");
  await Registry.save(registryPath, {
    version: 1,
    devices: [{ ...K1, secretHash: await hashSecret(SECRET) }],
    services: [{ id: "cloud", role: "bridge", secretHash: await hashSecret(BRIDGE_SECRET) }],
  });
  cli = runGateway({
    REGISTRY_PATH: registryPath,
    MQTT_PORT: "0",
    MQTT_TLS_PORT: "0",
    MQTT_WSS_PORT: "0",
    MQTT_TLS_CERT: join(dir, "server.pem"),
    MQTT_TLS_KEY: join(dir, "server.key"),
  });
  tlsPort = (await cli.logLine("MQTT over TLS listening")).port as number;
  wssPort = (await cli.logLine("MQTT over secure WebSocket listening")).port as number;
  httpPort = (await cli.logLine("health and metrics listening")).port as number;

  // The cloud's bridge reads every device's telemetry, itself over mqtts.
  subscriber = await connectAsync(`mqtts://localhost:${tlsPort}`, {
    ca,
    clientId: "paylane-bridge-tls",
    username: serviceUsername("cloud"),
    password: BRIDGE_SECRET,
    reconnectPeriod: 0,
    protocolVersion: 4,
  });
  subscriber.on("message", (topic, payload) => {
    received.push({ topic, payload: payload.toString("utf8") });
    arrived();
  });
  await subscriber.subscribeAsync(topics.fleet("telemetry"), { qos: 1 });
});

test.after(async () => {
  await subscriber?.endAsync(true);
  await cli?.stop();
  await rm(dir, { recursive: true, force: true });
});

test("mosquitto_pub --cafile publishes over mqtts; the subscriber receives it", async () => {
  const login = deviceLogin(K1, SECRET);
  const payload = JSON.stringify({ via: "mosquitto_pub", tls: true });
  const args = [
    "--cafile",
    join(dir, "ca.pem"),
    "-h",
    "localhost",
    "-p",
    String(tlsPort),
    "-V",
    "mqttv311",
    "-u",
    login.username,
    "-P",
    login.password,
    "-i",
    login.clientId,
    "-t",
    topics.telemetry(K1),
    "-q",
    "1",
    "-m",
    payload,
  ];
  // The transcript, without the secret.
  console.log(`$ mosquitto_pub ${args.join(" ").replace(login.password, "<secret>")}`);
  const { stdout, stderr } = await run("mosquitto_pub", [...args, "-d"]);
  console.log(
    `${stdout}${stderr}`
      .split("\n")
      .filter((l) => l.trim())
      .map((l) => `  ${l}`)
      .join("\n"),
  );
  await receivedWhere((m) => m.topic === topics.telemetry(K1) && m.payload === payload);
});

test("without the CA, mosquitto_pub refuses the certificate; plain MQTT on the TLS port gets nowhere", async () => {
  const login = deviceLogin(K1, SECRET);
  // --capath of an empty folder: no CA trusts the test's certificate.
  const empty = await mkdtemp(join(dir, "no-ca-"));
  try {
    await run("mosquitto_pub", [
      "--capath",
      empty,
      "-h",
      "localhost",
      "-p",
      String(tlsPort),
      "-u",
      login.username,
      "-P",
      login.password,
      "-i",
      login.clientId,
      "-t",
      topics.telemetry(K1),
      "-m",
      "{}",
    ]);
    assert.unreachable("mosquitto_pub should have refused the certificate");
  } catch (err) {
    const stderr = String((err as { stderr?: string }).stderr ?? "");
    console.log(`  without --cafile: ${stderr.trim().split("\n")[0]}`);
    assert.match(stderr, /certificate verify failed|Protocol error|TLS/i);
  }
});

test("mqtt.js over wss:// connects with the registry credentials and publishes", async () => {
  const client = await connectAsync(`wss://localhost:${wssPort}/mqtt`, {
    ...deviceLogin(K1, SECRET),
    ca,
    reconnectPeriod: 0,
    protocolVersion: 4,
  });
  try {
    const payload = JSON.stringify({ via: "wss" });
    await client.publishAsync(topics.telemetry(K1), payload, { qos: 1 });
    await receivedWhere((m) => m.payload === payload);
    // Credentials are checked on wss as on mqtt.
    try {
      await connectAsync(`wss://localhost:${wssPort}/mqtt`, {
        ...deviceLogin(K1, "not-the-secret"),
        ca,
        reconnectPeriod: 0,
        protocolVersion: 4,
      });
      assert.unreachable("a wrong secret should be refused");
    } catch (err) {
      assert.is((err as { code?: number }).code, 4);
    }
  } finally {
    await client.endAsync();
  }
});

test("the maximum packet size holds on mqtts and wss: a 250 MB announcement closes the connection", async () => {
  const before = await metric(httpPort, "paylane_gateway_oversize_packets_total");
  // PUBLISH, Remaining Length 250,000,000, then a few bytes of it.
  const header = Buffer.from([0x30, 0x80, 0xe5, 0x9a, 0x77, 0x00, 0x01, 0x74]);

  const tls = tlsConnect({ host: "localhost", port: tlsPort, ca, servername: "localhost" });
  tls.on("error", () => {});
  await new Promise<void>((resolve) => tls.once("secureConnect", () => resolve()));
  const tlsClosed = new Promise<void>((resolve) => tls.once("close", () => resolve()));
  tls.write(Buffer.concat([header, Buffer.alloc(64 * 1024)]));
  await tlsClosed;

  const ws = new WebSocket(`wss://localhost:${wssPort}/mqtt`, ["mqtt"], { ca });
  ws.on("error", () => {});
  await new Promise<void>((resolve) => ws.once("open", () => resolve()));
  const wsClosed = new Promise<void>((resolve) => ws.once("close", () => resolve()));
  ws.send(Buffer.concat([header, Buffer.alloc(1024)]));
  await wsClosed;

  assert.is(await metric(httpPort, "paylane_gateway_oversize_packets_total"), before + 2);
});

test("a missing certificate file or a key of another certificate: one line naming the variable, exit 2", async () => {
  const missing = await runGateway({
    REGISTRY_PATH: registryPath,
    MQTT_PORT: "0",
    MQTT_TLS_PORT: "0",
    MQTT_TLS_CERT: join(dir, "nope.pem"),
    MQTT_TLS_KEY: join(dir, "server.key"),
  }).exit;
  assert.is(missing.code, 2);
  assert.is(missing.stderr.trim().split("\n").length, 1, missing.stderr);
  assert.match(missing.stderr, `MQTT_TLS_CERT=${join(dir, "nope.pem")}: cannot read it (no such file)`);
  console.log(`  ${missing.stderr.trim()}`);

  const mismatch = await runGateway({
    REGISTRY_PATH: registryPath,
    MQTT_PORT: "0",
    MQTT_TLS_PORT: "0",
    MQTT_TLS_CERT: join(dir, "server.pem"),
    MQTT_TLS_KEY: join(dir, "ca.key"),
  }).exit;
  assert.is(mismatch.code, 2);
  assert.match(mismatch.stderr, "MQTT_TLS_KEY");
  assert.match(mismatch.stderr, "is not the key of the certificate in MQTT_TLS_CERT");
  assert.not.match(mismatch.stderr, "PRIVATE KEY-----\n", "the key itself is never printed");
  console.log(`  ${mismatch.stderr.trim()}`);
});

test.run();
