/**
 * The kiosk's enrolment client against a small fake cloud on a real HTTP
 * server: kiosk.json rewritten with its identity, the cloud's refusals
 * mapped to what the setup screen says (never retried), network failures
 * retried with backoff on injected timers, a lost answer retried with the
 * same key and secret (also after a crash), plain http:// to a remote host
 * refused before anything is sent, and the claim code in no log line.
 */
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatClaimCode, newClaimCode, verifySecret } from "@paylane/protocol";
import pino from "pino";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { parseKioskFile } from "../src/config.ts";
import { loadOrCreateDeviceKey } from "../src/setup/device-key.ts";
import { EnrolClient, type EnrolClientOptions, type EnrolProgress, PENDING_FILE } from "../src/setup/enrol-client.ts";
import { FakeCloud } from "./enrol-fake-cloud.ts";
import { FakeTimers } from "./fake-timers.ts";

const it = suite("enrol client");
const CODE = newClaimCode();
const DIGITS = CODE.replaceAll("-", "");

let cloud: FakeCloud;
let dir: string;
let logs: string[];

it.before.each(async () => {
  cloud = new FakeCloud();
  await cloud.start();
  cloud.claims.set(DIGITS, "demo");
  dir = await mkdtemp(join(tmpdir(), "paylane-enrol-"));
  logs = [];
});
it.after.each(async () => {
  await cloud.stop();
  await rm(dir, { recursive: true, force: true });
  for (const line of logs) {
    assert.not.ok(line.includes(DIGITS) || line.includes(CODE), `the claim code in a log line: ${line}`);
  }
});

const logger = () =>
  pino({ level: "trace" }, { write: (line: string) => void logs.push(line) } as unknown as NodeJS.WritableStream);

async function client(over: Record<string, unknown> = {}, o: Partial<EnrolClientOptions> = {}) {
  const raw = {
    site: "demo",
    mqttUrl: "mqtt://127.0.0.1:1883",
    cloudUrl: cloud.url,
    dataDir: join(dir, "data"),
    reader: { type: "pn532-simulator" },
    claim: CODE,
    ...over,
  };
  const configPath = join(dir, "kiosk.json");
  await writeFile(configPath, JSON.stringify(raw));
  const loaded = parseKioskFile(raw);
  if (loaded.enrolled) throw new Error("expected an unenrolled kiosk.json");
  const progress: EnrolProgress[] = [];
  const timers = new FakeTimers(new Date());
  const c = new EnrolClient({
    configPath,
    raw,
    file: loaded.file,
    key: await loadOrCreateDeviceKey(loaded.file.dataDir),
    logger: logger(),
    timers,
    now: () => new Date(),
    onProgress: (p) => progress.push(p),
    addresses: () => ["192.0.2.10"],
    ...o,
  });
  return { c, configPath, progress, timers };
}

/** Polls `cond` (real time, bounded): the client's HTTP requests are real. */
async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

it("enrols: kiosk.json gains secret and device (0600) and loses the claim; the key stays on the kiosk", async () => {
  const { c, configPath, progress } = await client();
  const outcome = await c.enrol(CODE);
  assert.ok(outcome.ok, JSON.stringify(outcome));
  const written = JSON.parse(await readFile(configPath, "utf8"));
  assert.is(written.claim, undefined);
  assert.match(written.device, /^kiosk-[0-9a-f]{8}$/);
  assert.ok(written.secret.length >= 32);
  assert.is((await stat(configPath)).mode & 0o777, 0o600);
  assert.is((await stat(join(dir, "data", "device-key.pem"))).mode & 0o777, 0o600);
  const [sent] = cloud.enrolRequests;
  assert.ok(await verifySecret(written.secret, sent!.secretHash), "the hash sent is of the secret kept");
  assert.not.ok(JSON.stringify(cloud.requests).includes(written.secret), "the secret never crossed the network");
  assert.not.ok(JSON.stringify(sent).includes("PRIVATE"), "no private key was sent");
  assert.equal(
    progress.map((p) => p.state),
    ["enrolling", "enrolling", "enrolled"],
  );
  const pending = await readFile(join(dir, "data", PENDING_FILE)).then(
    () => "kept",
    () => "gone",
  );
  assert.is(pending, "gone", "the pending secret is removed once enrolled");
});

it("a device id in kiosk.json is the one enrolled", async () => {
  const { c } = await client({ device: "front-door" });
  const outcome = await c.enrol(CODE);
  assert.ok(outcome.ok);
  assert.is(cloud.enrolRequests[0]!.device, "front-door");
});

for (const reason of ["claim-used", "claim-expired", "claim-other-site", "clock-skew"] as const) {
  it(`a refusal (${reason}) is failed with the reason, a message and a fix, and never retried`, async () => {
    cloud.refuse = reason;
    const { c, configPath, timers } = await client();
    const outcome = await c.enrol(CODE);
    assert.not.ok(outcome.ok);
    if (outcome.ok) return;
    assert.is(outcome.failure.reason, reason);
    assert.ok(outcome.failure.message.length > 5 && outcome.failure.fix.length > 5);
    assert.is(cloud.enrolRequests.length, 1);
    assert.is(timers.pending, 0, "no retry scheduled");
    assert.ok(JSON.parse(await readFile(configPath, "utf8")).claim, "kiosk.json unchanged");
  });
}

it("a code with a typo is refused on the kiosk, before anything is sent", async () => {
  const { c } = await client();
  const typo = `${CODE.slice(0, -1)}${(Number(CODE.at(-1)) + 1) % 10}`;
  const outcome = await c.enrol(typo);
  assert.ok(!outcome.ok && outcome.failure.reason === "invalid-code");
  assert.is(cloud.requests.length, 0);
});

it("a cloud that fails (503) is asked again after a backoff, on the injected timers", async () => {
  cloud.failNext = 2;
  const { c, progress, timers } = await client({}, { retryMinMs: 1000, retryMaxMs: 8000 });
  const done = c.enrol(CODE);
  await until(() => timers.pending === 1, "the first backoff");
  const failed = progress.at(-1)!;
  assert.is(failed.state, "failed");
  assert.is(failed.failure?.reason, "cloud-error");
  assert.match(failed.failure!.message, /trying again in 1 s/);
  timers.advance(999);
  assert.is(cloud.enrolRequests.length + cloud.failNext, 2, "not asked again before the backoff");
  timers.advance(1);
  await until(() => timers.pending === 1 && cloud.failNext === 0, "the second backoff");
  timers.advance(2000);
  const outcome = await done;
  assert.ok(outcome.ok);
});

it("a cloud that is not there is cloud-unreachable, and retried until it is", async () => {
  const { c, progress, timers } = await client({ cloudUrl: "http://127.0.0.1:9" }, { maxAttempts: 2 });
  const done = c.enrol(CODE);
  await until(() => timers.pending === 1, "the backoff");
  assert.is(progress.at(-1)!.failure?.reason, "cloud-unreachable");
  timers.advance(1000);
  const outcome = await done;
  assert.ok(!outcome.ok && outcome.failure.reason === "cloud-unreachable");
});

it("no network interface with an address is no-network", async () => {
  const { c } = await client({ cloudUrl: "https://cloud.example" }, { maxAttempts: 1, addresses: () => [] });
  const outcome = await c.enrol(CODE);
  assert.ok(!outcome.ok && outcome.failure.reason === "no-network");
  assert.match(outcome.failure.fix, /network cable|Wi-Fi/);
});

it("a lost answer is retried with the same key and secret, and the cloud's same answer enrols", async () => {
  cloud.dropAnswerNext = 1;
  const { c, timers, configPath } = await client();
  const done = c.enrol(CODE);
  await until(() => timers.pending === 1, "the backoff after the lost answer");
  timers.advance(1000);
  const outcome = await done;
  assert.ok(outcome.ok, JSON.stringify(outcome));
  const [first, second] = cloud.enrolRequests;
  assert.is(first!.publicKey, second!.publicKey);
  assert.is(first!.secretHash, second!.secretHash);
  const secret = JSON.parse(await readFile(configPath, "utf8")).secret;
  assert.ok(await verifySecret(secret, cloud.enrolled.get(`demo/${second!.device}`)!.secretHash));
});

it("a kiosk that crashed mid-enrolment presents the same key and secret after its restart", async () => {
  cloud.dropAnswerNext = 1;
  const first = await client({}, { maxAttempts: 1 });
  const lost = await first.c.enrol(CODE);
  assert.not.ok(lost.ok);
  // A new process: a new client on the same data folder.
  const again = await client();
  const outcome = await again.c.enrol(formatClaimCode(DIGITS));
  assert.ok(outcome.ok, JSON.stringify(outcome));
  const [a, b] = cloud.enrolRequests;
  assert.is(a!.secretHash, b!.secretHash);
  assert.is(a!.publicKey, b!.publicKey);
});

it("plain http:// to a host that is not loopback is refused before anything is sent", async () => {
  const { c } = await client({ cloudUrl: "http://cloud.example.com" });
  const outcome = await c.enrol(CODE);
  assert.ok(!outcome.ok);
  if (outcome.ok) return;
  assert.is(outcome.failure.reason, "cloud-unreachable");
  assert.match(outcome.failure.message, /must not cross a network in clear; use https:\/\//);
  assert.is(cloud.requests.length, 0);
});

it.run();
