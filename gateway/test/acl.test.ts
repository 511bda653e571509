import type { Identity } from "@paylane/protocol";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { checkPublish, checkSubscribe, checkWill, splitSharedFilter } from "../src/acl.ts";

const k1: Identity = { kind: "device", address: { site: "s1", device: "k1" } };
const bridge: Identity = { kind: "service", id: "cloud", role: "bridge" };

type Row = [topic: string, retain: boolean, allowed: boolean];

const devicePublish: Row[] = [
  ["paylane/v1/s1/k1/status", true, true],
  ["paylane/v1/s1/k1/status", false, true],
  ["paylane/v1/s1/k1/events", false, true],
  ["paylane/v1/s1/k1/telemetry", false, true],
  ["paylane/v1/s1/k1/state", true, true],
  ["paylane/v1/s1/k1/cmd-result", false, true],
  // retain only on status and state
  ["paylane/v1/s1/k1/events", true, false],
  ["paylane/v1/s1/k1/telemetry", true, false],
  ["paylane/v1/s1/k1/cmd-result", true, false],
  // channels addressed to the device
  ["paylane/v1/s1/k1/ack", false, false],
  ["paylane/v1/s1/k1/config", true, false],
  ["paylane/v1/s1/k1/errors", false, false],
  ["paylane/v1/s1/k1/cmd/reboot", false, false],
  // another device, another site, the cloud, outside the tree
  ["paylane/v1/s1/k2/events", false, false],
  ["paylane/v1/s1/k2/status", true, false],
  ["paylane/v1/s2/k1/events", false, false],
  ["paylane/v1/cloud/status", true, false],
  ["paylane/v2/s1/k1/events", false, false],
  ["paylane/v1/s1/k1/events/extra", false, false],
  ["paylane/v1/s1/k1/unknown", false, false],
  ["paylane/v1/s1/k1", false, false],
  ["$SYS/broker/new/clients", false, false],
  ["other/topic", false, false],
  ["", false, false],
  // look-alikes
  ["paylane/v1/s1/k1 /events", false, false],
  ["paylane/v1/S1/k1/events", false, false],
  ["/paylane/v1/s1/k1/events", false, false],
];

test("device publish table", () => {
  for (const [topic, retain, allowed] of devicePublish) {
    const decision = checkPublish(k1, topic, retain);
    assert.is(decision.allowed, allowed, `publish ${topic} retain=${retain}`);
    if (!decision.allowed) assert.ok(decision.reason.length > 0, "a refusal says why");
  }
});

const bridgePublish: Row[] = [
  ["paylane/v1/s1/k1/ack", false, true],
  ["paylane/v1/s2/k9/errors", false, true],
  ["paylane/v1/s1/k1/config", true, true],
  ["paylane/v1/s1/k1/config", false, true],
  ["paylane/v1/s1/k1/cmd/reboot", false, true],
  ["paylane/v1/cloud/status", true, true],
  ["paylane/v1/cloud/status", false, true],
  ["paylane/v1/s1/k1/ack", true, false],
  ["paylane/v1/s1/k1/errors", true, false],
  ["paylane/v1/s1/k1/cmd/reboot", true, false],
  // the bridge never speaks for a device
  ["paylane/v1/s1/k1/events", false, false],
  ["paylane/v1/s1/k1/status", true, false],
  ["paylane/v1/s1/k1/state", true, false],
  ["paylane/v1/s1/k1/cmd-result", false, false],
  ["paylane/v1/cloud/other", false, false],
  ["$SYS/x", false, false],
  ["elsewhere", false, false],
];

test("bridge publish table", () => {
  for (const [topic, retain, allowed] of bridgePublish) {
    assert.is(checkPublish(bridge, topic, retain).allowed, allowed, `publish ${topic} retain=${retain}`);
  }
});

const deviceSubscribe: [filter: string, allowed: boolean][] = [
  ["paylane/v1/s1/k1/ack", true],
  ["paylane/v1/s1/k1/config", true],
  ["paylane/v1/s1/k1/errors", true],
  ["paylane/v1/s1/k1/cmd/+", true],
  ["paylane/v1/s1/k1/cmd/reboot", true],
  ["paylane/v1/s1/k1/#", true],
  ["paylane/v1/cloud/status", true],
  // wildcard escapes
  ["#", false],
  ["+/#", false],
  ["paylane/#", false],
  ["paylane/v1/#", false],
  ["paylane/v1/+/k1/ack", false],
  ["paylane/v1/s1/+/ack", false],
  ["paylane/v1/s1/#", false],
  ["paylane/v1/+/+/#", false],
  ["paylane/v1/s1/+/#", false],
  ["paylane/v1/+/k1/#", false],
  ["paylane/+/s1/k1/ack", false],
  ["+/v1/s1/k1/ack", false],
  ["paylane/v1/s1/k1/+/+", false],
  ["paylane/v1/s1/k1/cmd/#", false],
  ["paylane/v1/cloud/#", false],
  ["paylane/v1/cloud/+", false],
  // malformed wildcards must not read as prefixes
  ["paylane/v1/s1/k1#", false],
  ["paylane/v1/s1/k1/#/ack", false],
  ["paylane/v1/s1/k+/ack", false],
  // other devices, exactly
  ["paylane/v1/s1/k2/ack", false],
  ["paylane/v1/s1/k2/cmd/+", false],
  ["paylane/v1/s2/k1/config", false],
  ["paylane/v1/s1/k2/#", false],
  // another device's outbound data
  ["paylane/v1/s1/k2/events", false],
  ["paylane/v1/s1/k2/status", false],
  // shared subscriptions are for services
  ["$share/g/paylane/v1/s1/k1/ack", false],
  ["$SYS/#", false],
];

test("device subscribe table", () => {
  for (const [filter, allowed] of deviceSubscribe) {
    assert.is(checkSubscribe(k1, filter).allowed, allowed, `subscribe ${filter}`);
  }
});

const bridgeSubscribe: [filter: string, allowed: boolean][] = [
  ["paylane/v1/#", true],
  ["paylane/v1/+/+/events", true],
  ["paylane/v1/s1/+/status", true],
  ["paylane/v1/s1/k1/events", true],
  ["paylane/v1/cloud/status", true],
  ["paylane/v1/+/+/cmd-result", true],
  ["$share/ingest/paylane/v1/+/+/events", true],
  ["$share/ingest/paylane/v1/#", true],
  // outside the v1 tree
  ["#", false],
  ["+/#", false],
  ["paylane/#", false],
  ["paylane/+/s1/k1/events", false],
  ["+/v1/+/+/events", false],
  ["paylane/v2/#", false],
  ["paylane/v1", false],
  ["$SYS/#", false],
  ["$share/ingest/#", false],
  ["$share/ingest/paylane/#", false],
  // malformed shared subscriptions [MQTT-4.8.2-1], [MQTT-4.8.2-2]
  ["$share//paylane/v1/#", false],
  ["$share/g+/paylane/v1/#", false],
  ["$share/#/paylane/v1/#", false],
  ["$share/ingest", false],
  // malformed wildcards
  ["paylane/v1/#/events", false],
  ["paylane/v1/s1+/events", false],
];

test("bridge subscribe table", () => {
  for (const [filter, allowed] of bridgeSubscribe) {
    assert.is(checkSubscribe(bridge, filter).allowed, allowed, `subscribe ${filter}`);
  }
});

test("a Will is the sender's own status topic and nothing else", () => {
  assert.ok(checkWill(k1, "paylane/v1/s1/k1/status", true).allowed);
  assert.ok(checkWill(k1, "paylane/v1/s1/k1/status", false).allowed);
  // publishable, but not as a Will
  assert.not.ok(checkWill(k1, "paylane/v1/s1/k1/events", false).allowed);
  assert.not.ok(checkWill(k1, "paylane/v1/s1/k1/state", true).allowed);
  assert.not.ok(checkWill(k1, "paylane/v1/s1/k2/status", true).allowed);
  assert.not.ok(checkWill(k1, "paylane/v1/cloud/status", true).allowed);
  assert.ok(checkWill(bridge, "paylane/v1/cloud/status", true).allowed);
  assert.not.ok(checkWill(bridge, "paylane/v1/s1/k1/config", true).allowed);
  assert.not.ok(checkWill(bridge, "paylane/v1/s1/k1/status", true).allowed);
});

test("splitSharedFilter strips the $share prefix and rejects malformed forms", () => {
  assert.equal(splitSharedFilter("paylane/v1/#"), { group: null, filter: "paylane/v1/#" });
  assert.equal(splitSharedFilter("$share/ingest/paylane/v1/+/+/events"), {
    group: "ingest",
    filter: "paylane/v1/+/+/events",
  });
  assert.is(splitSharedFilter("$share//paylane/v1/#"), null);
  assert.is(splitSharedFilter("$share/ingest"), null);
  assert.is(splitSharedFilter("$share/a+b/x"), null);
});

test("an unknown service role is refused everything", () => {
  // Roles come from the registry schema; a future role gets nothing until the ACL names it.
  const auditor = { kind: "service", id: "audit", role: "auditor" } as unknown as Identity;
  assert.not.ok(checkPublish(auditor, "paylane/v1/s1/k1/ack", false).allowed);
  assert.not.ok(checkSubscribe(auditor, "paylane/v1/#").allowed);
  assert.not.ok(checkWill(auditor, "paylane/v1/cloud/status", true).allowed);
});

test.run();
