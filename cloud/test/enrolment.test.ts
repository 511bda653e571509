/**
 * Enrolment, the cloud's side (issue 15): claim codes made by an admin, a
 * kiosk trading one for a place in the registry the gateway and the cloud
 * watch (it connects over MQTT at once, no restart), every refusal with its
 * reason and audited, and the code itself in no log line and no table.
 * Real Postgres, a real aedes gateway; the cloud's clock is moved, never waited on.
 */
import { readFile, rename } from "node:fs/promises";
import { ENROL_CLOCK_SKEW_SECONDS } from "@paylane/protocol";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { loud } from "../../test/support/hooks.ts";
import { EnrolmentHarness, enrolRequest, newKiosk } from "./enrolment-harness.ts";

const it = suite("enrolment");
const h = new EnrolmentHarness({ devices: ["probe"] });
/** A fresh client address per test: the rate limit counts failures per address. */
let addressN = 10;
const from = () => `198.51.100.${addressN++}`;

it.before(loud("harness", () => h.start()));
it.after(() => h.stop());

const enrol = (body: unknown, address = from()) => h.request("POST", "/api/v1/enrol", { body, from: address });

it("an admin creates claim codes: shown once, formatted for a keypad, listed as unused without their codes", async () => {
  const res = await h.request("POST", "/api/v1/claims", {
    token: await h.token("admin", [h.site]),
    body: { site: h.site, count: 3, ttlSeconds: 3600 },
  });
  assert.is(res.status, 201);
  const claims = res.body.claims as Array<{ id: string; code: string; expiresAt: string }>;
  assert.is(claims.length, 3);
  for (const c of claims) {
    assert.match(c.code, /^\d{5}-\d{5}-\d{5}-\d{5}$/);
    assert.ok(Math.abs(new Date(c.expiresAt).getTime() - (h.now().getTime() + 3600_000)) < 5000);
  }
  const list = await h.request("GET", `/api/v1/claims?site=${h.site}`, { token: await h.token("admin") });
  assert.is(list.status, 200);
  const items = list.body.items as Array<Record<string, unknown>>;
  for (const c of claims) {
    const item = items.find((i) => i.id === c.id);
    assert.ok(item, `claim ${c.id} listed`);
    assert.is(item!.state, "unused");
    assert.not.ok(JSON.stringify(item).includes(c.code.slice(0, 5)), "no code in the listing");
  }
});

it("a viewer cannot create claims, and an admin scoped to one site cannot create them for another", async () => {
  const viewer = await h.request("POST", "/api/v1/claims", {
    token: await h.token("viewer", [h.site]),
    body: { site: h.site },
  });
  assert.is(viewer.status, 403);
  const scoped = await h.request("POST", "/api/v1/claims", {
    token: await h.token("admin", [h.site]),
    body: { site: h.otherSite },
  });
  assert.is(scoped.status, 403);
  const none = await h.request("POST", "/api/v1/claims", { body: { site: h.site } });
  assert.is(none.status, 401);
  const tooMany = await h.request("POST", "/api/v1/claims", {
    token: await h.token("admin"),
    body: { site: h.site, count: 101 },
  });
  assert.is(tooMany.status, 400);
  assert.match(String(tooMany.body.detail), /count/);
});

it("a kiosk enrols with a claim: 201, in the registry, and on the broker at once with the secret whose hash it sent", async () => {
  const [claim] = await h.claims();
  const k = await newKiosk(h.site, "kiosk-1");
  const res = await enrol(enrolRequest(k, claim!.code, h.now()));
  assert.is(res.status, 201, JSON.stringify(res.body));
  assert.equal(res.body.site, h.site);
  assert.equal(res.body.device, "kiosk-1");
  assert.equal(res.body.username, `${h.site}/kiosk-1`);
  // The gateway watches the registry file: no restart, within a couple of seconds.
  const client = await h.mqttWithin(h.site, "kiosk-1", k.secret);
  assert.ok(client.connected);
  assert.ok(await h.refuses(h.site, "kiosk-1", "not-the-secret"));
  // And in the cloud's own HTTP API (device Basic auth), which watches the same file.
  const streamPath = `/api/v1/sites/${h.site}/devices/kiosk-1/stream`;
  const deadline = Date.now() + 3000;
  let mark = await h.request("GET", streamPath, { basic: [`${h.site}/kiosk-1`, k.secret] });
  while (mark.status !== 200 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    mark = await h.request("GET", streamPath, { basic: [`${h.site}/kiosk-1`, k.secret] });
  }
  assert.is(mark.status, 200, JSON.stringify(mark.body));
  assert.is(mark.body.ackedSeq, 0);

  const list = await h.request("GET", `/api/v1/claims?site=${h.site}`, { token: await h.token("admin") });
  const item = (list.body.items as Array<Record<string, unknown>>).find((i) => i.id === claim!.id);
  assert.is(item?.state, "used");
  assert.is(item?.usedByDevice, "kiosk-1");

  const devices = await h.request("GET", `/api/v1/devices?site=${h.site}`, { token: await h.token("viewer") });
  assert.is(devices.status, 200);
  const d = (devices.body.items as Array<Record<string, unknown>>).find((i) => i.device === "kiosk-1");
  assert.ok(d, "the enrolled kiosk is listed");
  assert.is(d!.inRegistry, true);
  const e = d!.enrolment as Record<string, unknown>;
  assert.match(String(e.keyFingerprint), /^[0-9a-f]{16}$/);
  assert.is(e.enrolledAt, res.body.enrolledAt);
  assert.is(e.revokedAt, null);

  // The same code again, by another kiosk: burned.
  const other = await newKiosk(h.site, "kiosk-2");
  const again = await enrol(enrolRequest(other, claim!.code, h.now()));
  assert.is(again.status, 409);
  assert.is(again.body.reason, "claim-used");
});

it("a retry after success (the answer was lost) gets the same 201; a different secret hash does not", async () => {
  const [claim] = await h.claims();
  const k = await newKiosk(h.site, "kiosk-retry");
  const first = await enrol(enrolRequest(k, claim!.code, h.now()));
  assert.is(first.status, 201);
  const retry = await enrol(enrolRequest(k, claim!.code, h.now()));
  assert.is(retry.status, 201);
  assert.equal(retry.body, first.body);
  const otherSecret = await newKiosk(h.site, "kiosk-retry");
  const sameKeyNewHash = enrolRequest({ ...k, secretHash: otherSecret.secretHash }, claim!.code, h.now());
  const refused = await enrol(sameKeyNewHash);
  assert.is(refused.status, 409);
  assert.is(refused.body.reason, "claim-used");
});

it("refusals name their reason: unknown, expired (clock moved), other site, bad signature, clock skew, device taken", async () => {
  const k = await newKiosk(h.site, "kiosk-refused");
  const unknown = await enrol(enrolRequest(k, "00000-00000-00000-00000", h.now()));
  assert.is(unknown.body.reason, "claim-unknown");
  assert.is(unknown.status, 403);
  const typo = await enrol(enrolRequest(k, "12345", h.now()));
  assert.is(typo.body.reason, "claim-unknown");

  const [short] = await h.claims(1, h.site, 60);
  h.offsetMs = 61_000;
  try {
    const expired = await enrol(enrolRequest(k, short!.code, h.now()));
    assert.is(expired.status, 403);
    assert.is(expired.body.reason, "claim-expired");
    const list = await h.request("GET", `/api/v1/claims?site=${h.site}`, { token: await h.token("admin") });
    assert.is((list.body.items as Array<Record<string, unknown>>).find((i) => i.id === short!.id)?.state, "expired");
  } finally {
    h.offsetMs = 0;
  }

  const [foreign] = await h.claims(1, h.otherSite);
  const otherSite = await enrol(enrolRequest(k, foreign!.code, h.now()));
  assert.is(otherSite.body.reason, "claim-other-site");

  const [claim] = await h.claims();
  const tampered = enrolRequest(k, claim!.code, h.now(), { device: "someone-else" });
  const badSig = await enrol(tampered);
  assert.is(badSig.status, 400);
  assert.is(badSig.body.reason, "bad-signature");

  const skewed = new Date(h.now().getTime() - (ENROL_CLOCK_SKEW_SECONDS + 60) * 1000);
  const skew = await enrol(enrolRequest(k, claim!.code, skewed));
  assert.is(skew.status, 400);
  assert.is(skew.body.reason, "clock-skew");
  assert.match(String(skew.body.detail), /clock/);

  // "probe" is in the registry already (registered by hand): a claim does not take it over.
  const intruder = await newKiosk(h.site, "probe");
  const taken = await enrol(enrolRequest(intruder, claim!.code, h.now()));
  assert.is(taken.status, 409);
  assert.is(taken.body.reason, "device-taken");
  // The claim was not burned by the refusal: the rightful kiosk uses it.
  const ok = await enrol(enrolRequest(k, claim!.code, h.now()));
  assert.is(ok.status, 201, JSON.stringify(ok.body));

  // An id enrolled by another key is taken too.
  const [second] = await h.claims();
  const twin = await newKiosk(h.site, "kiosk-refused");
  const twinRes = await enrol(enrolRequest(twin, second!.code, h.now()));
  assert.is(twinRes.body.reason, "device-taken");

  const malformed = await enrol({ claim: "x" });
  assert.is(malformed.status, 400);
});

it("every refusal and enrolment is audited with its reason, claim and address", async () => {
  const [claim] = await h.claims();
  const k = await newKiosk(h.site, "kiosk-audit");
  const address = from();
  await enrol(enrolRequest(k, "00000-00000-00000-00000", h.now()), address);
  await enrol(enrolRequest(k, claim!.code, h.now()), address);
  const audit = await h.request("GET", `/api/v1/enrolment/audit?site=${h.site}`, { token: await h.token("admin") });
  assert.is(audit.status, 200);
  const mine = (audit.body.items as Array<Record<string, unknown>>).filter((i) => i.address === address);
  assert.equal(
    mine.map((i) => [i.action, i.outcome, i.reason, i.device, i.actor]),
    [
      ["enrolled", "ok", null, "kiosk-audit", "device"],
      ["refused", "refused", "claim-unknown", "kiosk-audit", "device"],
    ],
  );
  assert.is(mine[0]!.claimId, claim!.id);
  const created = (audit.body.items as Array<Record<string, unknown>>).find(
    (i) => i.action === "claim-created" && i.claimId === claim!.id,
  );
  assert.is(created?.actor, "admin-test");
});

it("a registry that cannot be written leaves the claim unused: the kiosk's retry works", async () => {
  const [claim] = await h.claims();
  const k = await newKiosk(h.site, "kiosk-later");
  const aside = `${h.registryPath}.aside`;
  await rename(h.registryPath, aside);
  let failed: Awaited<ReturnType<typeof enrol>>;
  try {
    failed = await enrol(enrolRequest(k, claim!.code, h.now()));
  } finally {
    await rename(aside, h.registryPath);
  }
  assert.is(failed.status, 503);
  assert.is(await h.count("SELECT count(*) AS n FROM enrol_claims WHERE id = $1 AND used_at IS NULL", [claim!.id]), 1);
  const retry = await enrol(enrolRequest(k, claim!.code, h.now()));
  assert.is(retry.status, 201, JSON.stringify(retry.body));
  await h.mqttWithin(h.site, "kiosk-later", k.secret);
});

it("failed attempts from one address are limited: the 11th in a minute is 429 rate-limited, other addresses are not", async () => {
  const k = await newKiosk(h.site, "kiosk-guess");
  const address = from();
  for (let i = 0; i < 10; i++) {
    const res = await enrol(enrolRequest(k, `00000-00000-00000-${String(i).padStart(5, "0")}`, h.now()), address);
    assert.is(res.body.reason, "claim-unknown");
  }
  const [claim] = await h.claims();
  const blocked = await enrol(enrolRequest(k, claim!.code, h.now()), address);
  assert.is(blocked.status, 429);
  assert.is(blocked.body.reason, "rate-limited");
  assert.is(
    await h.count("SELECT count(*) AS n FROM enrol_claims WHERE id = $1 AND used_at IS NULL", [claim!.id]),
    1,
    "a refused address did not spend the claim",
  );
  const elsewhere = await enrol(enrolRequest(k, claim!.code, h.now()));
  assert.is(elsewhere.status, 201);
});

it("two kiosks racing for one device id with two claims: one is enrolled, the other told device-taken", async () => {
  const [c1, c2] = await h.claims(2);
  const a = await newKiosk(h.site, "kiosk-race");
  const b = await newKiosk(h.site, "kiosk-race");
  const answers = await Promise.all([
    enrol(enrolRequest(a, c1!.code, h.now())),
    enrol(enrolRequest(b, c2!.code, h.now())),
  ]);
  assert.equal(answers.map((r) => r.status).sort(), [201, 409]);
  assert.is(answers.find((r) => r.status === 409)?.body.reason, "device-taken");
  const winner = answers[0]!.status === 201 ? a : b;
  await h.mqttWithin(h.site, "kiosk-race", winner.secret);
  assert.is(
    await h.count("SELECT count(*) AS n FROM enrol_claims WHERE id = ANY($1::uuid[]) AND used_at IS NULL", [
      [c1!.id, c2!.id],
    ]),
    1,
    "the loser's claim is still unused",
  );
});

it("no claim code appears in any log line, any table or the registry file", async () => {
  const claims = await h.claims(2);
  const k = await newKiosk(h.site, "kiosk-secretive");
  await enrol(enrolRequest(k, claims[0]!.code, h.now()));
  await enrol(enrolRequest(k, claims[0]!.code.replaceAll("-", ""), h.now()));
  await enrol(enrolRequest(await newKiosk(h.site, "probe"), claims[1]!.code, h.now()));
  assert.ok(h.logs.length > 0, "the cloud logged something");
  const registry = await readFile(h.registryPath, "utf8");
  const rows = await h.allRows();
  assert.ok(rows.some((r) => r.startsWith("enrol_claims:")));
  for (const c of claims) {
    const digits = c.code.replaceAll("-", "");
    for (const form of [c.code, digits]) {
      assert.not.ok(
        h.logs.some((l) => l.includes(form)),
        "a log line holds a claim code",
      );
      assert.not.ok(
        rows.some((r) => r.includes(form)),
        "a table holds a claim code",
      );
      assert.not.ok(registry.includes(form), "the registry holds a claim code");
    }
  }
});

it.run();
