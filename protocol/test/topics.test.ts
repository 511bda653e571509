/**
 * The v1 topic tree and the codec: every topic is built and parsed by the
 * same module, ids that would break a topic level, a username or a database
 * key are refused, and every decode error names the path of what is wrong.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { z } from "zod";
import { decode, encode, validate } from "../src/codec.ts";
import { AckSchema, EventBatchSchema, StatusSchema } from "../src/messages.ts";
import { type DeviceAddress, deviceIdentity, parseTopic, topics } from "../src/topics.ts";

const k1: DeviceAddress = { site: "venue-1", device: "kiosk_a" };

test("every device topic builder produces paylane/v1/{site}/{device}/{channel}", () => {
  assert.is(topics.status(k1), "paylane/v1/venue-1/kiosk_a/status");
  assert.is(topics.events(k1), "paylane/v1/venue-1/kiosk_a/events");
  assert.is(topics.ack(k1), "paylane/v1/venue-1/kiosk_a/ack");
  assert.is(topics.telemetry(k1), "paylane/v1/venue-1/kiosk_a/telemetry");
  assert.is(topics.config(k1), "paylane/v1/venue-1/kiosk_a/config");
  assert.is(topics.state(k1), "paylane/v1/venue-1/kiosk_a/state");
  assert.is(topics.cmdResult(k1), "paylane/v1/venue-1/kiosk_a/cmd-result");
  assert.is(topics.errors(k1), "paylane/v1/venue-1/kiosk_a/errors");
  assert.is(topics.cmd(k1, "reboot"), "paylane/v1/venue-1/kiosk_a/cmd/reboot");
  assert.is(topics.deviceTree(k1), "paylane/v1/venue-1/kiosk_a/#");
  assert.is(topics.fleet("events"), "paylane/v1/+/+/events");
  assert.is(topics.fleet("status", "venue-1"), "paylane/v1/venue-1/+/status");
  assert.is(topics.cloudStatus, "paylane/v1/cloud/status");
});

test("parseTopic round-trips every builder", () => {
  const builders = [
    ["status", topics.status],
    ["events", topics.events],
    ["ack", topics.ack],
    ["telemetry", topics.telemetry],
    ["config", topics.config],
    ["state", topics.state],
    ["cmd-result", topics.cmdResult],
    ["errors", topics.errors],
  ] as const;
  for (const [channel, build] of builders) {
    assert.equal(parseTopic(build(k1)), { ...k1, channel }, channel);
  }
  assert.equal(parseTopic(topics.cmd(k1, "print-test")), { ...k1, channel: "cmd", command: "print-test" });
});

test("parseTopic returns null for anything outside the v1 device tree", () => {
  const outside = [
    "",
    "paylane/v1",
    "paylane/v1/venue-1/kiosk_a",
    "paylane/v2/venue-1/kiosk_a/status",
    "other/v1/venue-1/kiosk_a/status",
    "paylane/v1/venue-1/kiosk_a/unknown-channel",
    "paylane/v1/venue-1/kiosk_a/status/extra",
    "paylane/v1/venue-1/kiosk_a/cmd",
    "paylane/v1/venue-1/kiosk_a/cmd/Reboot",
    "paylane/v1/venue-1/kiosk_a/cmd/a/b",
    "paylane/v1/+/kiosk_a/status",
    "paylane/v1/venue-1/#",
    "paylane/v1/venue-1/+/status",
    "paylane/v1/Venue/kiosk_a/status",
    "paylane/v1/cloud/kiosk_a/status",
    "paylane/v1//kiosk_a/status",
    topics.cloudStatus,
  ];
  for (const topic of outside) assert.is(parseTopic(topic), null, topic);
});

test("builders refuse ids with /, +, #, upper case, empty and the reserved site cloud", () => {
  const bad: Array<[DeviceAddress, RegExp]> = [
    [{ site: "a/b", device: "k1" }, /invalid site id "a\/b"/],
    [{ site: "s+", device: "k1" }, /invalid site id "s\+"/],
    [{ site: "s#", device: "k1" }, /invalid site id "s#"/],
    [{ site: "Site", device: "k1" }, /invalid site id "Site"/],
    [{ site: "", device: "k1" }, /invalid site id ""/],
    [{ site: "cloud", device: "k1" }, /invalid site id "cloud".*not "cloud"/],
    [{ site: "s1", device: "k/1" }, /invalid device id "k\/1"/],
    [{ site: "s1", device: "+" }, /invalid device id "\+"/],
    [{ site: "s1", device: "#" }, /invalid device id "#"/],
    [{ site: "s1", device: "K1" }, /invalid device id "K1"/],
    [{ site: "s1", device: "" }, /invalid device id ""/],
  ];
  for (const [addr, message] of bad) {
    assert.throws(() => topics.status(addr), message, JSON.stringify(addr));
    assert.throws(() => topics.deviceTree(addr), message, JSON.stringify(addr));
    assert.throws(() => deviceIdentity.username(addr), message, JSON.stringify(addr));
    assert.throws(() => deviceIdentity.clientId(addr), message, JSON.stringify(addr));
  }
  // A device may be called "cloud"; only the site level is reserved.
  assert.is(topics.status({ site: "s1", device: "cloud" }), "paylane/v1/s1/cloud/status");
});

test("cmd refuses a command name that is not a single safe level", () => {
  for (const name of ["", "a/b", "+", "#", "Reboot"]) {
    assert.throws(() => topics.cmd(k1, name), /invalid command name/, name);
  }
});

test("deviceIdentity: username {site}/{device}, clientId paylane:{site}:{device}, parseUsername inverts username", () => {
  assert.is(deviceIdentity.username(k1), "venue-1/kiosk_a");
  assert.is(deviceIdentity.clientId(k1), "paylane:venue-1:kiosk_a");
  assert.equal(deviceIdentity.parseUsername(deviceIdentity.username(k1)), k1);
  for (const u of ["svc:cloud", "cloud/k1", "s1", "s1/k1/x", "S1/k1", "s1/", "/k1", "s1/k+"]) {
    assert.is(deviceIdentity.parseUsername(u), null, u);
  }
});

test("decode names the path of each bad field", () => {
  const batch = {
    device: "kiosk_a",
    entries: [
      { seq: 1, id: "9b2b8f8c-3f7a-4c1e-9d55-1d2f0d7f6a11", kind: "checkin", at: "2024-05-01T10:00:00Z", body: {} },
      { seq: 2, id: "x", kind: "checkin", at: "yesterday", body: {} },
    ],
  };
  const ok = decode(EventBatchSchema, JSON.stringify(batch));
  assert.ok(ok.ok, "an events batch validates the envelope only; entries are checked one by one");

  const bad = decode(AckSchema, Buffer.from(JSON.stringify({ upTo: -1 })));
  assert.not.ok(bad.ok);
  if (!bad.ok) assert.match(bad.error, /^upTo: /);

  const Nested = z.object({ entries: z.array(z.object({ at: z.iso.datetime() })) });
  const nested = validate(Nested, { entries: [{ at: "2024-05-01T10:00:00Z" }, { at: "noon" }] });
  assert.not.ok(nested.ok);
  if (!nested.ok) assert.match(nested.error, /^entries\[1\]\.at: /);

  const located = validate(Nested.shape.entries.element, { at: 5 }, "entries[3]");
  assert.not.ok(located.ok);
  if (!located.ok) assert.match(located.error, /^entries\[3\]\.at: /);
});

test("decode reports several issues at once, each with its path", () => {
  const r = validate(StatusSchema, { state: "online", version: "", bootedAt: "soon", protocol: 1 });
  assert.not.ok(r.ok);
  if (!r.ok) {
    assert.match(r.error, /version: /);
    assert.match(r.error, /bootedAt: /);
    assert.match(r.error, /; /);
  }
});

test("decode of malformed JSON says so and never throws", () => {
  for (const payload of ["{", "", "not json", Buffer.from([0xff, 0xfe])]) {
    const r = decode(AckSchema, payload);
    assert.not.ok(r.ok);
    if (!r.ok) assert.match(r.error, /^malformed JSON: /);
  }
});

test("decode accepts a valid payload as a string or a Buffer", () => {
  assert.equal(decode(AckSchema, '{"upTo":7}'), { ok: true, value: { upTo: 7 } });
  assert.equal(decode(AckSchema, Buffer.from('{"upTo":0}')), { ok: true, value: { upTo: 0 } });
});

test("encode writes valid JSON and refuses an invalid value", () => {
  const bytes = encode(StatusSchema, {
    state: "online",
    version: "1.2.3",
    bootedAt: "2024-05-01T10:00:00.000Z",
    protocol: 1,
  });
  assert.equal(JSON.parse(bytes.toString("utf8")), {
    state: "online",
    version: "1.2.3",
    bootedAt: "2024-05-01T10:00:00.000Z",
    protocol: 1,
  });
  assert.throws(() => encode(AckSchema, { upTo: 1.5 }));
  assert.throws(() => encode(AckSchema, { upTo: -3 }));
  assert.throws(() => encode(StatusSchema, { state: "online", version: "1", bootedAt: "never", protocol: 1 }));
});

test("encode strips fields the schema does not know", () => {
  const bytes = encode(AckSchema, { upTo: 3, extra: true } as unknown as { upTo: number });
  assert.equal(JSON.parse(bytes.toString()), { upTo: 3 });
});

test.run();
