/**
 * Desired configuration over a real broker (aedes gateway, a real kiosk
 * daemon): an operator's retained `config` is answered on the retained
 * `state`; the telemetry interval it sets takes effect live, and telemetry
 * then carries the mode, the config version and the board's facts; a
 * config that is not one is reported and changes nothing.
 */
import {
  decode,
  type ReportedState,
  ReportedStateSchema,
  type Telemetry,
  TelemetrySchema,
  topics,
} from "@paylane/protocol";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { loud } from "../../test/support/hooks.ts";
import { TestSite } from "../../test/support/site.ts";

const it = suite("desired configuration over MQTT");
let site: TestSite;
const states: ReportedState[] = [];
const telemetry: Telemetry[] = [];

it.before(
  loud("site setup", async () => {
    site = new TestSite({ db: "pg", presence: "memory", broker: "aedes", kiosks: ["k1"], probes: [] });
    await site.start();
    const viewer = await site.operatorClient("viewer");
    viewer.on("message", (topic, payload) => {
      if (topic === topics.state(site.address("k1"))) {
        const s = decode(ReportedStateSchema, payload);
        if (s.ok) states.push(s.value);
      } else {
        const t = decode(TelemetrySchema, payload);
        if (t.ok) telemetry.push(t.value);
      }
      site.signal.notify();
    });
    await viewer.subscribeAsync([topics.state(site.address("k1")), topics.telemetry(site.address("k1"))], { qos: 1 });
  }),
);
it.after(async () => {
  await site?.stop();
});

it("a retained config is applied and reported; telemetry follows its interval and carries the new facts", async () => {
  const operator = await site.operatorClient("operator");
  const sentAt = Date.now();
  await operator.publishAsync(
    topics.config(site.address("k1")),
    JSON.stringify({ version: 2, settings: { telemetryIntervalSeconds: 1, mode: "maintenance", volume: 3 } }),
    { qos: 1, retain: true },
  );
  const state = await site.signal.until(() => states.find((s) => s.version === 2), "state for version 2", 10_000);
  assert.equal(state.applied, { telemetryIntervalSeconds: 1, mode: "maintenance" });
  assert.equal(
    state.rejected.map((r) => r.field),
    ["volume"],
  );
  // The default interval is 30 s: two telemetry messages within a few seconds prove the new one is live.
  const recent = () => telemetry.filter((t) => Date.parse(t.at) >= sentAt && t.configVersion === 2);
  await site.signal.until(() => recent().length >= 2, "two telemetry messages at the new interval", 10_000);
  const t = recent()[0]!;
  assert.is(t.mode, "maintenance");
  assert.ok(t.memory && t.memory.rssBytes > 0);
  assert.ok(t.disk && t.disk.totalBytes > 0);
  assert.ok(t.cpuTemperatureC === null || typeof t.cpuTemperatureC === "number");
  assert.is(t.versions?.node, process.versions.node);

  // The gateway forwards only JSON objects; one that is not a desired config is the kiosk's to refuse.
  await operator.publishAsync(
    topics.config(site.address("k1")),
    JSON.stringify({ version: "three", settings: { mode: "in-service" } }),
    { qos: 1, retain: true },
  );
  const refused = await site.signal.until(() => states.find((s) => s.error), "an error reported", 10_000);
  assert.is(refused.version, 2);
  assert.match(refused.error ?? "", /nothing applied: version/);
  assert.is((await site.kiosk("k1").state()).screen?.mode, "maintenance");
});

it.run();
