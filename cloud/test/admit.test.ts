/**
 * admitEvents: how one `events` payload splits into entries to commit and
 * refusals to report. Every refusal says what was wrong, and a bad entry never
 * keeps the valid entries around it out.
 */

import { randomUUID } from "node:crypto";
import type { CheckinBody, DeviceAddress, Entry } from "@paylane/protocol";
import { ENTRY_KINDS } from "@paylane/protocol";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { admitEvents, clip } from "../src/bridge/admit.ts";

const K1: DeviceAddress = { site: "s1", device: "k1" };
const AT = "2024-05-01T10:00:00.000Z";

function checkin(seq: number, over: Partial<Entry> = {}, body: Partial<CheckinBody> = {}): Entry {
  return {
    seq,
    id: randomUUID(),
    kind: "checkin",
    at: AT,
    body: {
      memberId: `m-${seq}`,
      credential: { type: "card", uid: "04A1B2C3" },
      replicaVersion: 3,
      offline: false,
      ...body,
    },
    ...over,
  };
}

const payload = (value: unknown) => Buffer.from(typeof value === "string" ? value : JSON.stringify(value));
const batch = (entries: unknown[], device = "k1") => payload({ device, entries });

test("malformed JSON refuses the whole message as malformed-json", () => {
  const r = admitEvents(K1, payload('{"device":"k1","entries":['));
  assert.equal(r.entries, []);
  assert.is(r.refusals.length, 1);
  const [refusal] = r.refusals;
  assert.is(refusal!.code, "malformed-json");
  assert.match(refusal!.reason, /^malformed JSON: /);
  assert.is(refusal!.site, "s1");
  assert.is(refusal!.device, "k1");
  assert.is(refusal!.payload, '{"device":"k1","entries":[');
});

test("JSON that is not a batch is refused as invalid-batch, naming the missing or bad fields", () => {
  const cases: Array<[unknown, RegExp]> = [
    [{ hello: "world" }, /device: .*; entries: /],
    [[], /expected object/],
    [{ device: "k1", entries: [] }, /^entries: /],
    [{ device: "k1", entries: "many" }, /^entries: /],
    [{ device: "", entries: [checkin(1)] }, /^device: /],
    [{ device: "k1", entries: Array.from({ length: 1001 }, (_, i) => checkin(i + 1)) }, /^entries: /],
  ];
  for (const [value, reason] of cases) {
    const r = admitEvents(K1, payload(value));
    assert.equal(r.entries, [], JSON.stringify(value).slice(0, 80));
    assert.is(r.refusals.length, 1);
    assert.is(r.refusals[0]!.code, "invalid-batch");
    assert.match(r.refusals[0]!.reason, reason);
  }
});

test("a batch naming another device is refused as wrong-device and nothing is admitted", () => {
  const r = admitEvents(K1, batch([checkin(1)], "k2"));
  assert.equal(r.entries, []);
  assert.is(r.refusals.length, 1);
  assert.is(r.refusals[0]!.code, "wrong-device");
  assert.is(r.refusals[0]!.reason, `batch from device "k2" was published on s1/k1's topic`);
});

test("a valid batch admits every entry as a check-in, in order", () => {
  const e1 = checkin(1);
  const e2 = checkin(2, {}, { credential: { type: "code", code: "ABCD12" }, offline: true, replicaVersion: 9 });
  const r = admitEvents(K1, batch([e1, e2]));
  assert.equal(r.refusals, []);
  assert.equal(r.entries, [
    {
      site: "s1",
      device: "k1",
      seq: 1,
      entryId: e1.id,
      kind: "checkin",
      applied: {
        at: AT,
        body: JSON.stringify({
          memberId: "m-1",
          credential: { type: "card", uid: "04A1B2C3" },
          replicaVersion: 3,
          offline: false,
        }),
      },
    },
    {
      site: "s1",
      device: "k1",
      seq: 2,
      entryId: e2.id,
      kind: "checkin",
      applied: {
        at: AT,
        body: JSON.stringify({
          memberId: "m-2",
          credential: { type: "code", code: "ABCD12" },
          replicaVersion: 9,
          offline: true,
        }),
      },
    },
  ]);
});

test("an invalid envelope with a usable seq is quarantined in its place, naming the bad field", () => {
  const bad = { ...checkin(2), id: "not-a-uuid", at: "yesterday" };
  const r = admitEvents(K1, batch([checkin(1), bad, checkin(3)]));
  assert.equal(r.refusals, []);
  assert.equal(
    r.entries.map((e) => e.seq),
    [1, 2, 3],
  );
  const q = r.entries[1]!;
  assert.is(q.kind, "invalid");
  assert.is(q.entryId, "not-a-uuid");
  assert.is(q.applied, undefined, "a quarantined entry applies nothing");
  assert.is(q.refusal!.code, "invalid-entry");
  assert.match(q.refusal!.reason, /entries\[1\]\.id: /);
  assert.match(q.refusal!.reason, /entries\[1\]\.at: /);
  assert.equal(JSON.parse(q.refusal!.payload), bad);
});

test("a quarantined entry keeps a non-string id as null and a long one clipped to 64 characters", () => {
  const r = admitEvents(
    K1,
    batch([
      { ...checkin(1), id: 42 },
      { ...checkin(2), id: "x".repeat(100) },
    ]),
  );
  assert.is(r.entries[0]!.entryId, null);
  assert.is(r.entries[1]!.entryId, "x".repeat(64));
  assert.ok(r.entries.every((e) => e.refusal?.code === "invalid-entry"));
});

test("an invalid entry without a usable seq is refused alone, and the rest is admitted", () => {
  const noSeq = [
    { ...checkin(1), seq: undefined },
    { ...checkin(1), seq: 0 },
    { ...checkin(1), seq: -4 },
    { ...checkin(1), seq: 2.5 },
    { ...checkin(1), seq: "3" },
    null,
    "entry",
  ];
  for (const raw of noSeq) {
    const r = admitEvents(K1, batch([checkin(1), raw, checkin(2)]));
    assert.equal(
      r.entries.map((e) => [e.seq, e.kind, e.refusal]),
      [
        [1, "checkin", undefined],
        [2, "checkin", undefined],
      ],
      JSON.stringify(raw),
    );
    assert.is(r.refusals.length, 1, JSON.stringify(raw));
    assert.is(r.refusals[0]!.code, "invalid-entry");
    assert.match(r.refusals[0]!.reason, /^entries\[1\]/);
    assert.is(r.refusals[0]!.payload, JSON.stringify(raw));
  }
});

test("an unknown kind is quarantined in its place, naming the kind and the known ones", () => {
  const voucher = checkin(2, { kind: "voucher" });
  const r = admitEvents(K1, batch([checkin(1), voucher]));
  assert.equal(r.refusals, []);
  const q = r.entries[1]!;
  assert.is(q.seq, 2);
  assert.is(q.kind, "voucher");
  assert.is(q.entryId, voucher.id);
  assert.is(q.applied, undefined);
  assert.equal(q.refusal, {
    code: "unknown-kind",
    reason: `entries[1]: unknown kind "voucher" (known: ${Object.keys(ENTRY_KINDS).join(", ")})`,
    payload: JSON.stringify(voucher),
  });
});

test("a bad body is quarantined in its place, naming the path inside the body", () => {
  const bad = checkin(
    3,
    {},
    { memberId: "", credential: { type: "card", uid: "lower-case" }, offline: "yes" as never },
  );
  const r = admitEvents(K1, batch([checkin(1), checkin(2), bad]));
  assert.equal(r.refusals, []);
  const q = r.entries[2]!;
  assert.is(q.kind, "checkin");
  assert.is(q.applied, undefined);
  assert.is(q.refusal!.code, "invalid-body");
  assert.match(q.refusal!.reason, /entries\[2\]\.body\.memberId: /);
  assert.match(q.refusal!.reason, /entries\[2\]\.body\.credential\.uid: /);
  assert.match(q.refusal!.reason, /entries\[2\]\.body\.offline: /);
});

test("valid entries around every kind of bad one are still admitted, in order", () => {
  const r = admitEvents(
    K1,
    batch([
      checkin(1),
      { ...checkin(2), at: "noon" },
      checkin(3),
      { seq: "x" },
      checkin(4, { kind: "refund" }),
      checkin(5, {}, { replicaVersion: -1 }),
      checkin(6),
    ]),
  );
  assert.equal(
    r.entries.map((e) => [e.seq, e.refusal?.code ?? "applied"]),
    [
      [1, "applied"],
      [2, "invalid-entry"],
      [3, "applied"],
      [4, "unknown-kind"],
      [5, "invalid-body"],
      [6, "applied"],
    ],
  );
  assert.equal(
    r.refusals.map((x) => x.code),
    ["invalid-entry"],
  );
  assert.equal(
    r.entries.filter((e) => e.applied).map((e) => JSON.parse(e.applied!.body).memberId),
    ["m-1", "m-3", "m-6"],
  );
});

test("stored payloads are bounded", () => {
  assert.is(clip("short"), "short");
  const long = "y".repeat(5000);
  assert.is(clip(long), `${"y".repeat(4096)}…`);
  const r = admitEvents(K1, payload(`{"device":"k1","entries":[${"1,".repeat(3000)}`));
  assert.is(r.refusals[0]!.code, "malformed-json");
  assert.is(r.refusals[0]!.payload.length, 4097);
});

test("an entry with a NUL character is quarantined in its place (Postgres text cannot hold it)", () => {
  const r = admitEvents(K1, batch([checkin(1), checkin(2, {}, { memberId: "m\u0000x" }), checkin(3)]));
  assert.equal(
    r.entries.map((e) => [e.seq, e.refusal?.code ?? "ok"]),
    [
      [1, "ok"],
      [2, "invalid-entry"],
      [3, "ok"],
    ],
  );
  assert.match(r.entries[1]!.refusal!.reason, /entries\[1\]: contains a NUL character/);
  assert.not.ok(clip("a\u0000b").includes("\u0000"), "stored payloads never carry NUL");
});

test.run();
