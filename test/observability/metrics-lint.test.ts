/**
 * Every service's `/metrics`, scraped live and read the way Prometheus and
 * its linter read it: the gateway (GatewayService, as paylane-gateway runs
 * it), the cloud (CloudService with its process metrics, on real Postgres)
 * and a kiosk daemon (with its process metrics), after a little traffic — a
 * kiosk connects, taps, pays, reports telemetry; an operator reads; a login
 * is refused. Each scrape must pass `promtool check metrics` (exit 0, nothing
 * printed), carry the names of /work/notes/metrics-catalogue.md with values
 * that match what happened, and never hold a member id or card UID in a
 * label value.
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CloudService,
  type Database,
  DEMO_MEMBERS,
  mintOperatorToken,
  openPg,
  parseCloudEnv,
  seedSite,
} from "@paylane/cloud";
import { KioskDaemon, parseDeviceConfig } from "@paylane/device";
import { GatewayService, parseGatewayEnv } from "@paylane/gateway";
import {
  type DeviceAddress,
  deviceIdentity,
  hashSecret,
  Registry,
  type RegistryFile,
  type Telemetry,
  topics,
} from "@paylane/protocol";
import mqtt, { type MqttClient } from "mqtt";
import pino from "pino";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { batch, checkinEntry } from "../support/probe.ts";
import { Signal } from "../support/signal.ts";
import { PG_URL } from "../support/site.ts";

const quiet = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });
const WAIT_MS = 15_000;

/** One sample of a scrape: its name, labels and value. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a Prometheus text exposition (comments skipped). */
function parseScrape(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

/** The value of the one sample of `name` whose labels include `labels`; undefined if none. */
function sampleValue(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}`);
  return found[0]?.value;
}

/** `promtool check metrics` on the scrape, on stdin: its exit code and everything it printed. */
function promtool(text: string): { status: number | null; output: string } {
  const p = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
  if (p.error) throw new Error(`promtool could not run (apt-get install prometheus): ${p.error.message}`);
  return { status: p.status, output: `${p.stdout}${p.stderr}` };
}

const site = `obs${randomBytes(4).toString("hex")}`;
const schema = `t_${randomBytes(6).toString("hex")}`;
const K1: DeviceAddress = { site, device: "k1" };
/** A device with no daemon: a raw MQTT client sends what a kiosk would, with values chosen by the test. */
const K2: DeviceAddress = { site, device: "k2" };
const secrets = { k1: randomBytes(18).toString("base64url"), k2: randomBytes(18).toString("base64url") };
const cloudSecret = randomBytes(18).toString("base64url");
const jwtSecret = randomBytes(32).toString("base64url");
const metricsToken = randomBytes(24).toString("base64url");
const signal = new Signal();

let dir = "";
let db: Database;
let gateway: GatewayService;
let cloud: CloudService;
let kiosk: KioskDaemon;
let k2: MqttClient;
/** Every telemetry report the cloud's bridge decoded, per device. */
const heard = new Map<string, Telemetry[]>();
/** Every scrape taken, for the label check at the end. */
const scrapes: Array<{ service: string; text: string }> = [];

async function scrape(service: "gateway" | "cloud" | "kiosk"): Promise<string> {
  const url =
    service === "gateway"
      ? `http://127.0.0.1:${gateway.httpPort}/metrics`
      : service === "cloud"
        ? `${cloud.url}/metrics`
        : `http://127.0.0.1:${kiosk.port}/metrics`;
  const res = await fetch(url, {
    headers: service === "cloud" ? { authorization: `Bearer ${metricsToken}` } : {},
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${service} /metrics answered ${res.status}: ${text}`);
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  scrapes.push({ service, text });
  return text;
}

/** The first report from `device` the cloud's bridge decoded after the `skip` first, matching `match`. */
function heardFrom(device: string, match: (t: Telemetry) => boolean, skip = 0): Promise<Telemetry> {
  return signal.until(() => heard.get(device)?.slice(skip).find(match), `a report from ${device}`, WAIT_MS);
}

async function operator(path: string, init: RequestInit = {}, token?: string): Promise<Response> {
  const bearer = token ?? (await mintOperatorToken(jwtSecret, { sub: "ops-metrics", role: "admin" }));
  return fetch(new URL(path, cloud.url), {
    ...init,
    headers: { authorization: `Bearer ${bearer}`, ...(init.headers as Record<string, string>) },
  });
}

const test = suite("metrics: every service's /metrics, live");

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), "paylane-metrics-"));
  const registryPath = join(dir, "registry.json");
  const file: RegistryFile = {
    version: 1,
    devices: [
      { ...K1, secretHash: await hashSecret(secrets.k1) },
      { ...K2, secretHash: await hashSecret(secrets.k2) },
    ],
    services: [{ id: "cloud", role: "bridge", secretHash: await hashSecret(cloudSecret) }],
  };
  await Registry.save(registryPath, file);
  gateway = new GatewayService({
    config: parseGatewayEnv({ REGISTRY_PATH: registryPath, MQTT_PORT: "0", GATEWAY_HTTP_PORT: "0" }),
    logger: quiet,
  });
  await gateway.start();
  const mqttUrl = `mqtt://127.0.0.1:${gateway.mqttPort}`;

  db = await openPg({ url: PG_URL, schema });
  cloud = new CloudService({
    config: parseCloudEnv({
      CLOUD_PORT: "0",
      MQTT_URL: mqttUrl,
      CLOUD_MQTT_SECRET: cloudSecret,
      REGISTRY_PATH: registryPath,
      CLOUD_INSTANCE: `metrics-${site}`,
      CLOUD_JWT_SECRET: jwtSecret,
      METRICS_TOKEN: metricsToken,
    }),
    db,
    site,
    logger: quiet,
    defaultMetrics: true, // as paylane-cloud runs
    onCommitted: signal.notify,
  });
  await cloud.start();
  cloud.bridge.fleet.on("telemetry", (device, t) => {
    heard.set(device.device, [...(heard.get(device.device) ?? []), t]);
    signal.notify();
  });
  await seedSite(db, { id: site, name: "Metrics venue", timezone: "UTC" });

  kiosk = new KioskDaemon({
    config: parseDeviceConfig({
      reader: { type: "pn532-simulator", pollIntervalMs: 5 },
      printer: { type: "simulator" },
      mqttUrl,
      site,
      device: "k1",
      secret: secrets.k1,
      cloudUrl: cloud.url,
      dataDir: join(dir, "k1"),
      http: { host: "127.0.0.1", port: 0 },
    }),
    logger: quiet,
    defaultMetrics: true, // as paylane-device runs
  });
  for (const e of ["cloud-link-changed", "entries-acked", "tap-decided", "payment-progressed"] as const)
    kiosk.events.on(e, signal.notify);
  await kiosk.start();
  await signal.until(async () => (await kiosk.state()).online, "k1 online");
  await kiosk.replicaSync.syncNow();

  k2 = await mqtt.connectAsync(
    mqttUrl,
    {
      clientId: deviceIdentity.clientId(K2),
      username: deviceIdentity.username(K2),
      password: secrets.k2,
      protocolVersion: 4,
      reconnectPeriod: 0,
    },
    false,
  );
});

test.after(async () => {
  await k2?.endAsync(true);
  await kiosk?.stop();
  await cloud?.stop();
  await gateway?.stop();
  await db?.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await db?.close();
  await rm(dir, { recursive: true, force: true });
});

test("a kiosk taps and pays; its telemetry reaches the cloud's per-kiosk series: up, backlog, oldest unacked, reader, paper, ack latency, exposure", async () => {
  const ada = DEMO_MEMBERS.find((m) => m.id === "m-ada")!;
  assert.is((await kiosk.tap(ada.cardUid)).outcome, "welcome");
  await kiosk.payments.start({ kind: "purchase", itemId: "coffee" });
  assert.is((await kiosk.tapToPay(ada.cardUid)).outcome, "approved");
  await signal.until(async () => (await kiosk.journal.stats()).backlog === 0, "k1 drained");
  // The report after the acks carries the slowest round trip of the batches they acked.
  const before = heard.get("k1")?.length ?? 0;
  await kiosk.sendTelemetryNow();
  const report = await heardFrom("k1", (t) => t.ackLatencySeconds !== undefined, before);
  assert.ok(report.ackLatencySeconds! > 0, `a round trip takes time: ${report.ackLatencySeconds}`);
  const where = { site, device: "k1" };
  // Heard by the bridge: the next scrape exports it (the store catches up a second later; the scrape need not wait).
  const s = parseScrape(await scrape("cloud"));
  assert.is(sampleValue(s, "paylane_kiosk_ack_latency_seconds", where), report.ackLatencySeconds);
  assert.is(sampleValue(s, "paylane_kiosk_up", where), 1);
  assert.is(sampleValue(s, "paylane_kiosk_backlog_entries", where), report.backlog);
  assert.is(sampleValue(s, "paylane_kiosk_oldest_unacked_age_seconds", where), 0, "nothing waits: 0");
  const lastSeen = sampleValue(s, "paylane_kiosk_last_seen_timestamp_seconds", where)!;
  assert.ok(Math.abs(lastSeen - Date.now() / 1000) < 60, `last seen is recent: ${lastSeen}`);
  for (const state of ["ok", "degraded", "disconnected"])
    assert.is(
      sampleValue(s, "paylane_kiosk_reader_state", { ...where, state }),
      state === report.reader ? 1 : 0,
      state,
    );
  assert.is(report.printer?.paper, "ok");
  for (const state of ["ok", "near-end", "out", "unknown"])
    assert.is(sampleValue(s, "paylane_kiosk_printer_paper", { ...where, state }), state === "ok" ? 1 : 0, state);
  assert.ok(report.payments, "a kiosk with offline limits reports its exposure");
  const money = { ...where, currency: report.payments!.currency };
  assert.is(sampleValue(s, "paylane_kiosk_offline_exposure_minor", money), report.payments!.offlineExposure);
  assert.is(sampleValue(s, "paylane_kiosk_offline_exposure_cap_minor", money), report.payments!.cap);
});

test("values a kiosk reports are exported as they are: a backlog, its oldest entry aging, paper out, reader degraded, exposure", async () => {
  const sentAt = Date.now();
  const telemetry: Telemetry = {
    at: new Date(sentAt).toISOString(),
    backlog: 7,
    ackedUpTo: 3,
    lastSeq: 10,
    replicaVersion: 1,
    reader: "degraded",
    uptimeSeconds: 120,
    oldestUnackedAgeSeconds: 42,
    ackLatencySeconds: 0.25,
    payments: { currency: "EUR", offlineExposure: 1200, offlinePayments: 3, cap: 5000 },
    printer: { state: "ok", paper: "out" },
  };
  await k2.publishAsync(topics.telemetry(K2), JSON.stringify(telemetry), { qos: 1 });
  const where = { site, device: "k2" };
  await heardFrom("k2", (t) => t.backlog === 7);
  const s = parseScrape(await scrape("cloud"));
  assert.is(sampleValue(s, "paylane_kiosk_backlog_entries", where), 7);
  assert.is(sampleValue(s, "paylane_kiosk_up", where), 0, "no birth from k2: not online");
  const age = sampleValue(s, "paylane_kiosk_oldest_unacked_age_seconds", where)!;
  const elapsed = (Date.now() - sentAt) / 1000;
  assert.ok(age >= 42 && age <= 42 + elapsed + 1, `42 s at the report, aging since: ${age} after ${elapsed} s`);
  assert.is(sampleValue(s, "paylane_kiosk_ack_latency_seconds", where), 0.25);
  assert.is(sampleValue(s, "paylane_kiosk_reader_state", { ...where, state: "degraded" }), 1);
  assert.is(sampleValue(s, "paylane_kiosk_reader_state", { ...where, state: "ok" }), 0);
  assert.is(sampleValue(s, "paylane_kiosk_printer_paper", { ...where, state: "out" }), 1);
  assert.is(sampleValue(s, "paylane_kiosk_printer_paper", { ...where, state: "ok" }), 0);
  assert.is(sampleValue(s, "paylane_kiosk_offline_exposure_minor", { ...where, currency: "EUR" }), 1200);
  assert.is(sampleValue(s, "paylane_kiosk_offline_exposure_cap_minor", { ...where, currency: "EUR" }), 5000);

  // A report without a printer or an ack latency: those series go, the rest stay.
  await k2.publishAsync(
    topics.telemetry(K2),
    JSON.stringify({
      ...telemetry,
      at: new Date(sentAt + 1).toISOString(),
      backlog: 0,
      printer: null,
      ackLatencySeconds: undefined,
    }),
    { qos: 1 },
  );
  await heardFrom("k2", (t) => t.backlog === 0);
  const after = parseScrape(await scrape("cloud"));
  assert.is(sampleValue(after, "paylane_kiosk_backlog_entries", where), 0);
  assert.is(sampleValue(after, "paylane_kiosk_printer_paper", { ...where, state: "out" }), undefined);
  assert.is(sampleValue(after, "paylane_kiosk_ack_latency_seconds", where), undefined);
});

test("the bridge: commits timed in a histogram, the last commit's time, a gap open until filled; a seq collision is a ledger exception", async () => {
  const s = parseScrape(await scrape("cloud"));
  const commits = sampleValue(s, "paylane_bridge_commit_duration_seconds_count")!;
  assert.ok(commits >= 1, `commits observed: ${commits}`);
  assert.is(sampleValue(s, "paylane_bridge_commit_duration_seconds_bucket", { le: "+Inf" }), commits);
  const last = sampleValue(s, "paylane_bridge_last_commit_timestamp_seconds")!;
  assert.ok(Math.abs(last - Date.now() / 1000) < 60, `last commit is recent: ${last}`);
  assert.is(sampleValue(s, "paylane_bridge_open_gaps"), 0);
  assert.is(sampleValue(s, "paylane_bridge_oldest_open_gap_age_seconds"), 0);
  for (const kind of ["wallet-overdraft", "seq-collision", "payment-unapplied", "offline-topup-rejected"])
    assert.is(sampleValue(s, "paylane_ledger_exceptions", { kind }), 0, kind);

  // k2 sends seq 1, then another entry at seq 1: both kept, the second a collision for ops.
  const errors: string[] = [];
  k2.on("message", (t, payload) => {
    if (t === topics.errors(K2)) errors.push(payload.toString());
    signal.notify();
  });
  await k2.subscribeAsync(topics.errors(K2), { qos: 1 });
  await k2.publishAsync(topics.events(K2), batch("k2", [checkinEntry(1, "m-ada")]), { qos: 1 });
  await signal.until(
    async () => (await db.query(`SELECT 1 FROM inbox WHERE device_id = 'k2'`)).rows.length === 1,
    "k2#1 committed",
  );
  await k2.publishAsync(topics.events(K2), batch("k2", [checkinEntry(1, "m-grace")]), { qos: 1 });
  await signal.until(() => errors.some((e) => e.includes("seq-collision")), "k2 told of its collision", WAIT_MS);
  const after = parseScrape(await scrape("cloud"));
  assert.is(sampleValue(after, "paylane_ledger_exceptions", { kind: "seq-collision" }), 1);
  assert.ok(
    sampleValue(after, "paylane_bridge_commit_duration_seconds_count")! > commits,
    "the new commits were timed",
  );

  // Seq 3 before seq 2: a gap is open (the bridge will ask k2 to replay) until 2 arrives.
  const committed = (seq: number) => async () =>
    (await db.query(`SELECT 1 FROM inbox WHERE device_id = 'k2' AND seq = $1`, [seq])).rows.length === 1;
  const gapsBefore = sampleValue(after, "paylane_bridge_gaps_detected_total")!;
  await k2.publishAsync(topics.events(K2), batch("k2", [checkinEntry(3, "m-ada")]), { qos: 1 });
  await signal.until(committed(3), "k2#3 committed");
  const open = parseScrape(await scrape("cloud"));
  assert.is(sampleValue(open, "paylane_bridge_open_gaps"), 1);
  assert.is(sampleValue(open, "paylane_bridge_gaps_detected_total"), gapsBefore + 1);
  const age = sampleValue(open, "paylane_bridge_oldest_open_gap_age_seconds")!;
  assert.ok(age >= 0 && age < 60, `the gap's age: ${age}`);
  await k2.publishAsync(topics.events(K2), batch("k2", [checkinEntry(2, "m-ada")]), { qos: 1 });
  await signal.until(committed(2), "k2#2 committed");
  const filled = parseScrape(await scrape("cloud"));
  assert.is(sampleValue(filled, "paylane_bridge_open_gaps"), 0);
  assert.is(sampleValue(filled, "paylane_bridge_oldest_open_gap_age_seconds"), 0);
});

test("the API: requests counted by route pattern, never by path; refused logins and tokens counted by reason", async () => {
  const before = parseScrape(await scrape("cloud"));
  const ada = DEMO_MEMBERS.find((m) => m.id === "m-ada")!;
  assert.is((await operator(`/api/v1/wallets/${site}/${ada.id}`)).status, 200);
  assert.is((await operator(`/api/v1/devices/${site}/k1`)).status, 200);
  assert.is((await operator(`/api/v1/no-such-thing/${ada.cardUid}`)).status, 404);
  assert.is((await operator("/api/v1/devices", {}, "not-a-jwt")).status, 401);
  const expired = await mintOperatorToken(jwtSecret, {
    sub: "ops-metrics",
    role: "admin",
    now: new Date(Date.now() - 86_400_000),
    ttlSeconds: 60,
  });
  assert.is((await operator("/api/v1/devices", {}, expired)).status, 401);
  const login = await fetch(`${cloud.url}/api/v1/auth/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: "nobody", password: "not-the-password" }),
  });
  assert.is(login.status, 401);
  assert.is((await fetch(new URL("/api/v1/devices", cloud.url))).status, 401);
  const wrongKiosk = `Basic ${Buffer.from(`${site}/k1:not-its-secret`).toString("base64")}`;
  assert.is(
    (await fetch(new URL(`/api/v1/sites/${site}/members`, cloud.url), { headers: { authorization: wrongKiosk } }))
      .status,
    401,
  );

  const s = parseScrape(await scrape("cloud"));
  const delta = (name: string, labels: Record<string, string>) =>
    (sampleValue(s, name, labels) ?? 0) - (sampleValue(before, name, labels) ?? 0);
  const wallet = { route: "/api/v1/wallets/:site/:member", method: "GET" };
  assert.is(delta("paylane_http_requests_total", { ...wallet, code: "200" }), 1);
  assert.is(delta("paylane_http_request_duration_seconds_count", wallet), 1);
  assert.is(
    delta("paylane_http_requests_total", { route: "/api/v1/devices/:site/:device", method: "GET", code: "200" }),
    1,
  );
  assert.is(delta("paylane_http_requests_total", { route: "unmatched", method: "GET", code: "404" }), 1);
  assert.is(delta("paylane_http_requests_total", { route: "/api/v1/devices", method: "GET", code: "401" }), 3);
  assert.is(delta("paylane_http_requests_total", { route: "/api/v1/auth/login", method: "POST", code: "401" }), 1);
  assert.is(delta("paylane_api_auth_failures_total", { reason: "bad-token" }), 1);
  assert.is(delta("paylane_api_auth_failures_total", { reason: "expired-token" }), 1);
  assert.is(delta("paylane_api_auth_failures_total", { reason: "bad-password" }), 1);
  assert.is(delta("paylane_api_auth_failures_total", { reason: "missing-token" }), 1);
  assert.is(delta("paylane_api_auth_failures_total", { reason: "bad-device-credentials" }), 1);
  // Every route label is a registered pattern: no site id, device id or member id in it.
  for (const route of new Set(s.filter((x) => x.name === "paylane_http_requests_total").map((x) => x.labels.route!)))
    assert.ok(
      route === "unmatched" || !/obs[0-9a-f]{8}|\/k[12]\b|m-ada/.test(route),
      `route label ${route} is a pattern`,
    );
});

test("the gateway: clients, connections, bytes in and out that grow with traffic, retained messages", async () => {
  const before = parseScrape(await scrape("gateway"));
  assert.ok(sampleValue(before, "paylane_gateway_clients")! >= 3, "k1, k2 and the cloud are connected");
  assert.ok(sampleValue(before, "paylane_gateway_connections_total")! >= 3);
  const retained = sampleValue(before, "paylane_gateway_retained_messages")!;
  assert.ok(retained >= 2, `k1's birth and the cloud's STATE at least: ${retained}`);
  const payload = JSON.stringify({
    state: "online",
    version: "0.0.0-test",
    bootedAt: new Date().toISOString(),
    protocol: 1,
  });
  await k2.publishAsync(topics.status(K2), payload, { qos: 1, retain: true });
  const after = parseScrape(await scrape("gateway"));
  assert.is(sampleValue(after, "paylane_gateway_retained_messages"), retained + 1, "k2's birth is retained");
  const grew = (name: string, by: number) => {
    const d = sampleValue(after, name)! - sampleValue(before, name)!;
    assert.ok(d >= by, `${name} grew by ${d}, at least ${by} expected`);
  };
  grew("paylane_gateway_received_bytes_total", payload.length);
  grew("paylane_gateway_sent_bytes_total", payload.length); // the cloud hears it, and k2 its PUBACK
});

test("each service's /metrics passes promtool check metrics: exit 0, nothing printed", async () => {
  for (const service of ["gateway", "cloud", "kiosk"] as const) {
    const text = await scrape(service);
    const { status, output } = promtool(text);
    assert.is(output, "", `${service}: promtool printed nothing`);
    assert.is(status, 0, `${service}: promtool exit code`);
    // The process metrics are there, without prom-client's _total gauges that promtool refuses.
    assert.match(text, /^process_cpu_user_seconds_total /m, `${service} has process metrics`);
    assert.match(text, /^nodejs_active_handles\{/m, `${service} keeps the per-type handle gauges`);
    assert.not.match(text, /nodejs_active_\w+_total/, `${service} has no _total gauge`);
  }
});

/** The names of /work/notes/metrics-catalogue.md, by the scrape job that carries them (dashboards and rules use them). */
const CATALOGUE = {
  gateway: [
    "paylane_gateway_clients",
    "paylane_gateway_connections_total",
    "paylane_gateway_auth_failures_total",
    "paylane_gateway_publishes_refused_total",
    "paylane_gateway_rate_limited_total",
    "paylane_gateway_received_bytes_total",
    "paylane_gateway_sent_bytes_total",
    "paylane_gateway_retained_messages",
  ],
  cloud: [
    "paylane_kiosk_up",
    "paylane_kiosk_last_seen_timestamp_seconds",
    "paylane_kiosk_backlog_entries",
    "paylane_kiosk_oldest_unacked_age_seconds",
    "paylane_kiosk_printer_paper",
    "paylane_kiosk_reader_state",
    "paylane_kiosk_ack_latency_seconds",
    "paylane_kiosk_offline_exposure_minor",
    "paylane_kiosk_offline_exposure_cap_minor",
    "paylane_bridge_entries_total",
    "paylane_bridge_gaps_detected_total",
    "paylane_bridge_refusals_total",
    "paylane_bridge_commit_failures_total",
    "paylane_bridge_commit_duration_seconds",
    "paylane_bridge_open_gaps",
    "paylane_bridge_oldest_open_gap_age_seconds",
    "paylane_bridge_last_commit_timestamp_seconds",
    "paylane_http_requests_total",
    "paylane_http_request_duration_seconds",
    "paylane_api_auth_failures_total",
    "paylane_cloud_rate_limited_total",
    "paylane_cloud_payment_authorizations_total",
    "paylane_ledger_exceptions",
    "paylane_backup_last_success_timestamp_seconds",
    "paylane_backup_schedule_seconds",
    // docs/metrics.md's WAL archiver series (alert WalArchivingFailing): declared even on a database that
    // never archived; the values on a cluster with archiving on are checked in cloud/test/dr-backup.test.ts
    "paylane_postgres_wal_archived_total",
    "paylane_postgres_wal_archive_failures_total",
    "paylane_postgres_wal_last_archived_timestamp_seconds",
  ],
};

test("every name of the metrics catalogue is on its job's scrape, with the type it promises", async () => {
  for (const service of ["gateway", "cloud"] as const) {
    const text = await scrape(service);
    const types = new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
    for (const name of CATALOGUE[service]) {
      const want = name.endsWith("_total") ? "counter" : name.endsWith("_duration_seconds") ? "histogram" : "gauge";
      assert.is(types.get(name), want, `${service}: ${name}`);
    }
  }
});

test("promtool does refuse what it should: prom-client's default _total gauges fail it", () => {
  // The check above would pass vacuously if promtool accepted anything.
  const bad =
    "# HELP nodejs_active_handles_total Total active handles\n# TYPE nodejs_active_handles_total gauge\nnodejs_active_handles_total 3\n";
  const { status, output } = promtool(bad);
  assert.is.not(status, 0);
  assert.match(output, /non-counter metrics should not have "_total" suffix/);
});

test("no member id, card UID or booking code is ever a label value, on any scrape", async () => {
  for (const service of ["gateway", "cloud", "kiosk"] as const) await scrape(service);
  const secrets = DEMO_MEMBERS.flatMap((m) => [m.id, m.cardUid, m.code].filter(Boolean) as string[]).map((x) =>
    x.toLowerCase(),
  );
  const values = new Set<string>();
  for (const { text } of scrapes)
    for (const s of parseScrape(text)) for (const v of Object.values(s.labels)) values.add(v);
  // The parse reads labels (the check below is not vacuous): the fleet's ids and a route pattern are there.
  for (const expected of [site, "k1", "k2", "/api/v1/wallets/:site/:member"])
    assert.ok(values.has(expected), `label value ${expected} read from the scrapes`);
  for (const v of values) {
    const leaked = secrets.find((x) => v.toLowerCase().includes(x));
    assert.is(leaked, undefined, `label value ${JSON.stringify(v)} holds a member's ${leaked}`);
  }
  assert.ok(scrapes.length >= 10, `${scrapes.length} scrapes checked`);
});

test.run();
