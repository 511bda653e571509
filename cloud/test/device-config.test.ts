/**
 * Desired and reported configuration, the cloud's side (issue 14): the API
 * publishes the desired config retained with the next version, the cloud
 * keeps whatever the broker retains (an operator's tool may set it
 * directly), and shows drift where the kiosk's reported state differs, per
 * device and fleet-wide. Raw MQTT clients play the kiosks, checking each
 * field with the kiosk's rules (protocol's checkSettings) and keeping the
 * last good value of a refused one; the real kiosk is in
 * test/integration/commands.test.ts.
 */
import {
  checkSettings,
  type DesiredConfig,
  DesiredConfigSchema,
  decode,
  encode,
  type ReportedState,
  ReportedStateSchema,
  topics,
} from "@paylane/protocol";
import type { MqttClient } from "mqtt";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { loud } from "../../test/support/hooks.ts";
import { TestSite } from "../../test/support/site.ts";
import type { DeviceConfigView } from "../src/fleet/device-config.ts";

const it = suite("device config");
let site: TestSite;

it.before(
  loud("site setup", async () => {
    site = new TestSite({
      db: "pglite",
      presence: "memory",
      broker: "aedes",
      kiosks: [],
      probes: ["synced", "picky", "asleep"],
    });
    await site.start();
    site.cloud!.configs.changes.on("change", site.signal.notify);
  }),
);
it.after(async () => {
  await site?.stop();
});

/** A kiosk over raw MQTT that applies each valid field, keeps the last good value of a bad one and reports it. */
class FakeKiosk {
  applied: Record<string, unknown> = { idleTimeoutSeconds: 30, mode: "in-service" };
  desired: DesiredConfig[] = [];
  client!: MqttClient;

  constructor(readonly device: string) {}

  async connect(): Promise<void> {
    const a = site.address(this.device);
    this.client = await site.rawDevice(this.device);
    this.client.on("message", (topic, payload) => {
      if (topic !== topics.config(a) || payload.length === 0) return;
      const desired = decode(DesiredConfigSchema, payload);
      let state: ReportedState;
      if (!desired.ok) {
        state = { version: 0, applied: this.applied, rejected: [], error: desired.error, at: new Date().toISOString() };
      } else {
        this.desired.push(desired.value);
        const { accepted, rejected } = checkSettings(desired.value.settings);
        this.applied = { ...this.applied, ...accepted };
        state = { version: desired.value.version, applied: this.applied, rejected, at: new Date().toISOString() };
      }
      this.client.publish(topics.state(a), encode(ReportedStateSchema, state), { qos: 1, retain: true });
      site.signal.notify();
    });
    await this.client.subscribeAsync(topics.config(a), { qos: 1 });
  }
}

async function configOf(device: string): Promise<DeviceConfigView> {
  const res = await site.operator("GET", `/api/v1/devices/${site.site}/${device}/config`);
  assert.is(res.status, 200, JSON.stringify(res.body));
  return res.body as unknown as DeviceConfigView;
}

it("PUT publishes the desired config retained, versioned, with who set it; the kiosk applies it and no drift shows", async () => {
  const kiosk = new FakeKiosk("synced");
  await kiosk.connect();
  const res = await site.operator("PUT", `/api/v1/devices/${site.site}/synced/config`, {
    settings: { idleTimeoutSeconds: 45, screenTexts: { welcome: "Hello" } },
  });
  assert.is(res.status, 200, JSON.stringify(res.body));
  assert.is((res.body as unknown as DeviceConfigView).desired?.version, 1);
  await site.signal.until(async () => (await configOf("synced")).reported?.version === 1, "the kiosk reported v1");
  const view = await configOf("synced");
  assert.equal(view.drift, []);
  assert.is(view.desired?.by, "ops-test");
  assert.is(view.reported?.applied.idleTimeoutSeconds, 45);

  // Retained: a watcher that comes later still reads it.
  const watcher = await site.operatorClient("viewer");
  const got = new Promise<DesiredConfig>((resolve) =>
    watcher.on("message", (_t, p) => {
      const d = decode(DesiredConfigSchema, p);
      if (d.ok) resolve(d.value);
    }),
  );
  await watcher.subscribeAsync(topics.config(site.address("synced")), { qos: 1 });
  const retained = await got;
  assert.is(retained.version, 1);
  assert.equal(retained.settings, { idleTimeoutSeconds: 45, screenTexts: { welcome: "Hello" } });
});

it("a bad setting is refused by the API with its reason, and nothing is published", async () => {
  const res = await site.operator("PUT", `/api/v1/devices/${site.site}/synced/config`, {
    settings: { idleTimeoutSeconds: 1, colour: "blue" },
  });
  assert.is(res.status, 400);
  assert.match(String(res.body.detail), /settings\.idleTimeoutSeconds: .*5/);
  assert.match(String(res.body.detail), /settings\.colour: unknown setting; known: idleTimeoutSeconds/);
  assert.is((await configOf("synced")).desired?.version, 1);
  const viewer = await site.operatorToken("viewer", "v");
  const asViewer = await site.operator(
    "PUT",
    `/api/v1/devices/${site.site}/synced/config`,
    { settings: {} },
    { authorization: `Bearer ${viewer}` },
  );
  assert.is(asViewer.status, 403);
});

it("a config set directly on the broker with a bad field: the kiosk keeps its last good value and GET shows the drift", async () => {
  const kiosk = new FakeKiosk("picky");
  await kiosk.connect();
  const ops = await site.operatorClient("operator");
  const a = site.address("picky");
  await ops.publishAsync(
    topics.config(a),
    encode(DesiredConfigSchema, { version: 7, settings: { idleTimeoutSeconds: 2, telemetryIntervalSeconds: 20 } }),
    { qos: 1, retain: true },
  );
  await site.signal.until(async () => (await configOf("picky")).reported?.version === 7, "the kiosk reported v7");
  const view = await configOf("picky");
  assert.is(view.desired?.by, "operator", "the gateway names the operator who set it");
  assert.equal(view.drift, ["idleTimeoutSeconds"]);
  assert.is(view.reported?.applied.idleTimeoutSeconds, 30, "the last good value stays in force");
  assert.is(view.reported?.applied.telemetryIntervalSeconds, 20, "the good field applied");
  assert.is(view.reported?.rejected[0]?.field, "idleTimeoutSeconds");

  // The next change through the API goes above the version the tool set, and clears the drift.
  const res = await site.operator("PUT", `/api/v1/devices/${site.site}/picky/config`, {
    settings: { idleTimeoutSeconds: 20, telemetryIntervalSeconds: 20 },
  });
  assert.is((res.body as unknown as DeviceConfigView).desired?.version, 8);
  await site.signal.until(async () => (await configOf("picky")).reported?.version === 8, "the kiosk reported v8");
  assert.equal((await configOf("picky")).drift, []);
});

it("fleet-wide drift lists each device with drift or that never reported, and only those", async () => {
  // `asleep` gets a config but is not online to apply it.
  const res = await site.operator("PUT", `/api/v1/devices/${site.site}/asleep/config`, {
    settings: { mode: "maintenance", logLevel: "debug" },
  });
  assert.is(res.status, 200);
  const picky = site.address("picky");
  const ops = await site.operatorClient("operator");
  await ops.publishAsync(
    topics.config(picky),
    encode(DesiredConfigSchema, { version: 9, settings: { idleTimeoutSeconds: 20, mode: "closed" } }),
    { qos: 1, retain: true },
  );
  await site.signal.until(async () => (await configOf("picky")).reported?.version === 9, "the kiosk reported v9");

  const drift = await site.operator("GET", `/api/v1/config/drift?site=${site.site}`);
  assert.is(drift.status, 200);
  const items = drift.body.items as DeviceConfigView[];
  const byDevice = Object.fromEntries(items.map((v) => [v.device, v]));
  assert.equal(Object.keys(byDevice).sort(), ["asleep", "picky"]);
  assert.equal(byDevice.asleep!.drift, ["mode", "logLevel"]);
  assert.is(byDevice.asleep!.neverReported, true);
  assert.equal(byDevice.picky!.drift, ["mode"]);
  assert.match(byDevice.picky!.reported!.rejected[0]!.reason, /in-service/);

  const other = await site.operator("GET", `/api/v1/config/drift?site=${site.site}x`, undefined, {
    authorization: `Bearer ${await site.operatorToken("viewer", "v")}`,
  });
  assert.is(other.status, 200, "an unscoped token may read another site (empty here)");
  assert.equal(other.body.items, []);
});

it.run();
