/**
 * Credential rotation against the fake cloud: the new secret is kept as
 * `nextSecret` before the cloud is asked, becomes `secret` once it said yes,
 * and a rotation cut off half-way is finished at the next start with
 * whichever secret still signs in.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hashSecret, verifySecret } from "@paylane/protocol";
import pino from "pino";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { parseDeviceConfig } from "../src/config.ts";
import { loadOrCreateDeviceKey } from "../src/setup/device-key.ts";
import { CredentialRotation } from "../src/setup/rotation.ts";
import { FakeCloud } from "./enrol-fake-cloud.ts";

const it = suite("credential rotation");
const OLD = "old-secret-0123456789abcdef";
let cloud: FakeCloud;
let dir: string;

it.before.each(async () => {
  cloud = new FakeCloud();
  await cloud.start();
  dir = await mkdtemp(join(tmpdir(), "paylane-rotate-"));
});
it.after.each(async () => {
  await cloud.stop();
  await rm(dir, { recursive: true, force: true });
});

async function rotation(extra: Record<string, unknown> = {}) {
  const dataDir = join(dir, "data");
  const key = await loadOrCreateDeviceKey(dataDir);
  cloud.enrolled.set("demo/k1", {
    site: "demo",
    device: "k1",
    publicKey: key.publicKey,
    secretHash: await hashSecret(OLD),
    claim: "x",
  });
  const raw = {
    site: "demo",
    device: "k1",
    secret: OLD,
    mqttUrl: "mqtt://127.0.0.1:1883",
    cloudUrl: cloud.url,
    dataDir,
    reader: { type: "pn532-simulator" },
    ...extra,
  };
  const configPath = join(dir, "kiosk.json");
  await writeFile(configPath, JSON.stringify(raw));
  const r = new CredentialRotation({
    configPath,
    config: parseDeviceConfig(raw),
    raw,
    key,
    logger: pino({ level: "silent" }),
    now: () => new Date(),
  });
  return { r, configPath };
}

const hashNow = () => cloud.enrolled.get("demo/k1")!.secretHash;

it("rotate: a new secret is registered with the current credentials, then kept as secret", async () => {
  const { r, configPath } = await rotation();
  const { config } = await r.rotate();
  const file = JSON.parse(await readFile(configPath, "utf8"));
  assert.is(file.secret, config.secret);
  assert.is.not(file.secret, OLD);
  assert.is(file.nextSecret, undefined);
  assert.ok(await verifySecret(file.secret, hashNow()));
  assert.not.ok(await verifySecret(OLD, hashNow()), "the old secret no longer signs in");
  const sent = cloud.requests.find((q) => q.path === "/api/v1/enrol/rotate")!;
  assert.not.ok(JSON.stringify(sent.body).includes(file.secret), "only the hash is sent");
});

it("a lost answer: the kiosk asks again with the new secret, which the cloud took, and keeps it", async () => {
  cloud.dropRotateAnswerNext = 1;
  const { r, configPath } = await rotation();
  const { config } = await r.rotate();
  const file = JSON.parse(await readFile(configPath, "utf8"));
  assert.is(file.secret, config.secret);
  assert.is(file.nextSecret, undefined);
  assert.ok(await verifySecret(file.secret, hashNow()), "the kiosk's secret is the one the cloud holds");
});

it("no cloud at all: the new secret stays as nextSecret, for the next start to finish", async () => {
  const { r, configPath } = await rotation({ cloudUrl: "http://127.0.0.1:9" });
  let message = "";
  await r.rotate().catch((err: Error) => (message = err.message));
  assert.match(message, /no answer from the cloud .* kept as nextSecret/);
  const file = JSON.parse(await readFile(configPath, "utf8"));
  assert.is(file.secret, OLD);
  assert.ok(file.nextSecret);
});

it("a refused rotation keeps the current secret and says why", async () => {
  const { r, configPath } = await rotation({ secret: "a-wrong-secret-0123456789" });
  let message = "";
  await r.rotate().catch((err: Error) => (message = err.message));
  assert.match(message, /did not take the new credentials: the cloud answered 401/);
  const file = JSON.parse(await readFile(configPath, "utf8"));
  assert.is(file.secret, "a-wrong-secret-0123456789");
  assert.is(file.nextSecret, undefined);
});

it("settle: the cloud never heard of the rotation — it is registered now, with the current secret", async () => {
  const next = "next-secret-0123456789abcdef";
  const { r, configPath } = await rotation({ nextSecret: next });
  const config = await r.settle();
  assert.is(config.secret, next);
  assert.is(JSON.parse(await readFile(configPath, "utf8")).nextSecret, undefined);
  assert.ok(await verifySecret(next, hashNow()));
});

it("settle: the cloud took it but the kiosk did not hear — the next secret signs in and is kept", async () => {
  const next = "next-secret-0123456789abcdef";
  const { r } = await rotation({ nextSecret: next });
  cloud.enrolled.get("demo/k1")!.secretHash = await hashSecret(next);
  const config = await r.settle();
  assert.is(config.secret, next);
  assert.is(config.nextSecret, undefined);
});

it.run();
