/** The fleet model of `watch`, fed messages and a clock by hand. */
import { topics } from "@paylane/protocol";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { FleetView } from "../src/fleet-view.ts";

const k1 = { site: "s1", device: "k1" };
const T0 = Date.parse("2026-12-05T06:00:00Z");
const at = (seconds: number) => T0 + seconds * 1000;
const json = (v: unknown) => JSON.stringify(v);
const birth = (session: number) =>
  json({ state: "online", version: "1.0.0", bootedAt: new Date(T0).toISOString(), protocol: 1, session });
const telemetry = (extra: Record<string, unknown> = {}) =>
  json({
    at: new Date(T0).toISOString(),
    backlog: 3,
    ackedUpTo: 10,
    lastSeq: 13,
    replicaVersion: 1,
    reader: "ok",
    uptimeSeconds: 60,
    ...extra,
  });

test("a live birth then a Will: online since the birth, then offline since the Will arrived", () => {
  const view = new FleetView(at(0));
  assert.is(view.apply(topics.status(k1), birth(1), at(1)), "s1/k1");
  assert.equal(
    { status: view.row("s1/k1", at(2))?.status, since: view.row("s1/k1", at(2))?.since },
    { status: "online", since: new Date(at(1)).toISOString() },
  );
  view.apply(topics.status(k1), json({ state: "offline", session: 1 }), at(5));
  const row = view.row("s1/k1", at(6))!;
  assert.is(row.status, "offline");
  assert.is(row.since, new Date(at(5)).toISOString());
  assert.is(row.session, 1);
});

test("a retained status from before the watch has no known since; a goodbye's own time is used", () => {
  const view = new FleetView(at(0));
  view.apply(topics.status(k1), birth(4), at(0), true);
  assert.is(view.row("s1/k1", at(0))?.since, null);
  view.apply(topics.status(k1), json({ state: "offline", at: new Date(at(3)).toISOString(), session: 4 }), at(9));
  assert.is(view.row("s1/k1", at(9))?.since, new Date(at(3)).toISOString());
});

test("telemetry fills the row: backlog, oldest unacked, peripherals, mode, cloud link", () => {
  const view = new FleetView(at(0));
  view.apply(topics.status(k1), birth(1), at(0));
  view.apply(
    topics.telemetry(k1),
    telemetry({
      oldestUnackedAgeSeconds: 42,
      printer: { state: "ok", paper: "near-end" },
      mode: "maintenance",
      cloudLink: "unreachable",
    }),
    at(1),
  );
  const row = view.row("s1/k1", at(1))!;
  assert.equal(
    {
      backlog: row.backlog,
      oldest: row.oldestUnackedSeconds,
      reader: row.reader,
      printer: row.printer,
      paper: row.paper,
      mode: row.mode,
      cloudLink: row.cloudLink,
      lastSeen: row.lastSeen,
    },
    {
      backlog: 3,
      oldest: 42,
      reader: "ok",
      printer: "ok",
      paper: "near-end",
      mode: "maintenance",
      cloudLink: "unreachable",
      lastSeen: new Date(at(1)).toISOString(),
    },
  );
});

test("an online kiosk silent for 3 telemetry intervals is stale; telemetry makes it fresh again", () => {
  const view = new FleetView(at(0));
  view.apply(topics.status(k1), birth(1), at(0));
  view.apply(topics.telemetry(k1), telemetry(), at(0));
  view.apply(topics.telemetry(k1), telemetry(), at(5)); // its pace: every 5 s
  assert.is(view.row("s1/k1", at(20))?.stale, false);
  assert.is(view.row("s1/k1", at(21))?.stale, true);
  view.apply(topics.telemetry(k1), telemetry(), at(22));
  assert.is(view.row("s1/k1", at(22))?.stale, false);
});

test("the configured telemetry interval wins over the default; offline kiosks are never stale", () => {
  const view = new FleetView(at(0));
  view.apply(topics.status(k1), birth(1), at(0));
  view.apply(
    topics.state(k1),
    json({ version: 1, applied: { telemetryIntervalSeconds: 60 }, rejected: [], at: new Date(T0).toISOString() }),
    at(0),
  );
  assert.is(view.row("s1/k1", at(170))?.stale, false);
  assert.is(view.row("s1/k1", at(181))?.stale, true);
  view.apply(topics.status(k1), json({ state: "offline", session: 1 }), at(182));
  assert.is(view.row("s1/k1", at(500))?.stale, false);
});

test("drift: desired settings the kiosk has not reported, then none once it reports them", () => {
  const view = new FleetView(at(0));
  view.apply(
    topics.config(k1),
    json({ version: 2, settings: { mode: "maintenance", logLevel: "debug" } }),
    at(0),
    true,
  );
  assert.equal(view.row("s1/k1", at(0))?.drift, ["mode", "logLevel"]);
  view.apply(
    topics.state(k1),
    json({
      version: 2,
      applied: { mode: "maintenance", logLevel: "info" },
      rejected: [{ field: "logLevel", reason: "locked" }],
      at: new Date(T0).toISOString(),
    }),
    at(1),
  );
  const row = view.row("s1/k1", at(1))!;
  assert.equal(row.drift, ["logLevel"]);
  assert.equal(row.rejected, ["logLevel"]);
  assert.equal([row.desiredVersion, row.reportedVersion], [2, 2]);
});

test("bad payloads and foreign topics change nothing; an empty retained status removes the kiosk", () => {
  const view = new FleetView(at(0));
  assert.is(view.apply(topics.status(k1), "{not json", at(0)), null);
  assert.is(view.apply(topics.telemetry(k1), json({ backlog: -1 }), at(0)), null);
  assert.is(view.apply("elsewhere/x", "{}", at(0)), null);
  assert.equal(view.rows(at(0)), []);
  view.apply(topics.status(k1), birth(1), at(0));
  view.apply(topics.status(k1), "", at(1), true);
  assert.equal(view.rows(at(1)), []);
});

test("the cloud's status: online with its instance and heartbeat, then offline", () => {
  const view = new FleetView(at(0));
  assert.is(view.cloud().state, "unknown");
  const heartbeatAt = new Date(at(3)).toISOString();
  view.apply(
    topics.cloudStatus,
    json({ state: "online", since: new Date(T0).toISOString(), instance: "c1", heartbeatAt }),
    at(3),
  );
  assert.equal(view.cloud(), { state: "online", instance: "c1", heartbeatAt });
  view.apply(topics.cloudStatus, json({ state: "offline" }), at(4));
  assert.is(view.cloud().state, "offline");
});

test("rows are sorted by site then device", () => {
  const view = new FleetView(at(0));
  for (const [site, device] of [
    ["s2", "a"],
    ["s1", "k2"],
    ["s1", "k1"],
  ] as const)
    view.apply(topics.status({ site, device }), birth(1), at(0));
  assert.equal(
    view.rows(at(0)).map((r) => r.kiosk),
    ["s1/k1", "s1/k2", "s2/a"],
  );
});

test.run();
