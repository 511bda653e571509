/**
 * The notifications service on Postgres with a fake clock, fed as the bridge
 * feeds it (its fleet EventEmitter), with local HTTP servers standing in for
 * the webhook receiver and PagerDuty: an alert fires once, de-duplicates,
 * resolves and fires again; the webhook's HMAC verifies; PagerDuty gets
 * trigger then resolve with the alert key as dedup_key; a failing sink is
 * retried with backoff while the listeners stay instant; a restart neither
 * fires again nor forgets; offline timers, event-like alerts from the
 * journal and the ledger, and the thresholds.
 */
import { createHmac, randomBytes, randomUUID, timingSafeEqual } from "node:crypto";
import { EventEmitter } from "node:events";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { type Alert, AlertSchema, type Telemetry } from "@paylane/protocol";
import pino from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { FakeTimers } from "../../test/support/fake-timers.ts";
import { AlertService, type AlertSettings, alertSettings } from "../src/alerts/notifier.ts";
import type { FleetEvents } from "../src/bridge/bridge.ts";
import { parseCloudEnv } from "../src/config.ts";
import type { Database } from "../src/db/database.ts";
import { migrate } from "../src/db/migrate.ts";
import { openPg } from "../src/db/pg.ts";
import { kioskRequestKey, post } from "../src/ledger/ledger.ts";
import { DEMO_MEMBERS, seedSite } from "../src/seed.ts";

const SITE = "s1";
const SECRET = "webhook-secret-0123456789";
const ROUTING_KEY = "R0UT1NGKEY0123456789ABCDEFGHIJKL";
const quiet = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
}

/** A local HTTP server standing in for a sink: records every request, answers the scripted statuses (then 202). */
class StandIn {
  readonly received: Received[] = [];
  readonly #answers: number[];
  #server: Server | undefined;
  url = "";

  constructor(answers: number[] = []) {
    this.#answers = answers;
  }

  async start(): Promise<this> {
    this.#server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        this.received.push({ headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
        res.writeHead(this.#answers.shift() ?? 202, { "content-type": "application/json" });
        res.end('{"status":"success"}');
      });
    });
    await new Promise<void>((resolve) => this.#server!.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.#server!.address() as AddressInfo).port}/hook`;
    return this;
  }

  json(i: number): Record<string, unknown> {
    return JSON.parse(this.received[i]!.body);
  }

  async stop(): Promise<void> {
    this.#server?.closeAllConnections();
    await new Promise((resolve) => this.#server?.close(resolve));
  }
}

/** Polls `check` until it holds (real time bounds only a failing test). */
async function until(check: () => boolean | Promise<boolean>, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The receiver's side of docs/alerts.md: the signature over "<timestamp>.<body>", and a fresh timestamp. */
function verifyWebhook(r: Received, secret: string, nowSeconds: number): boolean {
  const timestamp = Number(r.headers["x-paylane-timestamp"]);
  if (!Number.isInteger(timestamp) || Math.abs(nowSeconds - timestamp) > 300) return false;
  const expected = `sha256=${createHmac("sha256", secret).update(`${timestamp}.${r.body}`).digest("hex")}`;
  const given = String(r.headers["x-paylane-signature"] ?? "");
  return given.length === expected.length && timingSafeEqual(Buffer.from(given), Buffer.from(expected));
}

const telemetry = (over: Partial<Telemetry> = {}): Telemetry => ({
  at: new Date().toISOString(),
  backlog: 0,
  ackedUpTo: 10,
  lastSeq: 10,
  replicaVersion: 1,
  reader: "ok",
  uptimeSeconds: 100,
  printer: { state: "ok", paper: "ok" },
  ...over,
});

interface Published {
  topic: string;
  payload: string;
  retain: boolean;
}

class Harness {
  readonly fleet = new EventEmitter<FleetEvents>();
  readonly published: Published[] = [];
  readonly timers = new FakeTimers(Date.UTC(2026, 11, 5, 9, 0, 0));
  readonly metrics = new MetricsRegistry();
  service!: AlertService;

  constructor(
    readonly db: Database,
    readonly settings: AlertSettings,
  ) {}

  async start(): Promise<this> {
    this.service = new AlertService({
      db: this.db,
      settings: this.settings,
      publish: async (topic, payload, opts) => {
        this.published.push({ topic, payload: payload.toString(), retain: opts.retain ?? false });
      },
      logger: quiet,
      metrics: this.metrics,
      now: this.timers.now,
      timers: this.timers,
    });
    await this.service.start();
    this.service.attach(this.fleet);
    return this;
  }

  telemetry(device: string, over: Partial<Telemetry> = {}): void {
    this.fleet.emit("telemetry", { site: SITE, device }, telemetry(over));
  }

  async metric(name: string, label = ""): Promise<number> {
    const text = await this.metrics.metrics();
    const line = text.split("\n").find((l) => l.startsWith(`${name}${label}`) || l.startsWith(`${name} `));
    return line ? Number(line.split(" ").pop()) : 0;
  }

  async stop(): Promise<void> {
    await this.service.stop();
  }
}

function settings(o: Partial<AlertSettings> = {}): AlertSettings {
  const base = alertSettings(parseCloudEnv({ REGISTRY_PATH: "unused.json" }));
  return { ...base, retry: { maxAttempts: 5, initialDelayMs: 1000, maxDelayMs: 60_000 }, ...o };
}

const PG_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";

/** Postgres, a schema of its own (dropped at close); the MQTT suite runs the cloud on PGlite. */
async function database(): Promise<Database> {
  const schema = `t_${randomBytes(6).toString("hex")}`;
  const pg = await openPg({ url: PG_URL, schema });
  const db: Database = {
    ...pg,
    kind: pg.kind,
    query: pg.query.bind(pg),
    transaction: pg.transaction.bind(pg),
    session: pg.session.bind(pg),
    exec: pg.exec.bind(pg),
    close: async () => {
      await pg.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await pg.close();
    },
  };
  await migrate(db);
  await db.query("INSERT INTO sites (id, name) VALUES ($1, $1)", [SITE]);
  for (const d of ["k1", "k2"]) await db.query("INSERT INTO devices (site_id, id) VALUES ($1, $2)", [SITE, d]);
  return db;
}

test("paper near-end fires once, is de-duplicated, resolves and fires again: to the signed webhook, PagerDuty and the MQTT topic", async () => {
  const db = await database();
  const hook = await new StandIn().start();
  const pd = await new StandIn().start();
  const h = await new Harness(
    db,
    settings({ webhook: { url: hook.url, secret: SECRET }, pagerDuty: { url: pd.url, routingKey: ROUTING_KEY } }),
  ).start();
  try {
    for (let i = 0; i < 3; i++) h.telemetry("k1", { printer: { state: "ok", paper: "near-end" } });
    await h.service.idle();
    assert.is(hook.received.length, 1, "three reports of the same condition: one alert");
    const fired = AlertSchema.parse(hook.json(0));
    assert.is(fired.key, "paper-low:s1:k1");
    assert.is(fired.state, "firing");
    assert.is(fired.severity, "warning");
    assert.ok(verifyWebhook(hook.received[0]!, SECRET, h.timers.now().getTime() / 1000), "the HMAC verifies");
    assert.not.ok(verifyWebhook(hook.received[0]!, "another-secret-0123456", h.timers.now().getTime() / 1000));
    assert.not.ok(
      verifyWebhook(hook.received[0]!, SECRET, h.timers.now().getTime() / 1000 + 3600),
      "a replay an hour later is refused by its timestamp",
    );
    assert.equal(pd.json(0), {
      routing_key: ROUTING_KEY,
      event_action: "trigger",
      dedup_key: "paper-low:s1:k1",
      payload: {
        summary: "k1: receipt paper is running low",
        source: "s1/k1",
        severity: "warning",
        timestamp: fired.firedAt,
        component: "k1",
        group: "s1",
        class: "paper-low",
        custom_details: { key: "paper-low:s1:k1", rule: "paper-low", site: "s1", device: "k1", paper: "near-end" },
      },
      client: "PayLane cloud",
    });
    const topic = "paylane/v1/cloud/alerts/s1/paper-low:s1:k1";
    assert.equal(
      h.published.map((p) => [p.topic, p.retain, p.payload === "" ? "" : JSON.parse(p.payload).state]),
      [[topic, true, "firing"]],
    );
    assert.equal(
      (await h.service.store.firing(SITE)).map((a) => a.key),
      ["paper-low:s1:k1"],
    );

    h.timers.advance(60_000);
    h.telemetry("k1", { printer: { state: "ok", paper: "ok" } });
    h.telemetry("k1", { printer: { state: "ok", paper: "ok" } });
    await h.service.idle();
    assert.is(hook.received.length, 2);
    const resolved = AlertSchema.parse(hook.json(1));
    assert.is(resolved.state, "resolved");
    assert.is(resolved.resolvedAt, h.timers.now().toISOString());
    assert.ok(verifyWebhook(hook.received[1]!, SECRET, h.timers.now().getTime() / 1000));
    assert.equal(pd.json(1), { routing_key: ROUTING_KEY, event_action: "resolve", dedup_key: "paper-low:s1:k1" });
    assert.equal(
      h.published.slice(1).map((p) => [p.retain, p.payload === "" ? "" : JSON.parse(p.payload).state]),
      [
        [false, "resolved"],
        [true, ""],
      ],
      "the resolved message goes out live, then the retained copy is cleared",
    );
    assert.equal(await h.service.store.firing(SITE), []);

    h.telemetry("k1", { printer: { state: "ok", paper: "near-end" } });
    await h.service.idle();
    assert.is(hook.received.length, 3, "the same key fires again");
    assert.is(AlertSchema.parse(hook.json(2)).state, "firing");
    assert.is(pd.json(2).event_action, "trigger");
    assert.is(pd.json(2).dedup_key, "paper-low:s1:k1");
    const { rows } = await db.query<{ fired_count: number }>("SELECT fired_count FROM alert_states WHERE key = $1", [
      "paper-low:s1:k1",
    ]);
    assert.is(rows[0]!.fired_count, 2);
    const deliveries = new Set(hook.received.map((r) => r.headers["x-paylane-delivery"]));
    assert.is(deliveries.size, 3, "each alert change has its own delivery id");
  } finally {
    await h.stop();
    await hook.stop();
    await pd.stop();
    await db.close();
  }
});

test("paper out replaces paper low; reader and printer disconnected; backlog, oldest unacked and exposure above their thresholds", async () => {
  const db = await database();
  const h = await new Harness(db, settings({ backlogMax: 100, oldestUnackedSeconds: 60, exposurePercent: 80 })).start();
  try {
    const firing = async () => (await h.service.store.firing(SITE)).map((a) => a.key).sort();
    h.telemetry("k1", { printer: { state: "ok", paper: "near-end" } });
    h.telemetry("k1", { printer: { state: "ok", paper: "out" } });
    await h.service.idle();
    assert.equal(await firing(), ["paper-out:s1:k1"]);
    h.telemetry("k1", { printer: { state: "disconnected", paper: "unknown" } });
    await h.service.idle();
    assert.equal(
      await firing(),
      ["paper-out:s1:k1", "printer-disconnected:s1:k1"],
      "unknown paper says nothing about the roll",
    );
    const payments = { currency: "EUR", offlineExposure: 7999, offlinePayments: 3, cap: 10_000 };
    h.telemetry("k2", { reader: "disconnected", backlog: 100, oldestUnackedAgeSeconds: 60, payments });
    await h.service.idle();
    assert.equal(
      (await firing()).filter((k) => k.endsWith(":k2")),
      ["reader-disconnected:s1:k2"],
      "at, not above",
    );
    h.telemetry("k2", {
      reader: "ok",
      backlog: 101,
      oldestUnackedAgeSeconds: 61,
      payments: { ...payments, offlineExposure: 8000 },
    });
    await h.service.idle();
    assert.equal(
      (await firing()).filter((k) => k.endsWith(":k2")),
      ["backlog-high:s1:k2", "exposure-near-cap:s1:k2", "oldest-unacked-high:s1:k2"],
    );
    const exposure = (await h.service.store.get("exposure-near-cap:s1:k2"))!;
    assert.is(exposure.summary, "k2: offline payment exposure at 80 % of its cap");
    assert.equal(exposure.detail, {
      offlineExposure: 8000,
      cap: 10_000,
      currency: "EUR",
      offlinePayments: 3,
      thresholdPercent: 80,
    });
    h.telemetry("k2", {});
    h.telemetry("k1", { printer: { state: "ok", paper: "ok" } });
    await h.service.idle();
    assert.equal(await firing(), []);
  } finally {
    await h.stop();
    await db.close();
  }
});

test("device offline fires after N from the offline status, a birth before N cancels it, a stale Will is ignored, a birth resolves it", async () => {
  const db = await database();
  const n = 120_000;
  const h = await new Harness(db, settings({ deviceOfflineMs: n })).start();
  const online = (session: number) =>
    ({
      state: "online",
      version: "1.0.0",
      bootedAt: h.timers.now().toISOString(),
      protocol: 1,
      session,
    }) as const;
  try {
    const firing = async () => (await h.service.store.firing(SITE)).map((a) => a.key);
    h.fleet.emit("status", { site: SITE, device: "k1" }, online(1));
    h.fleet.emit("status", { site: SITE, device: "k1" }, { state: "offline", session: 1 });
    h.timers.advance(n - 1);
    await h.service.idle();
    assert.equal(await firing(), [], "not yet");
    h.fleet.emit("status", { site: SITE, device: "k1" }, online(2));
    h.timers.advance(n);
    await h.service.idle();
    assert.equal(await firing(), [], "the birth cancelled the timer");

    // The Will of session 1 arriving late (after session 2's birth) is not the device going offline.
    h.fleet.emit("status", { site: SITE, device: "k1" }, { state: "offline", session: 1 });
    h.timers.advance(2 * n);
    await h.service.idle();
    assert.equal(await firing(), [], "a stale Will is ignored");

    h.fleet.emit("status", { site: SITE, device: "k1" }, { state: "offline", session: 2 });
    h.timers.advance(n / 2);
    h.fleet.emit("status", { site: SITE, device: "k1" }, { state: "offline", session: 2 }); // repeated: same timer
    h.timers.advance(n / 2);
    await h.service.idle();
    assert.equal(await firing(), ["device-offline:s1:k1"]);
    const alert = (await h.service.store.get("device-offline:s1:k1"))!;
    assert.is(alert.severity, "critical");
    assert.is(alert.summary, "k1 is offline (for 2 min)");
    h.fleet.emit("status", { site: SITE, device: "k1" }, online(3));
    await h.service.idle();
    assert.equal(await firing(), []);
    assert.equal(
      h.published.map((p) => [p.retain, p.payload === "" ? "" : JSON.parse(p.payload).state]),
      [
        [true, "firing"],
        [false, "resolved"],
        [true, ""],
      ],
    );
    // A clean shutdown's goodbye carries its time: the alert is due N after it, not after its arrival.
    h.fleet.emit(
      "status",
      { site: SITE, device: "k2" },
      { state: "offline", at: new Date(h.timers.now().getTime() - n).toISOString() },
    );
    h.timers.advance(0);
    await h.service.idle();
    assert.equal(await firing(), ["device-offline:s1:k2"]);
  } finally {
    await h.stop();
    await db.close();
  }
});

test("a sink answering 500 then 202 gets the retry after the backoff; the fleet listeners return at once meanwhile", async () => {
  const db = await database();
  const hook = await new StandIn([500, 503]).start();
  const h = await new Harness(
    db,
    settings({
      webhook: { url: hook.url, secret: SECRET },
      retry: { maxAttempts: 5, initialDelayMs: 1000, maxDelayMs: 60_000 },
    }),
  ).start();
  try {
    const started = performance.now();
    h.telemetry("k1", { reader: "disconnected" });
    const elapsed = performance.now() - started;
    assert.ok(elapsed < 20, `the listener returned in ${elapsed.toFixed(1)} ms`);
    await until(() => hook.received.length === 1, "the first attempt");
    await until(async () => (await h.metric("paylane_alert_sink_failures_total", '{sink="webhook"}')) === 1, "failure");
    assert.is(await h.metric("paylane_alert_sink_queue", '{sink="webhook"}'), 1, "still waiting");
    // Meanwhile the feed keeps flowing: other reports are handled and other sinks get their alerts.
    for (let i = 0; i < 1000; i++) h.telemetry("k2", { backlog: i % 100 });
    h.telemetry("k2", { printer: { state: "ok", paper: "out" } });
    await until(() => h.published.some((p) => p.topic.endsWith("paper-out:s1:k2")), "the MQTT sink unaffected");
    h.timers.advance(999);
    await new Promise((r) => setTimeout(r, 50));
    assert.is(hook.received.length, 1, "no retry before the backoff");
    h.timers.advance(1);
    await until(() => hook.received.length === 2, "the first retry");
    await until(async () => (await h.metric("paylane_alert_sink_failures_total", '{sink="webhook"}')) === 2, "failure");
    h.timers.advance(1999);
    await new Promise((r) => setTimeout(r, 50));
    assert.is(hook.received.length, 2, "the second retry waits twice as long");
    h.timers.advance(1);
    await until(() => hook.received.length >= 3, "the second retry");
    await h.service.idle();
    assert.equal(
      hook.received.map((r) => JSON.parse(r.body).key),
      ["reader-disconnected:s1:k1", "reader-disconnected:s1:k1", "reader-disconnected:s1:k1", "paper-out:s1:k2"],
      "the same alert until it is delivered, then the next, in order",
    );
    assert.is(
      new Set(hook.received.slice(0, 3).map((r) => r.headers["x-paylane-delivery"])).size,
      1,
      "retries keep their delivery id",
    );
    assert.ok(verifyWebhook(hook.received[2]!, SECRET, h.timers.now().getTime() / 1000), "re-signed with a fresh time");
    assert.is(await h.metric("paylane_alert_sink_delivered_total", '{sink="webhook"}'), 2);
    assert.is(await h.metric("paylane_alert_sink_queue", '{sink="webhook"}'), 0);
    assert.is(await h.metric("paylane_alert_sink_dropped_total", '{sink="webhook"}'), 0);
  } finally {
    await h.stop();
    await hook.stop();
    await db.close();
  }
});

test("a sink refusing for good (400) or failing past the attempts is dropped and counted, and the next alert still goes", async () => {
  const db = await database();
  const hook = await new StandIn([400, 500, 500]).start();
  const h = await new Harness(
    db,
    settings({
      webhook: { url: hook.url, secret: SECRET },
      retry: { maxAttempts: 2, initialDelayMs: 10, maxDelayMs: 10 },
    }),
  ).start();
  try {
    h.telemetry("k1", { reader: "disconnected" });
    await until(() => hook.received.length === 1, "the refused attempt");
    h.telemetry("k2", { reader: "disconnected" });
    await until(() => hook.received.length === 2, "the next alert's first attempt");
    await until(async () => (await h.metric("paylane_alert_sink_failures_total", '{sink="webhook"}')) === 2, "fail");
    h.timers.advance(10);
    await h.service.idle();
    assert.is(hook.received.length, 3, "one retry, then given up");
    assert.is(await h.metric("paylane_alert_sink_dropped_total", '{sink="webhook"}'), 2);
    h.telemetry("k1", { reader: "ok" });
    await h.service.idle();
    assert.is(hook.received.length, 4);
    assert.is(JSON.parse(hook.received[3]!.body).state, "resolved");
  } finally {
    await h.stop();
    await hook.stop();
    await db.close();
  }
});

test("a restart neither fires a firing alert again nor forgets it: the next clear resolves it", async () => {
  const db = await database();
  const hook = await new StandIn().start();
  const s = settings({ webhook: { url: hook.url, secret: SECRET } });
  const first = await new Harness(db, s).start();
  first.telemetry("k1", { printer: { state: "ok", paper: "out" } });
  await first.service.idle();
  await first.stop();
  assert.is(hook.received.length, 1);

  const second = await new Harness(db, s).start();
  try {
    assert.equal(
      second.service.active().map((a) => a.key),
      ["paper-out:s1:k1"],
    );
    second.telemetry("k1", { printer: { state: "ok", paper: "out" } });
    await second.service.idle();
    assert.is(hook.received.length, 1, "not fired again");
    // The live feed's retained copy is published again as it was (a broker may have lost it); nothing else.
    assert.equal(
      second.published.map((p) => [p.retain, JSON.parse(p.payload).state, JSON.parse(p.payload).firedAt]),
      [[true, "firing", AlertSchema.parse(hook.json(0)).firedAt]],
    );
    second.telemetry("k1", { printer: { state: "ok", paper: "ok" } });
    await second.service.idle();
    assert.is(hook.received.length, 2);
    const resolved: Alert = AlertSchema.parse(hook.json(1));
    assert.is(resolved.state, "resolved");
    assert.is(resolved.firedAt, AlertSchema.parse(hook.json(0)).firedAt, "the same alert, fired before the restart");
  } finally {
    await second.stop();
    await hook.stop();
    await db.close();
  }
});

async function journal(db: Database, device: string, seq: number, kind: string, body: object, at: Date) {
  await db.query(
    `INSERT INTO inbox (site_id, device_id, seq, entry_id, kind, outcome, at, body, received_at)
     VALUES ($1, $2, $3, gen_random_uuid()::text, $4, 'applied', $5, $6::jsonb, $5)`,
    [SITE, device, seq, kind, at, JSON.stringify(body)],
  );
}

test("staff calls and rollbacks from the journal, ledger exceptions: fire once, expire after the configured time or by an operator, fire again on a new event only", async () => {
  const db = await database();
  const resolveMs = 15 * 60_000;
  const h = await new Harness(db, settings({ eventResolveMs: resolveMs })).start();
  const committed = () => h.fleet.emit("committed", { applied: 1 } as FleetEvents["committed"][0]);
  try {
    const firing = async () => (await h.service.store.firing(SITE)).map((a) => a.key).sort();
    h.timers.advance(1000);
    await journal(db, "k1", 1, "staff-call", { source: "button" }, h.timers.now());
    await journal(db, "k1", 2, "staff-call", { source: "screen" }, h.timers.now());
    committed();
    committed();
    await h.service.idle();
    assert.equal(await firing(), ["staff-called:s1:k1"]);
    assert.is(h.published.length, 1, "two calls, one alert");
    assert.is((await h.service.store.get("staff-called:s1:k1"))!.summary, "k1: a customer asked for staff (button)");

    h.timers.advance(resolveMs - 1);
    await h.service.idle();
    assert.equal(await firing(), ["staff-called:s1:k1"]);
    h.timers.advance(1);
    await h.service.idle();
    assert.equal(await firing(), [], "resolved when its time ran out");
    const { rows } = await db.query<{ resolved_by: string }>("SELECT resolved_by FROM alert_states WHERE key = $1", [
      "staff-called:s1:k1",
    ]);
    assert.is(rows[0]!.resolved_by, "expiry");

    committed(); // the same calls scanned again: already taken into account
    h.service.scan();
    await h.service.idle();
    assert.equal(await firing(), []);

    h.timers.advance(1000);
    await journal(db, "k1", 3, "staff-call", { source: "button" }, h.timers.now());
    await journal(
      db,
      "k2",
      1,
      "journal-rolled-back",
      { epoch: 2, localLastSeq: 9, cloudAckedSeq: 7, detectedBy: "stream" },
      h.timers.now(),
    );
    await db.query(
      `INSERT INTO ledger_exceptions (site_id, device_id, seq, entry_id, reason, at, recorded_at)
       VALUES ($1, 'k2', 2, NULL, 'unknown member m9', $2, $2)`,
      [SITE, h.timers.now()],
    );
    // No commit this time: the periodic scan finds them.
    h.timers.advance(h.settings.scanIntervalMs);
    await h.service.idle();
    assert.equal(await firing(), ["journal-rolled-back:s1:k2", "ledger-exception:s1:k2", "staff-called:s1:k1"]);
    const ledger = (await h.service.store.get("ledger-exception:s1:k2"))!;
    assert.is(ledger.summary, "k2: seq 2 was not posted to the ledger: unknown member m9");

    assert.is(h.service.resolveByOperator("staff-called:s1:k1", "alice"), "resolved");
    assert.is(h.service.resolveByOperator("staff-called:s1:k1", "alice"), "not-firing");
    h.telemetry("k1", { reader: "disconnected" });
    assert.is(h.service.resolveByOperator("reader-disconnected:s1:k1", "alice"), "not-event-like");
    await h.service.idle();
    const by = await db.query<{ resolved_by: string }>("SELECT resolved_by FROM alert_states WHERE key = $1", [
      "staff-called:s1:k1",
    ]);
    assert.is(by.rows[0]!.resolved_by, "ops:alice");
  } finally {
    await h.stop();
    await db.close();
  }
});

test("an offline payment that overdraws a wallet raises ledger-exception for the kiosk that took it", async () => {
  const db = await database();
  await seedSite(
    db,
    { id: SITE, name: "Venue", timezone: "UTC" },
    DEMO_MEMBERS.filter((m) => m.id === "m-alan"),
  );
  const h = await new Harness(db, settings()).start();
  try {
    h.timers.advance(1000);
    const at = h.timers.now();
    await db.transaction((tx) =>
      post(tx, {
        site: SITE,
        memberId: "m-alan",
        kind: "purchase",
        amount: -400,
        currency: "EUR",
        requestKey: kioskRequestKey("k2", randomUUID()),
        origin: { device: "k2", seq: 7 },
        authorization: "offline",
        at,
        recordedAt: at,
      }),
    );
    h.fleet.emit("committed", { applied: 1 } as FleetEvents["committed"][0]);
    await h.service.idle();
    const alert = (await h.service.store.get("ledger-exception:s1:k2"))!;
    assert.is(alert.state, "firing");
    assert.equal(alert.detail, { kind: "overdraft", memberId: "m-alan", balanceAtOpen: -250 });
    assert.is(alert.summary, "k2: an offline payment overdrew member m-alan's wallet (-250)");
  } finally {
    await h.stop();
    await db.close();
  }
});

test("a restart re-arms an event-like alert's expiry and does not fire old journal events again", async () => {
  const db = await database();
  const s = settings({ eventResolveMs: 600_000 });
  const first = await new Harness(db, s).start();
  first.timers.advance(1000);
  await journal(db, "k1", 1, "staff-call", { source: "button" }, first.timers.now());
  first.service.scan();
  await first.service.idle();
  await first.stop();

  const second = await new Harness(db, s).start();
  try {
    second.timers.set(new Date(first.timers.now().getTime() + 599_000));
    second.service.scan();
    await second.service.idle();
    assert.equal(
      second.published.map((p) => [p.retain, JSON.parse(p.payload).state]),
      [[true, "firing"]],
      "the staff call is not fired again: only its retained copy is re-announced",
    );
    second.timers.advance(1000);
    await second.service.idle();
    assert.equal(
      second.published.map((p) => [p.retain, p.payload === "" ? "" : JSON.parse(p.payload).state]),
      [
        [true, "firing"],
        [false, "resolved"],
        [true, ""],
      ],
      "re-announced on the live feed, then resolved when its time ran out, counted from when it fired before the restart",
    );
  } finally {
    await second.stop();
    await db.close();
  }
});

test("bad sink settings are refused in one line naming the variable", () => {
  const env = { REGISTRY_PATH: "r.json" };
  assert.throws(
    () => parseCloudEnv({ ...env, ALERT_WEBHOOK_URL: "https://hooks.example.com/x" }),
    /^ALERT_WEBHOOK_SECRET: required when ALERT_WEBHOOK_URL is set/,
  );
  assert.throws(() => parseCloudEnv({ ...env, ALERT_WEBHOOK_URL: "ftp://x" }), /ALERT_WEBHOOK_URL/);
  assert.throws(
    () => parseCloudEnv({ ...env, ALERT_WEBHOOK_URL: "https://h.example.com", ALERT_WEBHOOK_SECRET: "short" }),
    /ALERT_WEBHOOK_SECRET: expected at least 16 characters/,
  );
  assert.throws(() => parseCloudEnv({ ...env, PAGERDUTY_ROUTING_KEY: "not a key" }), /PAGERDUTY_ROUTING_KEY/);
  assert.throws(() => parseCloudEnv({ ...env, ALERT_EXPOSURE_PERCENT: "150" }), /ALERT_EXPOSURE_PERCENT/);
  const ok = alertSettings(parseCloudEnv({ ...env, PAGERDUTY_ROUTING_KEY: ROUTING_KEY }));
  assert.equal(ok.pagerDuty, { url: "https://events.pagerduty.com/v2/enqueue", routingKey: ROUTING_KEY });
  assert.is(ok.webhook, undefined);
});

test.run();
