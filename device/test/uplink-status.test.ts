/**
 * The uplink's truthful status (docs/status.md): a session number per
 * connection on the birth, the Will and the goodbye, kept across restarts;
 * a rebirth over a late Will; and the cloud's liveness (heartbeat or ack
 * within the window) deciding `online`. Against the aedes gateway, and a
 * private open Mosquitto where a second client must be able to leave a Will
 * on the kiosk's topic. Time is a fake clock; waits are on messages.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Gateway } from "@paylane/gateway";
import {
  type CloudStatus,
  type DeviceAddress,
  deviceIdentity,
  hashSecret,
  Registry,
  serviceUsername,
  type Telemetry,
  topics,
} from "@paylane/protocol";
import { connectAsync, type MqttClient } from "mqtt";
import { pino } from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { PrivateMosquitto } from "../../test/support/private-mosquitto.ts";
import { Signal } from "../../test/support/signal.ts";
import { Journal } from "../src/journal.ts";
import { Uplink, type UplinkOptions } from "../src/uplink.ts";
import { FakeTimers } from "./fake-timers.ts";

const K1: DeviceAddress = { site: "s1", device: "k1" };
const SECRET = { k1: "k1-secret-for-tests", cloud: "cloud-secret-for-tests" };
const WAIT_MS = 10_000;
const ONLINE: CloudStatus = { state: "online", since: "2024-05-01T08:00:00.000Z", instance: "test" };

interface Received {
  topic: string;
  retain: boolean;
  json: Record<string, unknown>;
}

interface Ctx {
  dir: string;
  url: string;
  gateway: Gateway | undefined;
  mosquitto: PrivateMosquitto | undefined;
  journalPath: string;
  journal: Journal;
  timers: FakeTimers;
  uplink: Uplink;
  /** Plays the cloud: reads k1's status and telemetry, publishes STATE and acks. */
  cloud: MqttClient;
  signal: Signal;
  received: Received[];
  changes: number;
  /** The uplink's log messages. */
  logs: string[];
}

const REBIRTH_LOG = "a late Will of an older connection overwrote our status: announcing again";

let root = "";
let dirSeq = 0;

async function startGateway(ctx: Ctx): Promise<void> {
  const registry = new Registry({
    version: 1,
    devices: [{ ...K1, secretHash: await hashSecret(SECRET.k1) }],
    services: [{ id: "cloud", role: "bridge", secretHash: await hashSecret(SECRET.cloud) }],
  });
  ctx.gateway = new Gateway({ registry, port: 0, logger: pino({ level: "silent" }), metrics: new MetricsRegistry() });
  await ctx.gateway.start();
  ctx.url = `mqtt://127.0.0.1:${ctx.gateway.port}`;
}

async function startMosquitto(ctx: Ctx): Promise<void> {
  ctx.mosquitto = new PrivateMosquitto(ctx.dir);
  await ctx.mosquitto.start();
  ctx.url = ctx.mosquitto.url;
}

async function setUp(ctx: Ctx, broker: "aedes" | "mosquitto", cloudStatus: CloudStatus = ONLINE): Promise<void> {
  ctx.signal = new Signal();
  ctx.received = [];
  ctx.changes = 0;
  ctx.logs = [];
  ctx.gateway = ctx.mosquitto = undefined;
  ctx.dir = await mkdtemp(join(root, `${++dirSeq}-`));
  await (broker === "aedes" ? startGateway(ctx) : startMosquitto(ctx));
  ctx.journalPath = join(ctx.dir, "journal.db");
  ctx.journal = await Journal.open(ctx.journalPath);
  ctx.timers = new FakeTimers(START);
  ctx.cloud = await connectAsync(ctx.url, {
    clientId: `cloud-${dirSeq}`,
    username: serviceUsername("cloud"),
    password: SECRET.cloud,
    protocolVersion: 4,
    reconnectPeriod: 0,
  });
  ctx.cloud.on("message", (topic, payload, packet) => {
    if (payload.length > 0) ctx.received.push({ topic, retain: packet.retain, json: JSON.parse(payload.toString()) });
    ctx.signal.notify();
  });
  await ctx.cloud.subscribeAsync([topics.status(K1), topics.telemetry(K1)], { qos: 1 });
  await publishCloudStatus(ctx, cloudStatus);
  await startUplink(ctx);
}

async function startUplink(ctx: Ctx, opts: Partial<UplinkOptions> = {}): Promise<void> {
  ctx.uplink = new Uplink({
    address: K1,
    secret: SECRET.k1,
    url: ctx.url,
    journal: ctx.journal,
    version: "9.8.7",
    bootedAt: new Date("2024-05-01T08:59:00.000Z"),
    logger: pino({ level: "info" }, { write: (line: string) => ctx.logs.push(JSON.parse(line).msg) }),
    timers: ctx.timers,
    now: ctx.timers.now,
    cloudLivenessMs: 3000,
    onChange: () => {
      ctx.changes++;
      ctx.signal.notify();
    },
    ...opts,
  });
  await ctx.uplink.start();
  await until(ctx, () => ctx.uplink.online, "the uplink is connected and sees the cloud online");
}

async function tearDown(ctx: Ctx): Promise<void> {
  await ctx.uplink?.stop();
  await ctx.cloud?.endAsync(true);
  await ctx.gateway?.stop();
  await ctx.mosquitto?.kill();
  await ctx.journal?.close();
}

function until<T>(ctx: Ctx, check: () => T | undefined | false, what: string): Promise<T> {
  return ctx.signal.until(check, what, WAIT_MS);
}

function statuses(ctx: Ctx): Received["json"][] {
  return ctx.received.filter((m) => m.topic === topics.status(K1)).map((m) => m.json);
}

/** The first status after the first `after` ones that matches. */
function statusWhere(ctx: Ctx, after: number, match: (s: Received["json"]) => boolean, what: string) {
  return until(ctx, () => statuses(ctx).slice(after).find(match), what);
}

async function publishCloudStatus(ctx: Ctx, status: CloudStatus): Promise<void> {
  await ctx.cloud.publishAsync(topics.cloudStatus, JSON.stringify(status), { qos: 1, retain: true });
}

/** The cloud's STATE as a heartbeat (every second). */
const heartbeat = (at: Date): CloudStatus => ({ ...ONLINE, heartbeatAt: at.toISOString(), heartbeatSeconds: 1 });
const START = new Date("2024-05-01T09:00:00.000Z");

const test = suite<Ctx>("uplink status", {} as Ctx);

test.before(async () => {
  root = await mkdtemp(join(tmpdir(), "paylane-uplink-status-"));
});
test.after(async () => {
  await rm(root, { recursive: true, force: true });
});
test.after.each(tearDown);

test("the birth, the Will and the next connection: one session each, the Will with its birth's", async (ctx) => {
  await setUp(ctx, "aedes");
  const first = ctx.uplink.session;
  const birth = await statusWhere(ctx, 0, (s) => s.state === "online", "the birth");
  assert.is(birth.session, first);
  // Another connection with the kiosk's identity takes its session over: the broker fires the kiosk's Will.
  const seen = statuses(ctx).length;
  const intruder = await connectAsync(ctx.url, {
    clientId: deviceIdentity.clientId(K1),
    username: deviceIdentity.username(K1),
    password: SECRET.k1,
    protocolVersion: 4,
    reconnectPeriod: 0,
  });
  const will = await statusWhere(ctx, seen, (s) => s.state === "offline", "the kiosk's Will");
  assert.equal(will, { state: "offline", session: first }, "the Will carries the session of the birth it ends");
  await intruder.endAsync();
  await until(ctx, () => !ctx.uplink.brokerConnected, "the uplink saw its connection go");
  // The reconnect (after the backoff on the fake clock) is a new CONNECT: one more.
  const afterWill = statuses(ctx).length;
  ctx.timers.advance(60_000);
  const rebirth = await statusWhere(ctx, afterWill, (s) => s.state === "online", "the birth of the next connection");
  assert.is(rebirth.session, first + 1);
  assert.is(ctx.uplink.session, first + 1);
});

test("the session number survives a restart and grows; the goodbye carries it", async (ctx) => {
  await setUp(ctx, "aedes");
  const first = ctx.uplink.session;
  await ctx.uplink.stop();
  const bye = await statusWhere(ctx, 0, (s) => s.state === "offline", "the goodbye");
  assert.is(bye.session, first);
  await ctx.journal.close();
  // A daemon restart: the journal's file opened again, a new uplink on it.
  ctx.journal = await Journal.open(ctx.journalPath);
  const before = statuses(ctx).length;
  await startUplink(ctx);
  const birth = await statusWhere(ctx, before, (s) => s.state === "online", "the birth after the restart");
  assert.ok(ctx.uplink.session > first, `session ${ctx.uplink.session} after ${first}`);
  assert.is(birth.session, ctx.uplink.session);
});

test("a late Will of an older session over the birth: the kiosk announces itself again", async (ctx) => {
  // An open Mosquitto: a second client (not the kiosk's id) can leave a Will on the kiosk's status,
  // which fires exactly when the test says, after the kiosk's birth: a late Will, deterministically.
  await setUp(ctx, "mosquitto");
  const session = ctx.uplink.session;
  await statusWhere(ctx, 0, (s) => s.state === "online" && s.session === session, "the birth");
  const ghost = await connectAsync(ctx.url, {
    clientId: "ghost-of-an-older-connection",
    protocolVersion: 4,
    reconnectPeriod: 0,
    will: {
      topic: topics.status(K1),
      payload: Buffer.from(JSON.stringify({ state: "offline", session: session - 1 })),
      qos: 1,
      retain: true,
    },
  });
  const seen = statuses(ctx).length;
  ghost.stream.destroy(); // no DISCONNECT: the broker publishes the Will
  await statusWhere(ctx, seen, (s) => s.state === "offline" && s.session === session - 1, "the late Will");
  const rebirth = await statusWhere(ctx, seen, (s) => s.state === "online", "the rebirth");
  assert.is(rebirth.session, session, "the same connection, the same session");
  assert.ok(ctx.logs.includes(REBIRTH_LOG));
  // What a subscriber arriving now reads: the birth.
  const late = await connectAsync(ctx.url, { clientId: "late-reader", protocolVersion: 4, reconnectPeriod: 0 });
  try {
    const retained = new Promise<Received["json"]>((resolve) =>
      late.on("message", (_t, payload) => resolve(JSON.parse(payload.toString()))),
    );
    await late.subscribeAsync(topics.status(K1), { qos: 1 });
    assert.equal((await retained).state, "online");
  } finally {
    await late.endAsync(true);
  }
});

test("an offline of its own session (its goodbye, echoed) is not answered with a rebirth", async (ctx) => {
  await setUp(ctx, "mosquitto");
  const session = ctx.uplink.session;
  await statusWhere(ctx, 0, (s) => s.state === "online", "the birth");
  // A retained offline already there when the kiosk subscribes is older than its birth: no rebirth.
  await ctx.uplink.stop();
  await statusWhere(ctx, 0, (s) => s.state === "offline" && s.session === session, "the goodbye");
  const before = statuses(ctx).length;
  await startUplink(ctx);
  await statusWhere(ctx, before, (s) => s.state === "online", "the birth after the restart");
  // a telemetry message travels after any rebirth would have
  ctx.uplink.publishTelemetry(telemetry(ctx));
  await until(ctx, () => ctx.received.some((m) => m.topic === topics.telemetry(K1)), "telemetry");
  assert.not.ok(ctx.logs.includes(REBIRTH_LOG), "no rebirth over the old goodbye");
});

function telemetry(ctx: Ctx): Telemetry {
  return {
    at: ctx.timers.now().toISOString(),
    backlog: 0,
    ackedUpTo: 0,
    lastSeq: 0,
    replicaVersion: 0,
    reader: "ok",
    uptimeSeconds: 1,
  };
}

test("a cloud silent for the liveness window is unreachable; a heartbeat or an ack brings it back", async (ctx) => {
  await setUp(ctx, "aedes", heartbeat(START));
  assert.is(ctx.uplink.linkState, "online");
  const changes = ctx.changes;
  ctx.timers.advance(2999);
  assert.is(ctx.uplink.online, true, "not before the window is over");
  ctx.timers.advance(1);
  assert.is(ctx.uplink.online, false);
  assert.is(ctx.uplink.linkState, "unreachable");
  assert.is(ctx.uplink.brokerConnected, true, "the broker session is still up");
  assert.is(ctx.uplink.cloudOnline, true, "and the cloud's retained STATE still says online");
  assert.is(ctx.changes, changes + 1, "the change is reported once");

  // telemetry says so
  ctx.uplink.publishTelemetry(telemetry(ctx));
  const t = await until(ctx, () => ctx.received.find((m) => m.topic === topics.telemetry(K1)), "telemetry");
  assert.is(t.json.cloudLink, "unreachable");

  // a heartbeat (the retained STATE published again, live)
  const beforeBeat = ctx.changes;
  await publishCloudStatus(ctx, heartbeat(ctx.timers.now()));
  await until(ctx, () => ctx.uplink.online, "online again after a heartbeat");
  assert.is(ctx.uplink.linkState, "online");
  assert.is(ctx.changes, beforeBeat + 1, "the return is reported once");

  // silent again; then an ack is proof of life too
  ctx.timers.advance(3000);
  assert.is(ctx.uplink.linkState, "unreachable");
  await ctx.cloud.publishAsync(topics.ack(K1), JSON.stringify({ upTo: 0 }), { qos: 1 });
  await until(ctx, () => ctx.uplink.online, "online again after an ack");
});

test("setCloudLivenessMs applies live; a cloud without heartbeats is never judged by silence", async (ctx) => {
  await setUp(ctx, "aedes", heartbeat(START));
  ctx.uplink.setCloudLivenessMs(10_000);
  ctx.timers.advance(9_999);
  assert.is(ctx.uplink.online, true);
  ctx.timers.advance(1);
  assert.is(ctx.uplink.linkState, "unreachable");
  // The cloud says it is online without heartbeats (a cloud older than them): its STATE alone decides.
  const before = ctx.changes;
  await publishCloudStatus(ctx, ONLINE);
  await until(ctx, () => ctx.uplink.online, "online on the STATE alone");
  assert.is(ctx.changes, before + 1, "and the return is reported");
  ctx.timers.advance(600_000);
  assert.is(ctx.uplink.online, true);
  // And the cloud saying offline is unreachable, whatever the liveness.
  await publishCloudStatus(ctx, { state: "offline" });
  await until(ctx, () => !ctx.uplink.online, "offline with the cloud's STATE");
  assert.is(ctx.uplink.linkState, "unreachable");
});

test.run();
