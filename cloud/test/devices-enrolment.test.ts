/**
 * An enrolled kiosk's life after enrolment (issue 15): revoked by an admin
 * (its live MQTT session is closed and it cannot come back), and its
 * credentials rotated: the admin's rotate sends `cmd/rotate-credentials`
 * through the cloud's command path, the kiosk (played here over raw MQTT and
 * HTTP) registers a new secret signed with its enrolment key, and only the
 * new secret opens the broker afterwards.
 */
import { CommandSchema, decode, hashSecret, topics } from "@paylane/protocol";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { loud } from "../../test/support/hooks.ts";
import { EnrolmentHarness, enrolRequest, newKiosk, rotateRequest, type TestKiosk } from "./enrolment-harness.ts";

const it = suite("enrolled devices");
const h = new EnrolmentHarness({ devices: ["probe"] });

it.before(loud("harness", () => h.start()));
it.after(() => h.stop());

async function enrolled(device: string): Promise<TestKiosk> {
  const [claim] = await h.claims();
  const k = await newKiosk(h.site, device);
  const res = await h.request("POST", "/api/v1/enrol", { body: enrolRequest(k, claim!.code, h.now()) });
  if (res.status !== 201) throw new Error(`enrol answered ${res.status}: ${JSON.stringify(res.body)}`);
  return k;
}

/** Resolves when `check` holds, polling until `ms` pass. */
async function until(check: () => boolean | Promise<boolean>, what: string, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

it("revoke: the kiosk's live session is closed, it cannot reconnect, and the listing says revoked", async () => {
  const k = await enrolled("kiosk-revoked");
  const client = await h.mqttWithin(h.site, k.device, k.secret);
  let closed = false;
  client.on("close", () => {
    closed = true;
  });

  const viewer = await h.request("POST", `/api/v1/devices/${h.site}/${k.device}/revoke`, {
    token: await h.token("operator", [h.site]),
  });
  assert.is(viewer.status, 403, "an operator is not enough to revoke");
  const otherSite = await h.request("POST", `/api/v1/devices/${h.site}/${k.device}/revoke`, {
    token: await h.token("admin", [h.otherSite]),
  });
  assert.is(otherSite.status, 403);

  const res = await h.request("POST", `/api/v1/devices/${h.site}/${k.device}/revoke`, {
    token: await h.token("admin", [h.site]),
  });
  assert.is(res.status, 200, JSON.stringify(res.body));
  assert.type(res.body.revokedAt, "string");
  await until(() => closed, "the gateway closes the revoked kiosk's session");
  assert.ok(await h.refuses(h.site, k.device, k.secret), "the revoked kiosk cannot reconnect");

  const devices = await h.request("GET", `/api/v1/devices?site=${h.site}`, { token: await h.token("viewer") });
  const d = (devices.body.items as Array<Record<string, unknown>>).find((i) => i.device === k.device);
  assert.is(d?.inRegistry, false);
  assert.is((d?.enrolment as Record<string, unknown> | undefined)?.revokedAt, res.body.revokedAt);

  const again = await h.request("POST", `/api/v1/devices/${h.site}/${k.device}/revoke`, {
    token: await h.token("admin"),
  });
  assert.is(again.status, 404, "nothing left to revoke");

  // Re-enrolled with a new claim code (a new key, after the revocation): back on the broker.
  const [claim] = await h.claims();
  const reborn = await newKiosk(h.site, k.device);
  const enrol = await h.request("POST", "/api/v1/enrol", { body: enrolRequest(reborn, claim!.code, h.now()) });
  assert.is(enrol.status, 201, JSON.stringify(enrol.body));
  await h.mqttWithin(h.site, k.device, reborn.secret);

  const audit = await h.request("GET", `/api/v1/enrolment/audit?site=${h.site}`, { token: await h.token("admin") });
  const revoked = (audit.body.items as Array<Record<string, unknown>>).find(
    (i) => i.action === "revoked" && i.device === k.device,
  );
  assert.is(revoked?.actor, "admin-test");
});

it("rotate: the admin's command reaches the kiosk, the kiosk registers a new secret, only the new one works", async () => {
  const k = await enrolled("kiosk-rotating");
  const a = h.address(k.device);
  const client = await h.mqttWithin(h.site, k.device, k.secret);
  const received: Array<{ name: string; id: string }> = [];
  client.on("message", (topic, payload) => {
    if (!topic.startsWith(topics.cmdPrefix(a))) return;
    const command = decode(CommandSchema, payload);
    if (command.ok) received.push({ name: topic.slice(topics.cmdPrefix(a).length), id: command.value.id });
  });
  await client.subscribeAsync(topics.cmdAll(a), { qos: 1 });

  const operator = await h.request("POST", `/api/v1/devices/${h.site}/${k.device}/rotate`, {
    token: await h.token("operator"),
  });
  assert.is(operator.status, 403);
  const asked = await h.request("POST", `/api/v1/devices/${h.site}/${k.device}/rotate`, {
    token: await h.token("admin"),
  });
  assert.is(asked.status, 202, JSON.stringify(asked.body));
  const commandId = String(asked.body.commandId);
  await until(() => received.some((r) => r.id === commandId), "the kiosk receives cmd/rotate-credentials");
  assert.is(received.find((r) => r.id === commandId)?.name, "rotate-credentials");

  // What the kiosk does on that command: a new secret, registered with its current credentials and key.
  const newSecret = "a-brand-new-secret-for-the-kiosk";
  const newHash = await hashSecret(newSecret);
  const username = `${h.site}/${k.device}`;
  const noAuth = await h.request("POST", "/api/v1/enrol/rotate", { body: rotateRequest(k, newHash, h.now()) });
  assert.is(noAuth.status, 401);
  const stranger = await newKiosk(h.site, k.device);
  const forged = await h.request("POST", "/api/v1/enrol/rotate", {
    basic: [username, k.secret],
    body: rotateRequest(stranger, newHash, h.now()),
  });
  assert.is(forged.status, 400);
  assert.is(forged.body.reason, "bad-signature", "a key other than the enrolment key cannot rotate");
  const rotated = await h.request("POST", "/api/v1/enrol/rotate", {
    basic: [username, k.secret],
    body: rotateRequest(k, newHash, h.now()),
  });
  assert.is(rotated.status, 200, JSON.stringify(rotated.body));
  assert.type(rotated.body.rotatedAt, "string");

  await h.mqttWithin(h.site, k.device, newSecret);
  await until(() => h.refuses(h.site, k.device, k.secret), "the old secret is refused");

  const devices = await h.request("GET", `/api/v1/devices?site=${h.site}`, { token: await h.token("admin") });
  const d = (devices.body.items as Array<Record<string, unknown>>).find((i) => i.device === k.device);
  assert.is((d?.enrolment as Record<string, unknown> | undefined)?.rotatedAt, rotated.body.rotatedAt);

  const audit = await h.request("GET", `/api/v1/enrolment/audit?site=${h.site}`, { token: await h.token("admin") });
  const mine = (audit.body.items as Array<Record<string, unknown>>).filter((i) => i.device === k.device);
  assert.ok(mine.some((i) => i.action === "rotate-asked" && String(i.reason).includes(commandId)));
  assert.ok(mine.some((i) => i.action === "rotated" && i.outcome === "ok"));
  assert.ok(mine.some((i) => i.action === "rotated" && i.reason === "bad-signature"));
  const commands = await h.request("GET", `/api/v1/devices/${h.site}/${k.device}/commands`, {
    token: await h.token("admin"),
  });
  assert.ok(
    (commands.body.items as Array<Record<string, unknown>>).some(
      (c) => c.id === commandId && c.requestedBy === "admin-test",
    ),
    "the command is in the command audit with who asked",
  );
});

it("a device registered by hand (no enrolment key) cannot rotate; rotate of an unknown device is 404", async () => {
  const res = await h.request("POST", "/api/v1/enrol/rotate", {
    basic: [`${h.site}/probe`, h.secrets.get("probe")!],
    body: rotateRequest(await newKiosk(h.site, "probe"), await hashSecret("x-new-secret"), h.now()),
  });
  assert.is(res.status, 400);
  assert.is(res.body.reason, "bad-signature");
  const unknown = await h.request("POST", `/api/v1/devices/${h.site}/nobody/rotate`, { token: await h.token("admin") });
  assert.is(unknown.status, 404);
});

it.run();
