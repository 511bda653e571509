/**
 * Attacks on enrolment (issue 15). Each takes over, or tries to take over, a
 * kiosk's identity on the broker; each must leave the rightful kiosk able to
 * connect and the attacker unable to. An attacker here has seen a kiosk's
 * enrolment request (a log on the path, a proxy) or holds a valid claim code
 * of the same site (a code read off a label), but never the kiosk's key.
 */
import { hashSecret } from "@paylane/protocol";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { EnrolmentHarness, enrolRequest, newKiosk } from "../../cloud/test/enrolment-harness.ts";
import { loud } from "../support/hooks.ts";

const it = suite("enrolment takeover");
const h = new EnrolmentHarness({ devices: ["hand-registered"] });
const attackerSecret = "the-attackers-own-secret";
let n = 1;
/** Each attack from its own address, so the failure limit never hides an outcome. */
const enrol = (body: unknown) => h.request("POST", "/api/v1/enrol", { body, from: `203.0.113.${n++}` });

it.before(loud("harness", () => h.start()));
it.after(() => h.stop());

it("a captured enrol request replayed with the attacker's secret hash does not take the device", async () => {
  const [claim] = await h.claims();
  const kiosk = await newKiosk(h.site, "kiosk-a");
  const captured = enrolRequest(kiosk, claim!.code, h.now());
  assert.is((await enrol(captured)).status, 201);
  await h.mqttWithin(h.site, "kiosk-a", kiosk.secret);

  const swapped = await enrol({ ...captured, secretHash: await hashSecret(attackerSecret) });
  assert.is(swapped.status, 400);
  assert.is(swapped.body.reason, "bad-signature");
  // Replayed as is: the same answer, and nothing changes (the secret behind the hash is the kiosk's).
  assert.is((await enrol(captured)).status, 201);
  assert.ok(await h.refuses(h.site, "kiosk-a", attackerSecret), "the attacker's secret does not open the broker");
  await h.mqttAs(h.site, "kiosk-a", kiosk.secret);
});

it("a captured request replayed before the kiosk's own arrives, with another secret hash, is refused", async () => {
  const [claim] = await h.claims();
  const kiosk = await newKiosk(h.site, "kiosk-b");
  const captured = enrolRequest(kiosk, claim!.code, h.now());
  const swapped = await enrol({ ...captured, secretHash: await hashSecret(attackerSecret) });
  assert.is(swapped.body.reason, "bad-signature");
  assert.is((await enrol(captured)).status, 201, "the claim is still the kiosk's");
  await h.mqttWithin(h.site, "kiosk-b", kiosk.secret);
});

it("a valid claim code and the attacker's own key do not take an enrolled or a hand-registered device id", async () => {
  for (const device of ["kiosk-a", "hand-registered"]) {
    const [claim] = await h.claims();
    const attacker = await newKiosk(h.site, device);
    const attack = await enrol(
      enrolRequest({ ...attacker, secretHash: await hashSecret(attackerSecret) }, claim!.code, h.now()),
    );
    assert.is(attack.status, 409, `${device}: ${JSON.stringify(attack.body)}`);
    assert.is(attack.body.reason, "device-taken");
    assert.ok(await h.refuses(h.site, device, attackerSecret), `${device}: the attacker's secret is refused`);
  }
  await h.mqttAs(h.site, "hand-registered", h.secrets.get("hand-registered")!);
});

it("a used claim re-signed with the attacker's key is refused as used", async () => {
  const [claim] = await h.claims();
  const kiosk = await newKiosk(h.site, "kiosk-c");
  assert.is((await enrol(enrolRequest(kiosk, claim!.code, h.now()))).status, 201);
  const attacker = await newKiosk(h.site, "kiosk-c");
  const attack = await enrol(enrolRequest(attacker, claim!.code, h.now()));
  assert.is(attack.body.reason, "claim-used");
});

it("a weak secret hash (scrypt N=2, cheap to brute force) is refused as the kiosk's password", async () => {
  const [claim] = await h.claims();
  const kiosk = await newKiosk(h.site, "kiosk-weak");
  const weak = `scrypt$2$8$1$${"ab".repeat(16)}$${"cd".repeat(32)}`;
  const res = await enrol(enrolRequest({ ...kiosk, secretHash: weak }, claim!.code, h.now()));
  assert.is(res.status, 400);
  assert.match(String(res.body.detail), /secretHash/);
});

it.run();
