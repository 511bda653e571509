/**
 * The alerts scenario both MQTT suites run (alerts-mqtt.test.ts on the aedes
 * gateway, alerts-mosquitto.test.ts on Mosquitto with the ACLs generated from
 * the registry). Alerts end to end on real parts: the broker, the cloud on Postgres
 * (a schema of its own), a device publishing with its own
 * credentials, a viewer operator on the broker, and local HTTP servers
 * standing in for the webhook receiver and PagerDuty.
 *
 * The retained alert topic holds a firing alert and is cleared on resolve;
 * a webhook that hangs and then answers 500 is retried while the device's
 * journal entries keep being acked; the API lists what fires and lets an
 * operator resolve a staff call; a restarted cloud fires nothing again and
 * still resolves what fired before.
 */
import { createHmac, randomBytes, randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Gateway } from "@paylane/gateway";
import {
  AckSchema,
  type Alert,
  AlertSchema,
  alertTopicLevel,
  decode,
  deviceIdentity,
  hashSecret,
  operatorUsername,
  Registry,
  type RegistryFile,
  type Telemetry,
  topics,
} from "@paylane/protocol";
import mqtt, { type MqttClient } from "mqtt";
import pino from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import * as assert from "uvu/assert";
import { PrivateMosquitto } from "../../test/support/private-mosquitto.ts";
import { mintOperatorToken } from "../src/api/auth.ts";
import { CloudService } from "../src/cloud.ts";
import { parseCloudEnv } from "../src/config.ts";
import { openPg } from "../src/db/pg.ts";

const PG_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const quiet = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });
const WEBHOOK_SECRET = "integration-webhook-secret";
const ROUTING_KEY = "R0UT1NGKEY0123456789ABCDEFGHIJKL";
const JWT_SECRET = randomBytes(32).toString("base64url");

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
}

/** A sink's stand-in: the first request can be held until `release()`, answers follow `answers` then 202. */
class StandIn {
  readonly received: Received[] = [];
  #server: Server | undefined;
  #release: (() => void) | undefined;
  url = "";

  constructor(
    readonly answers: number[] = [],
    readonly holdFirst = false,
  ) {}

  async start(): Promise<this> {
    this.#server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        this.received.push({ headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
        const answer = () => {
          res.writeHead(this.answers.shift() ?? 202, { "content-type": "application/json" });
          res.end('{"status":"success"}');
        };
        if (this.holdFirst && this.received.length === 1) this.#release = answer;
        else answer();
      });
    });
    await new Promise<void>((resolve) => this.#server!.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.#server!.address() as AddressInfo).port}/in`;
    return this;
  }

  release(): void {
    this.#release?.();
  }

  bodies(): Array<Record<string, unknown>> {
    return this.received.map((r) => JSON.parse(r.body));
  }

  async stop(): Promise<void> {
    this.#server?.closeAllConnections();
    await new Promise((resolve) => this.#server?.close(resolve));
  }
}

async function until(check: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Every message an MQTT client receives, in order. */
function recorder(client: MqttClient): Array<{ topic: string; payload: string; retain: boolean }> {
  const seen: Array<{ topic: string; payload: string; retain: boolean }> = [];
  client.on("message", (topic, payload, packet) =>
    seen.push({ topic, payload: payload.toString(), retain: packet.retain }),
  );
  return seen;
}

const telemetry = (over: Partial<Telemetry> = {}): Telemetry => ({
  at: new Date().toISOString(),
  backlog: 0,
  ackedUpTo: 0,
  lastSeq: 0,
  replicaVersion: 1,
  reader: "ok",
  uptimeSeconds: 10,
  printer: { state: "ok", paper: "ok" },
  ...over,
});

export type AlertsBroker = "aedes" | "mosquitto";

/** Runs the whole scenario on `broker`; throws (an uvu assertion) on the first thing that is wrong. */
export async function alertsScenario(broker: AlertsBroker): Promise<void> {
  const site = `t${randomBytes(4).toString("hex")}`;
  const k1 = { site, device: "k1" };
  const dir = await mkdtemp(join(tmpdir(), "paylane-alerts-"));
  const secrets = { k1: randomBytes(18).toString("base64url"), cloud: randomBytes(18).toString("base64url") };
  const viewerPassword = randomBytes(18).toString("base64url");
  const file: RegistryFile = {
    version: 1,
    devices: [{ site, device: "k1", secretHash: await hashSecret(secrets.k1) }],
    services: [{ id: "cloud", role: "bridge", secretHash: await hashSecret(secrets.cloud) }],
    operators: [{ id: "watcher", role: "viewer", sites: [site], secretHash: await hashSecret(viewerPassword) }],
  };
  const registryPath = join(dir, "registry.json");
  await Registry.save(registryPath, file);
  let stopBroker: () => Promise<void>;
  let url: string;
  if (broker === "aedes") {
    const gateway = new Gateway({
      registry: new Registry(file),
      port: 0,
      logger: quiet,
      metrics: new MetricsRegistry(),
    });
    await gateway.start();
    url = `mqtt://127.0.0.1:${gateway.port}`;
    stopBroker = () => gateway.stop();
  } else {
    const mosquitto = new PrivateMosquitto(dir, {
      registry: registryPath,
      secrets: { [`${site}/k1`]: secrets.k1, "svc:cloud": secrets.cloud, "ops:watcher": viewerPassword },
    });
    await mosquitto.start();
    url = mosquitto.url;
    stopBroker = () => mosquitto.kill();
  }
  const hook = await new StandIn([500], true).start();
  const pd = await new StandIn().start();
  const schema = `t_${randomBytes(6).toString("hex")}`;
  const db = await openPg({ url: PG_URL, schema });
  const clients: MqttClient[] = [];
  const connect = async (username: string, password: string, clientId: string) => {
    const c = await mqtt.connectAsync(url, { clientId, username, password, protocolVersion: 4, reconnectPeriod: 0 });
    clients.push(c);
    return c;
  };
  const startCloud = async () => {
    const cloud = new CloudService({
      config: parseCloudEnv({
        CLOUD_PORT: "0",
        MQTT_URL: url,
        CLOUD_MQTT_SECRET: secrets.cloud,
        REGISTRY_PATH: registryPath,
        CLOUD_INSTANCE: `alerts-${site}`,
        CLOUD_JWT_SECRET: JWT_SECRET,
        ALERT_WEBHOOK_URL: hook.url,
        ALERT_WEBHOOK_SECRET: WEBHOOK_SECRET,
        PAGERDUTY_ROUTING_KEY: ROUTING_KEY,
        PAGERDUTY_EVENTS_URL: pd.url,
        ALERT_SINK_RETRY_MS: "50",
      }),
      logger: quiet,
      db,
      site,
    });
    await cloud.start();
    return cloud;
  };
  let cloud = await startCloud();
  const api = async (path: string, role: "viewer" | "operator", init: RequestInit = {}) => {
    const token = await mintOperatorToken(JWT_SECRET, { sub: `ops-${role}`, role, sites: [site] });
    return fetch(new URL(path, cloud.url), { ...init, headers: { authorization: `Bearer ${token}` } });
  };
  try {
    const device = await connect(deviceIdentity.username(k1), secrets.k1, deviceIdentity.clientId(k1));
    const acks: number[] = [];
    device.on("message", (_t, payload) => {
      const ack = decode(AckSchema, payload);
      if (ack.ok) acks.push(ack.value.upTo);
    });
    await device.subscribeAsync(topics.ack(k1), { qos: 1 });
    const live = await connect(operatorUsername("watcher"), viewerPassword, `watch-${site}`);
    const liveSeen = recorder(live);
    await live.subscribeAsync(topics.alerts(site), { qos: 1 });

    // 1. Paper out: the webhook's first attempt hangs (then fails); everything else goes on.
    await device.publishAsync(
      topics.telemetry(k1),
      JSON.stringify(telemetry({ printer: { state: "ok", paper: "out" } })),
      {
        qos: 1,
      },
    );
    const paperOut = `paper-out:${site}:k1`;
    const paperTopic = topics.alert(site, alertTopicLevel(paperOut));
    await until(() => hook.received.length === 1, "the webhook's first (held) attempt");
    await until(() => pd.received.length === 1, "PagerDuty's trigger");
    assert.equal(
      { action: pd.bodies()[0]!.event_action, dedup: pd.bodies()[0]!.dedup_key },
      { action: "trigger", dedup: paperOut },
    );
    await until(() => liveSeen.some((m) => m.topic === paperTopic), "the live alert");

    // A viewer arriving now gets the firing alert: it is retained.
    const late = await connect(operatorUsername("watcher"), viewerPassword, `late-${site}`);
    const lateSeen = recorder(late);
    await late.subscribeAsync(paperTopic, { qos: 1 });
    await until(() => lateSeen.length === 1, "the retained alert");
    assert.ok(lateSeen[0]!.retain);
    const retained: Alert = AlertSchema.parse(JSON.parse(lateSeen[0]!.payload));
    assert.equal([retained.key, retained.state, retained.severity], [paperOut, "firing", "critical"]);

    // Ingest is not held back by the hanging webhook: a staff call is committed and acked.
    const entry = {
      seq: 1,
      id: randomUUID(),
      kind: "staff-call",
      at: new Date().toISOString(),
      body: { source: "button" },
    };
    await device.publishAsync(topics.events(k1), JSON.stringify({ device: "k1", entries: [entry] }), { qos: 1 });
    await until(() => acks.includes(1), "the ack of the staff call while the webhook hangs");
    const staff = `staff-called:${site}:k1`;
    await until(() => pd.bodies().some((b) => b.dedup_key === staff), "PagerDuty's staff-call trigger");
    assert.is(hook.received.length, 1, "the webhook still has only its first, unanswered attempt");

    // The webhook answers 500, is retried after the backoff, and then gets the staff call, in order.
    hook.release();
    await until(() => hook.received.length === 3, "the retry and the next alert");
    await cloud.alerts.idle();
    assert.equal(
      hook.bodies().map((b) => [b.key, b.state]),
      [
        [paperOut, "firing"],
        [paperOut, "firing"],
        [staff, "firing"],
      ],
    );
    const last = hook.received[2]!;
    const ts = String(last.headers["x-paylane-timestamp"]);
    const mac = createHmac("sha256", WEBHOOK_SECRET).update(`${ts}.${last.body}`).digest("hex");
    assert.is(last.headers["x-paylane-signature"], `sha256=${mac}`, "the HMAC verifies");
    const metrics = await cloud.metrics.metrics();
    assert.match(metrics, /paylane_alert_sink_failures_total\{sink="webhook"\} 1/);
    assert.match(metrics, /paylane_alert_sink_queue\{sink="webhook"\} 0/);

    // 2. The API: what fires now; an operator resolves the staff call (a viewer may not).
    const active = await (await api(`/api/v1/alerts/active?site=${site}`, "viewer")).json();
    assert.equal(active.items.map((a: Alert) => a.key).sort(), [paperOut, staff]);
    const path = `/api/v1/alerts/${encodeURIComponent(staff)}/resolve`;
    assert.is((await api(path, "viewer", { method: "POST" })).status, 403);
    const conflict = await api(`/api/v1/alerts/${encodeURIComponent(paperOut)}/resolve`, "operator", {
      method: "POST",
    });
    assert.is(conflict.status, 409, "paper-out resolves when the paper is back, not by hand");
    const resolved = await api(path, "operator", { method: "POST" });
    assert.is(resolved.status, 200);
    assert.is((await resolved.json()).state, "resolved");
    await until(
      () => pd.bodies().some((b) => b.dedup_key === staff && b.event_action === "resolve"),
      "PagerDuty's resolve of the staff call",
    );
    assert.equal(
      (await (await api(`/api/v1/alerts/active?site=${site}`, "viewer")).json()).items.map((a: Alert) => a.key),
      [paperOut],
    );
    // The journal's list of alerts is still there.
    const journaled = await (await api(`/api/v1/alerts?site=${site}`, "viewer")).json();
    assert.equal(
      journaled.items.map((i: { kind: string }) => i.kind),
      ["staff-call"],
    );

    // 3. A restart: nothing fires again, and what fired before still resolves.
    await cloud.stop();
    cloud = await startCloud();
    const before = { hook: hook.received.length, pd: pd.received.length };
    await device.publishAsync(
      topics.telemetry(k1),
      JSON.stringify(telemetry({ printer: { state: "ok", paper: "out" } })),
      {
        qos: 1,
      },
    );
    await device.publishAsync(topics.events(k1), JSON.stringify({ device: "k1", entries: [entry] }), { qos: 1 });
    await until(() => acks.filter((a) => a === 1).length >= 2, "the redelivered staff call acked again");
    await cloud.alerts.idle();
    assert.equal({ hook: hook.received.length, pd: pd.received.length }, before, "nothing fired again");

    const liveBefore = liveSeen.length;
    await device.publishAsync(topics.telemetry(k1), JSON.stringify(telemetry()), { qos: 1 });
    // The restarted cloud re-announces what fires (retained, as it was): only what follows it counts here.
    const afterRestart = () =>
      liveSeen.slice(liveBefore).filter((m) => m.payload === "" || JSON.parse(m.payload).state !== "firing");
    await until(() => afterRestart().length >= 2, "the resolved alert and the cleared topic");
    const [resolvedMsg, cleared] = afterRestart();
    assert.equal([resolvedMsg!.topic, JSON.parse(resolvedMsg!.payload).state], [paperTopic, "resolved"]);
    assert.equal([cleared!.topic, cleared!.payload], [paperTopic, ""], "then an empty retained payload clears it");
    await until(
      () => pd.bodies().some((b) => b.dedup_key === paperOut && b.event_action === "resolve"),
      "PagerDuty's resolve of paper-out",
    );
    await cloud.alerts.idle();
    assert.equal(
      hook
        .bodies()
        .slice(before.hook)
        .map((b) => [b.key, b.state, b.firedAt === hook.bodies()[0]!.firedAt]),
      [[paperOut, "resolved", true]],
      "the alert fired before the restart is the one resolved",
    );

    // A fresh viewer finds only what fires now: the cleared paper-out is gone, a new alert is there.
    await device.publishAsync(topics.telemetry(k1), JSON.stringify(telemetry({ reader: "disconnected" })), { qos: 1 });
    await until(
      () => liveSeen.some((m) => m.topic.endsWith(":k1") && m.topic.includes("reader-disconnected")),
      "reader",
    );
    const fresh = await connect(operatorUsername("watcher"), viewerPassword, `fresh-${site}`);
    const freshSeen = recorder(fresh);
    await fresh.subscribeAsync(topics.alerts(site), { qos: 1 });
    await until(() => freshSeen.length >= 1, "the retained reader alert");
    assert.equal(
      freshSeen.map((m) => JSON.parse(m.payload).key),
      [`reader-disconnected:${site}:k1`],
    );
  } finally {
    for (const c of clients) await c.endAsync(true).catch(() => {});
    await cloud.stop();
    await stopBroker();
    await hook.stop();
    await pd.stop();
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await db.close();
    await rm(dir, { recursive: true, force: true });
  }
}
