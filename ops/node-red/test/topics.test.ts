/**
 * The nodes' CommonJS copy of the topic tree (lib/topics.js) against the
 * protocol's own builders: if a topic changes in protocol/src/topics.ts,
 * this fails until the copy follows.
 */
import { createRequire } from "node:module";
import { COMMAND_NAMES, ID_PATTERN, parseTopic, ROOT, topics } from "@paylane/protocol";
import { test } from "uvu";
import * as assert from "uvu/assert";

const require = createRequire(import.meta.url);
const copy = require("../lib/topics.js");
const a = { site: "s1", device: "k1" };

test("the root, the id pattern and the command names are the protocol's", () => {
  assert.is(copy.ROOT, ROOT);
  assert.is(String(copy.ID_PATTERN), String(ID_PATTERN));
  assert.equal([...copy.COMMAND_NAMES].sort(), [...COMMAND_NAMES].sort());
});

test("one device's topics are the protocol's", () => {
  assert.is(copy.status("s1", "k1"), topics.status(a));
  assert.is(copy.cmdResult("s1", "k1"), topics.cmdResult(a));
  assert.is(copy.eventsMeta("s1", "k1"), topics.eventsMeta(a));
  for (const name of COMMAND_NAMES) assert.is(copy.cmd("s1", "k1", name), topics.cmd(a, name));
});

test("an empty site or device is the protocol's fleet-wide filter", () => {
  assert.is(copy.status(), topics.fleet("status"));
  assert.is(copy.status("s1", ""), topics.fleet("status", "s1"));
  assert.is(copy.cmdResult("", undefined), topics.fleet("cmd-result"));
  assert.is(copy.eventsMeta(), topics.fleetEventsMeta());
  assert.is(copy.eventsMeta("s1"), topics.fleetEventsMeta("s1"));
  assert.is(copy.alerts(), topics.alerts());
  assert.is(copy.alerts("s1"), topics.alerts("s1"));
});

test("parsing agrees with the protocol and the filters match what they should", () => {
  assert.equal(copy.parseDevice(topics.status(a)), { ...a, channel: "status" });
  assert.equal(parseTopic(topics.status(a)), { ...a, channel: "status" });
  assert.equal(copy.parseEventsMeta(topics.eventsMeta(a)), a);
  assert.is(copy.parseDevice(topics.eventsMeta(a)), null);
  assert.ok(copy.matches(copy.status(), topics.status(a)));
  assert.ok(copy.matches(copy.alerts("s1"), topics.alert("s1", "device-offline:s1:k1")));
  assert.not.ok(copy.matches(copy.alerts("s2"), topics.alert("s1", "device-offline:s1:k1")));
  assert.not.ok(copy.matches(copy.status("s1", "k1"), topics.telemetry(a)));
});

test("bad ids and unknown commands are refused with the reason", () => {
  assert.throws(() => copy.status("S1/x"), /invalid id/);
  assert.throws(() => copy.cmd("s1", "", "reboot"), /needs a site and a device/);
  assert.throws(() => copy.cmd("s1", "k1", "format-disk"), /unknown command "format-disk": expected one of reboot/);
});

test.run();
