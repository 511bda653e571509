/**
 * Issue 12, "The gateway under hostile clients": before authenticating, one
 * TCP client sent a PUBLISH announcing 250 MB and the gateway kept every byte;
 * a flood of connections made a legitimate kiosk wait 2.3 s to connect.
 *
 * The real `paylane-gateway` CLI runs as a child process (so its RSS is its
 * own) with its default limits. Measurements (RSS, connect times) are
 * printed; the assertions are the behaviour: the oversize connection closed
 * early and alone, every kiosk connected within 2 s of the flood.
 */
// run-tests: alone (the 2 s is the gateway's under a flood, not a share of two cores with another suite: CI once saw 2011 ms beside one)
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { type Socket, connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { type DeviceAddress, Registry, topics } from "@paylane/protocol";
import { connectAsync, type MqttClient } from "mqtt";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { deviceLogin, type GatewayCli, metric, registryFile, rssMiB, runGateway } from "./gateway-cli.ts";

const SITE = "flood";
const KIOSKS: DeviceAddress[] = Array.from({ length: 20 }, (_, i) => ({ site: SITE, device: `k${i + 1}` }));
const secretOf = (a: DeviceAddress) => `secret-of-${a.device}-0123456789`;
/** The attacker's source address: another loopback address than the kiosks' 127.0.0.1. */
const ATTACKER = "127.0.0.2";
const FLOOD_ATTEMPTS = Number(process.env.FLOOD_ATTEMPTS ?? 1000);
/** Flood sockets open at once (the loop is bounded in count and in flight): a steady stream for seconds. */
const FLOOD_IN_FLIGHT = 200;
/** 250 MB announced, a few MB actually sent. */
const ANNOUNCED = 250_000_000;
const SEND_AT_MOST = 8 * 1024 * 1024;
const KIOSK_CONNECT_BOUND_MS = 2000;
const FLOODER = fileURLToPath(new URL("./gateway-flooder.ts", import.meta.url));

let dir: string;
let registryPath: string;

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), "paylane-flood-"));
  registryPath = join(dir, "registry.json");
  await Registry.save(
    registryPath,
    await registryFile(KIOSKS.map((address) => ({ address, secret: secretOf(address) }))),
  );
});

test.after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function startGateway(): Promise<{ cli: GatewayCli; mqttPort: number; httpPort: number }> {
  const cli = runGateway({ REGISTRY_PATH: registryPath, MQTT_PORT: "0" });
  const mqttPort = (await cli.logLine("MQTT gateway listening")).port as number;
  const httpPort = (await cli.logLine("health and metrics listening")).port as number;
  return { cli, mqttPort, httpPort };
}

const kiosk = (port: number, address: DeviceAddress, extra = {}) =>
  connectAsync(`mqtt://127.0.0.1:${port}`, {
    ...deviceLogin(address, secretOf(address)),
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    ...extra,
  });

const socketClosed = (socket: Socket) =>
  new Promise<void>((resolve) => (socket.destroyed ? resolve() : socket.once("close", () => resolve())));

/** Resolves with `what`, or rejects after `ms`: a bound on a test that fails on the old code, never a sleep. */
function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([promise, bound]).finally(() => clearTimeout(timer));
}

test("a PUBLISH announcing 250 MB before CONNECT closes that connection at its header; RSS stays flat", async () => {
  const { cli, mqttPort, httpPort } = await startGateway();
  try {
    // A kiosk already connected: only the hostile connection may close.
    const bystander = await kiosk(mqttPort, KIOSKS[0]!);
    const rssBefore = await rssMiB(cli.child.pid!);

    const socket = tcpConnect({ host: "127.0.0.1", port: mqttPort });
    socket.on("error", () => {}); // EPIPE / ECONNRESET once the gateway closes it: that is the point
    await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
    const closed = socketClosed(socket);
    const topic = Buffer.from(topics.telemetry(KIOSKS[0]!), "utf8");
    // PUBLISH QoS 0, Remaining Length 250,000,000 (0x80 0xe5 0x9a 0x77), topic, then payload bytes.
    socket.write(
      Buffer.concat([Buffer.from([0x30, 0x80, 0xe5, 0x9a, 0x77, topic.length >> 8, topic.length & 0xff]), topic]),
    );
    const chunk = Buffer.alloc(64 * 1024, 0x41);
    let sent = 0;
    let isClosed = false;
    void closed.then(() => {
      isClosed = true;
    });
    const started = performance.now();
    while (!isClosed && sent < SEND_AT_MOST) {
      sent += chunk.length;
      if (!socket.write(chunk)) {
        await Promise.race([new Promise((resolve) => socket.once("drain", resolve)), closed]);
      }
    }
    await within(5000, "the gateway closes the oversize connection", closed);
    const closedAfterMs = Math.round(performance.now() - started);
    const rssAfter = await rssMiB(cli.child.pid!);
    console.log(
      `250 MB announced: connection closed after ${closedAfterMs} ms, ${(sent / 1048576).toFixed(1)} MiB of payload written ` +
        `(kernel buffers included); gateway RSS ${rssBefore} MiB before, ${rssAfter} MiB after`,
    );
    // The old code buffered every byte it was sent and never closed the connection.
    assert.ok(sent < SEND_AT_MOST, "closed before the attacker could send its 8 MiB");
    assert.ok(rssAfter - rssBefore < 32, `RSS grew ${rssAfter - rssBefore} MiB`);
    assert.is(await metric(httpPort, "paylane_gateway_oversize_packets_total", { reason: "oversize" }), 1);
    const warning = await cli.logLine(
      "packet larger than the maximum packet size announced; connection closed before its payload (MQTT_MAX_PACKET_BYTES)",
    );
    assert.is(warning.remote, "127.0.0.1");
    assert.is(warning.announced, ANNOUNCED + 5);

    // The bystander is untouched: its own publish still round-trips.
    assert.ok(bystander.connected);
    await bystander.subscribeAsync(topics.ack(KIOSKS[0]!), { qos: 1 });
    await bystander.publishAsync(topics.telemetry(KIOSKS[0]!), "{}", { qos: 1 });
    await bystander.endAsync();
  } finally {
    await cli.stop();
  }
});

/** The flood, from its own process (gateway-flooder.ts): resolves `underWay` after its 100th attempt, `done` with its summary. */
function startFlood(port: number) {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", FLOODER, String(port), String(FLOOD_ATTEMPTS), String(FLOOD_IN_FLIGHT), ATTACKER, SITE],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const lines = createInterface({ input: child.stdout! });
  const underWay = new Promise<void>((resolve) => lines.on("line", (line) => line === "under way" && resolve()));
  const done = new Promise<{ attempts: number; closed: number; ms: number }>((resolve, reject) => {
    lines.on("line", (line) => line.startsWith("{") && resolve(JSON.parse(line)));
    child.once("close", (code) => reject(new Error(`the flooder exited ${code} without a summary`)));
  });
  return { child, underWay, done };
}

/** Connects the 20 kiosks at once; each one's ms from `since` to its CONNACK. */
async function connectFleet(port: number, clients: MqttClient[]): Promise<number[]> {
  const since = performance.now();
  return within(
    15_000,
    "20 kiosks connected",
    Promise.all(
      KIOSKS.map(async (address) => {
        const client = await kiosk(port, address);
        clients.push(client);
        return Math.round(performance.now() - since);
      }),
    ),
  );
}

/**
 * The kiosks' own cost, without a flood: 20 scrypt checks (~25 ms of CPU
 * each) on a fresh gateway. On a quiet 2-core machine the fleet is in within
 * about a second; on a machine busy with other tests it takes longer, flood
 * or not, so the bound below is 2 s or twice this, whichever is larger.
 */
let baselineMs = 0;

test("baseline: 20 kiosks reconnect to a fresh gateway without a flood", async () => {
  const { cli, mqttPort } = await startGateway();
  const clients: MqttClient[] = [];
  try {
    const times = await connectFleet(mqttPort, clients);
    baselineMs = Math.max(...times);
    console.log(`kiosk connect times without a flood (ms): ${times.sort((a, b) => a - b).join(" ")}`);
  } finally {
    await Promise.all(clients.map((c) => c.endAsync(true)));
    await cli.stop();
  }
});

test("1,000 connection attempts from one address while 20 kiosks reconnect: every kiosk is in within 2 s", async () => {
  // A fresh gateway: no secret verified yet, as after a restart, so every kiosk needs its scrypt check.
  const { cli, mqttPort, httpPort } = await startGateway();
  const clients: MqttClient[] = [];
  let sampler: NodeJS.Timeout | undefined;
  let floodChild: ChildProcess | undefined;
  try {
    const rssBefore = await rssMiB(cli.child.pid!);
    let rssPeak = rssBefore;
    sampler = setInterval(() => {
      rssMiB(cli.child.pid!).then(
        (mib) => {
          rssPeak = Math.max(rssPeak, mib);
        },
        () => {},
      );
    }, 100);

    const flood = startFlood(mqttPort);
    floodChild = flood.child;

    // The kiosks reconnect while the flood is under way.
    await flood.underWay;
    const times = await connectFleet(mqttPort, clients);
    const summary = await flood.done;
    const rssAfter = await rssMiB(cli.child.pid!);

    const refused = await metric(httpPort, "paylane_gateway_rate_limited_total", { limit: "connect" });
    const authFailures = await metric(httpPort, "paylane_gateway_auth_failures_total");
    console.log(
      `flood: ${summary.attempts} attempts from ${ATTACKER} in ${summary.ms} ms, ${refused} refused by the connect-rate limit, ` +
        `${authFailures} wrong-password CONNECTs checked`,
    );
    console.log(
      `kiosk connect times during the flood (ms, from its 100th attempt): ${times.sort((a, b) => a - b).join(" ")}`,
    );
    console.log(`gateway RSS: ${rssBefore} MiB before, ${rssPeak} MiB peak, ${rssAfter} MiB after`);

    assert.is(summary.closed, FLOOD_ATTEMPTS);
    const bound = Math.max(KIOSK_CONNECT_BOUND_MS, 2 * baselineMs);
    console.log(`bound: ${bound} ms (2 s, or twice the no-flood ${baselineMs} ms on a busy machine)`);
    for (const ms of times) assert.ok(ms < bound, `a kiosk took ${ms} ms to connect`);
    assert.ok(refused > 0, "the flood met the per-address connect limit");
    assert.ok(rssPeak < 512, `gateway RSS peaked at ${rssPeak} MiB`);
    const warning = await cli.logLine(
      "connect rate over the per-address limit; refusing connections from this address for the rest of the window",
    );
    assert.is(warning.remote, ATTACKER);
    // Logged once for the window, not once per refused socket.
    assert.is(
      cli.lines.filter((line) => line.msg === warning.msg).length,
      1,
      "one log line for the whole refused flood",
    );
  } finally {
    clearInterval(sampler);
    floodChild?.kill();
    await Promise.all(clients.map((c) => c.endAsync(true)));
    await cli.stop();
  }
});

test.run();
