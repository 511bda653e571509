import type { Identity } from "@paylane/protocol";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { checkForward, checkPublish, checkSubscribe, checkWill, splitSharedFilter } from "../src/acl.ts";

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
  // the committed-events feed: live, under the v1 root, with real ids only
  ["paylane/v1/cloud/events/s1/k1", false, true],
  ["paylane/v1/cloud/events/s1/k1", true, false],
  ["elsewhere/v9/cloud/events/s1/k1", false, false],
  ["paylane/v1/cloud/events/cloud/k1", false, false],
  ["paylane/v1/cloud/events/s1/K+1", false, false],
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
  // its own status, read back: a late Will over its birth is answered with a rebirth
  ["paylane/v1/s1/k1/status", true],
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

// Operators: a viewer and an operator granted s1, an admin granted everything.
const viewer: Identity = { kind: "operator", id: "ann", role: "viewer", sites: ["s1"] };
const operator: Identity = { kind: "operator", id: "bob", role: "operator", sites: ["s1"] };
const admin: Identity = { kind: "operator", id: "root", role: "admin", sites: [] };

/** [topic, retain, viewer, operator of s1, admin] */
const operatorPublish: [string, boolean, boolean, boolean, boolean][] = [
  ["paylane/v1/s1/k1/cmd/reboot", false, false, true, true],
  ["paylane/v1/s1/k1/config", true, false, true, true],
  // site A's operator commanding site B
  ["paylane/v1/s2/k1/cmd/reboot", false, false, false, true],
  ["paylane/v1/s2/k1/config", true, false, false, true],
  // commands are never retained
  ["paylane/v1/s1/k1/cmd/reboot", true, false, false, false],
  // operators never speak for a device or for the cloud
  ["paylane/v1/s1/k1/status", true, false, false, false],
  ["paylane/v1/s1/k1/events", false, false, false, false],
  ["paylane/v1/s1/k1/cmd-result", false, false, false, false],
  ["paylane/v1/s1/k1/ack", false, false, false, false],
  ["paylane/v1/s1/k1/errors", false, false, false, false],
  ["paylane/v1/cloud/status", true, false, false, false],
  ["paylane/v1/cloud/alerts/s1/offline", true, false, false, false],
  ["$SYS/x", false, false, false, false],
];

test("operator publish table, per role", () => {
  for (const [topic, retain, ...expected] of operatorPublish) {
    [viewer, operator, admin].forEach((who, i) => {
      const decision = checkPublish(who, topic, retain);
      assert.is(decision.allowed, expected[i], `${(who as { role: string }).role} publish ${topic} retain=${retain}`);
      if (!decision.allowed) assert.ok(decision.reason.length > 0, "a refusal says why");
    });
  }
});

/** [filter, viewer or operator of s1, admin] (reading is the same for every role) */
const operatorSubscribe: [string, boolean, boolean][] = [
  ["paylane/v1/s1/+/status", true, true],
  ["paylane/v1/+/+/status", true, true],
  ["paylane/v1/s1/k1/telemetry", true, true],
  ["paylane/v1/s1/+/state", true, true],
  ["paylane/v1/+/+/cmd-result", true, true],
  ["paylane/v1/s1/+/config", true, true],
  ["paylane/v1/cloud/status", true, true],
  ["paylane/v1/cloud/alerts/s1/+", true, true],
  ["paylane/v1/cloud/alerts/+/+", true, true],
  ["paylane/v1/cloud/events/s1/+", true, true],
  // events bodies hold member ids; acks are the cloud's answers to the device
  ["paylane/v1/s1/k1/events", false, false],
  ["paylane/v1/+/+/events", false, false],
  ["paylane/v1/s1/k1/ack", false, false],
  ["paylane/v1/s1/k1/errors", false, false],
  ["paylane/v1/s1/k1/cmd/+", false, false],
  // another site, named
  ["paylane/v1/s2/+/status", false, true],
  ["paylane/v1/cloud/alerts/s2/+", false, true],
  // wildcards that would reach what they may not read
  ["paylane/v1/#", false, false],
  ["paylane/v1/s1/#", false, false],
  ["paylane/v1/s1/k1/#", false, false],
  ["paylane/v1/+/+/+", false, false],
  ["#", false, false],
  ["$SYS/#", false, false],
  ["$share/g/paylane/v1/+/+/status", false, false],
];

test("operator subscribe table, per role", () => {
  for (const [filter, granted, forAdmin] of operatorSubscribe) {
    assert.is(checkSubscribe(viewer, filter).allowed, granted, `viewer subscribe ${filter}`);
    assert.is(checkSubscribe(operator, filter).allowed, granted, `operator subscribe ${filter}`);
    assert.is(checkSubscribe(admin, filter).allowed, forAdmin, `admin subscribe ${filter}`);
  }
});

test("each delivered message is checked against the operator's sites", () => {
  const delivered: [string, boolean, boolean][] = [
    ["paylane/v1/s1/k1/status", true, true],
    ["paylane/v1/s2/k1/status", false, true],
    ["paylane/v1/cloud/alerts/s1/offline", true, true],
    ["paylane/v1/cloud/alerts/s2/offline", false, true],
    ["paylane/v1/cloud/events/s2/k1", false, true],
    ["paylane/v1/cloud/status", true, true],
  ];
  for (const [topic, forViewer, forAdmin] of delivered) {
    assert.is(checkForward(viewer, topic).allowed, forViewer, `viewer receives ${topic}`);
    assert.is(checkForward(admin, topic).allowed, forAdmin, `admin receives ${topic}`);
  }
  // devices and the bridge are confined by what they may subscribe to
  assert.ok(checkForward(k1, "paylane/v1/s1/k1/ack").allowed);
  assert.ok(checkForward(bridge, "paylane/v1/s2/k1/events").allowed);
});

test("an operator may not set a Will", () => {
  assert.not.ok(checkWill(operator, "paylane/v1/s1/k1/cmd/reboot", false).allowed);
  assert.not.ok(checkWill(admin, "paylane/v1/cloud/status", true).allowed);
});

test.run();
