/**
 * The fleet overview and the device page as the dashboard reads them
 * (GET /api/v1/devices, GET /api/v1/devices/:site/:device on Postgres, Hono's
 * app.request): what each kiosk shows, filters, search, sorts and cursor
 * pages, site scoping, and the status history an online→offline leaves.
 */
import { EventEmitter } from "node:events";
import { type DeviceAddress, hashSecret, Registry, type Status } from "@paylane/protocol";
import { pino } from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { createApi } from "../src/api/app.ts";
import { mintOperatorToken, type Role } from "../src/api/auth.ts";
import type { FleetEvents } from "../src/bridge/bridge.ts";
import type { Database } from "../src/db/database.ts";
import { StatusHistory } from "../src/fleet/status-history.ts";
import { MemoryPresence } from "../src/presence/memory-presence.ts";
import type { DevicePage, FleetDevice, FleetPage } from "../src/read-models/fleet.ts";
import { seedSite } from "../src/seed.ts";
import { openTestSchema } from "./console-db.ts";

const SECRET = "a-test-secret-of-at-least-32-characters!";
const NOW = new Date("2026-12-05T10:00:00Z");
const minutesAgo = (m: number) => new Date(NOW.getTime() - m * 60_000);

let db: Database;
let drop: () => Promise<void>;
let app: ReturnType<typeof createApi>;
const presence = new MemoryPresence();
const fleet = new EventEmitter<FleetEvents>();
let clock = NOW;
let history: StatusHistory;

const S1 = ["k1", "k2", "k3", "k4", "k5"];

test.before(async () => {
  // A Postgres schema of its own: PGlite's open alone takes ten seconds and more on a busy machine.
  const schema = await openTestSchema("fleet_overview");
  db = schema.db;
  drop = schema.drop;
  await seedSite(db, { id: "s1", name: "Harbour Gym", timezone: "UTC" });
  await seedSite(db, { id: "s2", name: "Hill Pool", timezone: "UTC" });
  for (const d of S1) await db.query("INSERT INTO devices (site_id, id) VALUES ('s1', $1)", [d]);
  await db.query("INSERT INTO devices (site_id, id) VALUES ('s2', 'x1')");
  const secretHash = await hashSecret("device-secret-0123456789");
  const registry = new Registry({
    version: 1,
    devices: ["k1", "k2", "k3"].map((device) => ({ site: "s1", device, secretHash })),
    services: [],
  });
  app = createApi({
    db,
    presence,
    registry: () => registry,
    metrics: new MetricsRegistry(),
    health: async () => ({ status: "ok" }),
    now: () => NOW,
    jwtSecret: SECRET,
  });
  history = new StatusHistory({
    db,
    link: { fleet, connected: true, publish: async () => {} },
    logger: pino({ level: "silent" }),
    now: () => clock,
  });
  history.attach();

  // k1 online for 30 min with a full telemetry report and a config it has not applied yet;
  // k2 offline for 2 h; k4 offline for 10 min; k3, k5 never seen.
  await presence.setStatus(
    { site: "s1", device: "k1" },
    { state: "online", at: minutesAgo(30), version: "1.4.0", bootedAt: minutesAgo(31).toISOString() },
  );
  await presence.setStatus({ site: "s1", device: "k2" }, { state: "offline", at: minutesAgo(120) });
  await presence.setStatus({ site: "s1", device: "k4" }, { state: "offline", at: minutesAgo(10) });
  await presence.setStatus(
    { site: "s2", device: "x1" },
    { state: "online", at: minutesAgo(5), version: "1.4.0", bootedAt: minutesAgo(6).toISOString() },
  );
  await telemetry("k1", minutesAgo(2), { backlog: 1, oldestUnackedAgeSeconds: 0.5 });
  await telemetry("k1", minutesAgo(1), {
    backlog: 7,
    oldestUnackedAgeSeconds: 42,
    reader: "degraded",
    printer: { state: "ok", paper: "near-end" },
    mode: "maintenance",
  });
  await telemetry("k2", minutesAgo(121), {
    backlog: 0,
    reader: "ok",
    printer: { state: "disconnected", paper: "out" },
  });
  await db.query(
    `INSERT INTO device_config (site_id, device_id, desired, desired_version, reported, updated_at)
     VALUES ('s1', 'k1', $1, 2, $2, now())`,
    [
      JSON.stringify({ version: 2, settings: { mode: "maintenance", idleTimeoutSeconds: 45 }, by: "ops" }),
      JSON.stringify({ version: 2, applied: { mode: "maintenance" }, rejected: [], at: minutesAgo(3).toISOString() }),
    ],
  );
});
test.after(async () => {
  await history.detach();
  await drop();
});

async function telemetry(device: string, at: Date, extra: Record<string, unknown>): Promise<void> {
  const report = {
    at: at.toISOString(),
    backlog: 0,
    ackedUpTo: 10,
    lastSeq: 10,
    replicaVersion: 1,
    reader: "ok",
    uptimeSeconds: 100,
    versions: { device: "1.3.9", node: "20.19.0", protocol: 1 },
    memory: { rssBytes: 80e6, freeBytes: 300e6, totalBytes: 1e9 },
    disk: { freeBytes: 5e9, totalBytes: 8e9 },
    cpuTemperatureC: 51.5,
    ...extra,
  };
  await db.query(
    `INSERT INTO device_telemetry (site_id, device_id, at, received_at, backlog, oldest_unacked_age_s, mem_free_bytes,
       disk_free_bytes, cpu_temp_c, report)
     VALUES ('s1', $1, $2, $2, $3, $4, $5, $6, $7, $8)`,
    [
      device,
      at,
      report.backlog,
      (extra.oldestUnackedAgeSeconds as number | undefined) ?? null,
      report.memory.freeBytes,
      report.disk.freeBytes,
      report.cpuTemperatureC,
      JSON.stringify(report),
    ],
  );
}

// Minted now, not at NOW: the API checks exp against the real clock, and a token from NOW (10:00 UTC today)
// expired at 18:00 UTC the same day, failing every request.
const bearer = async (role: Role, sites?: string[]) =>
  `Bearer ${await mintOperatorToken(SECRET, { sub: `ops-${role}`, role, sites })}`;

async function get<T>(path: string, auth?: string): Promise<{ status: number; body: T }> {
  const res = await app.request(path, { headers: { authorization: auth ?? (await bearer("viewer")) } });
  return { status: res.status, body: (await res.json()) as T };
}

const names = (page: FleetPage) => page.items.map((i) => `${i.site}/${i.device}`);

test("the overview shows each kiosk's presence and since when, backlog, ack latency, reader, paper, mode, drift, version", async () => {
  const { status, body } = await get<FleetPage>("/api/v1/devices?site=s1");
  assert.is(status, 200);
  assert.equal(names(body), ["s1/k1", "s1/k2", "s1/k3", "s1/k4", "s1/k5"]);
  const k1 = body.items[0]!;
  assert.is(k1.state, "online");
  assert.is(k1.statusAt, minutesAgo(30).toISOString(), "online since");
  assert.is(k1.version, "1.4.0", "the birth's version");
  assert.is(k1.backlog, 7, "from the newest report, not the older one");
  assert.is(k1.ackLatencySeconds, 42);
  assert.is(k1.reader, "degraded");
  assert.is(k1.paper, "near-end");
  assert.is(k1.printer, "ok");
  assert.is(k1.mode, "maintenance");
  assert.equal(k1.drift, ["idleTimeoutSeconds"], "desired but not applied");
  assert.is(k1.desiredConfigVersion, 2);
  assert.is(k1.telemetryAt, minutesAgo(1).toISOString());
  assert.is(k1.inRegistry, true);
  const k2 = body.items[1]!;
  assert.is(k2.state, "offline");
  assert.is(k2.statusAt, minutesAgo(120).toISOString(), "offline since");
  assert.is(k2.paper, "out");
  assert.is(k2.printer, "disconnected");
  assert.is(k2.version, "1.3.9", "no birth heard: the version its telemetry reported");
  const k3 = body.items[2]!;
  assert.is(k3.state, "unknown");
  assert.is(k3.backlog, null, "no telemetry: null, not 0");
  assert.equal(k3.drift, []);
  assert.is(body.items[4]!.inRegistry, false, "k5 is not in the registry");
  assert.is(body.next, null);
});

test("filter online / offline, search on device id and site name", async () => {
  assert.equal(names((await get<FleetPage>("/api/v1/devices?online=true")).body), ["s1/k1", "s2/x1"]);
  assert.equal(names((await get<FleetPage>("/api/v1/devices?site=s1&online=false")).body), [
    "s1/k2",
    "s1/k3",
    "s1/k4",
    "s1/k5",
  ]);
  assert.equal(names((await get<FleetPage>("/api/v1/devices?search=K4")).body), ["s1/k4"]);
  assert.equal(names((await get<FleetPage>("/api/v1/devices?search=hill")).body), ["s2/x1"], "by site name");
  assert.equal(
    names((await get<FleetPage>("/api/v1/devices?search=%25")).body),
    [],
    "% is a character, not a wildcard",
  );
  const bad = await get<{ detail: string }>("/api/v1/devices?online=maybe");
  assert.is(bad.status, 400);
  assert.match(bad.body.detail, /online/);
});

test("sort=status puts the longest-offline first, then never seen, then online; sort=since the newest change first", async () => {
  assert.equal(names((await get<FleetPage>("/api/v1/devices?site=s1&sort=status")).body), [
    "s1/k2",
    "s1/k4",
    "s1/k3",
    "s1/k5",
    "s1/k1",
  ]);
  assert.equal(names((await get<FleetPage>("/api/v1/devices?site=s1&sort=since")).body), [
    "s1/k4",
    "s1/k1",
    "s1/k2",
    "s1/k3",
    "s1/k5",
  ]);
});

test("cursor pages hold every kiosk once, in every sort, and a foreign cursor is a 400", async () => {
  for (const sort of ["device", "status", "since"]) {
    const seen: string[] = [];
    let before = "";
    for (let i = 0; i < 10; i++) {
      const { status, body } = await get<FleetPage>(`/api/v1/devices?sort=${sort}&limit=2&before=${before}`);
      assert.is(status, 200);
      seen.push(...names(body));
      if (!body.next) break;
      before = body.next;
    }
    assert.is(seen.length, 6, `${sort}: ${seen}`);
    assert.is(new Set(seen).size, 6, `${sort}: each once`);
  }
  const first = await get<FleetPage>("/api/v1/devices?limit=2");
  const wrong = await get<{ detail: string }>(`/api/v1/devices?sort=status&before=${first.body.next}`);
  assert.is(wrong.status, 400, "a device-order cursor is not a status-order one");
  assert.match(wrong.body.detail, /before: not a cursor/);
});

test("site scoping: a site-B token never sees site A, in the list or a device page", async () => {
  const b = await bearer("viewer", ["s2"]);
  const list = await get<FleetPage>("/api/v1/devices", b);
  assert.is(list.status, 200);
  assert.equal(names(list.body), ["s2/x1"], "its one site, without asking");
  assert.equal(names((await get<FleetPage>("/api/v1/devices?search=k", b)).body), []);
  assert.is((await get("/api/v1/devices?site=s1", b)).status, 403);
  assert.is((await get("/api/v1/devices/s1/k1", b)).status, 403);
  assert.is((await get("/api/v1/devices/s2/x1", b)).status, 200);
  const none = await app.request("/api/v1/devices");
  assert.is(none.status, 401);
});

async function status(device: DeviceAddress, s: Status, at: Date): Promise<void> {
  clock = at;
  await presence.setStatus(device, { ...s, at, ...(s.state === "online" ? { bootedAt: s.bootedAt } : {}) });
  fleet.emit("status", device, s);
  await history.idle();
}

test("the device page: status history after online→offline, recent check-ins, alerts, commands, peripherals, telemetry", async () => {
  const k3 = { site: "s1", device: "k3" };
  const birth: Status = {
    state: "online",
    version: "1.4.1",
    bootedAt: minutesAgo(20).toISOString(),
    protocol: 1,
    session: 7,
  };
  await status(k3, birth, minutesAgo(20));
  await status(k3, birth, minutesAgo(15)); // the retained birth again at a cloud reconnect: no new row
  await status(k3, { state: "offline", session: 7 }, minutesAgo(4));

  const { status: code, body } = await get<DevicePage>("/api/v1/devices/s1/k3");
  assert.is(code, 200);
  assert.is(body.device.state, "offline");
  assert.is(body.device.statusAt, minutesAgo(4).toISOString());
  assert.equal(
    body.statusHistory.map((h) => [h.state, h.at, h.session]),
    [
      ["offline", minutesAgo(4).toISOString(), 7],
      ["online", minutesAgo(20).toISOString(), 7],
    ],
  );
  assert.is(body.statusHistory[1]!.version, "1.4.1");

  await db.query(
    `INSERT INTO inbox (site_id, device_id, seq, entry_id, kind, outcome, at, body, received_at)
     VALUES ('s1', 'k1', 1, '9b2e4f5c-0d1a-4c7e-8f00-000000000001', 'checkin', 'applied', $1, $2, $1)`,
    [minutesAgo(3), JSON.stringify({ memberId: "m-ada", credential: { type: "card" }, replicaVersion: 1 })],
  );
  await db.query(
    `INSERT INTO device_commands (site_id, device_id, id, name, requested_by, requested_at, status, updated_at)
     VALUES ('s1', 'k1', 'c-1', 'self-test', 'ops-operator', $1, 'done', $1)`,
    [minutesAgo(2)],
  );
  await db.query(
    `INSERT INTO alert_states (key, rule, site_id, device_id, severity, state, summary, fired_at, updated_at)
     VALUES ('paper-low:s1/k1', 'paper-low', 's1', 'k1', 'warning', 'firing', 'k1: paper near its end', $1, $1)`,
    [minutesAgo(1)],
  );
  const k1 = (await get<DevicePage>("/api/v1/devices/s1/k1")).body;
  assert.is(k1.device.backlog, 7);
  assert.equal(
    k1.checkins.map((c) => [c.seq, c.memberName, c.credential]),
    [[1, "Ada Lovelace", "card"]],
  );
  assert.equal(
    k1.commands.map((c) => [c.command, c.status, c.requestedBy]),
    [["self-test", "done", "ops-operator"]],
  );
  assert.equal(
    k1.alerts.map((a) => [a.rule, a.state]),
    [["paper-low", "firing"]],
  );
  assert.is(k1.peripherals.reader?.state, "degraded");
  assert.equal(k1.peripherals.printer, { state: "ok", paper: "near-end", lastError: null });
  assert.is(k1.telemetry.last24h.reports, 2);
  assert.equal(k1.telemetry.last24h.backlog, { avg: 4, max: 7, min: 1 });
  assert.is((k1.telemetry.latest as { mode?: string }).mode, "maintenance");
  assert.equal(k1.config.drift, ["idleTimeoutSeconds"]);

  const missing = await get<{ detail: string }>("/api/v1/devices/s1/nope");
  assert.is(missing.status, 404);
  assert.match(missing.body.detail, /no device nope at site s1/);
});

test("two cloud instances hearing the same Will write one row", async () => {
  const k5 = { site: "s1", device: "k5" };
  const other = new StatusHistory({
    db,
    link: { fleet, connected: true, publish: async () => {} },
    logger: pino({ level: "silent" }),
    now: () => clock,
  });
  other.attach();
  try {
    const birth: Status = { state: "online", version: "1.4.1", bootedAt: NOW.toISOString(), protocol: 1, session: 3 };
    await status(k5, birth, minutesAgo(9));
    await status(k5, { state: "offline", session: 3 }, minutesAgo(8));
    await other.idle();
  } finally {
    await other.detach();
  }
  const page = (await get<DevicePage>("/api/v1/devices/s1/k5")).body;
  assert.equal(
    page.statusHistory.map((h) => h.state),
    ["offline", "online"],
  );
});

test("the answers match the exported schemas (what OpenAPI documents)", async () => {
  const { FleetPageSchema, DevicePageSchema } = await import("../src/read-models/fleet.ts");
  const page = (await get<FleetPage>("/api/v1/devices")).body;
  FleetPageSchema.parse(page);
  DevicePageSchema.parse((await get<DevicePage>("/api/v1/devices/s1/k1")).body);
  const one: FleetDevice = page.items[0]!;
  assert.ok("payments" in one && "enrolment" in one && "ackedSeq" in one, "the fields the list always had are kept");
});

test.run();
