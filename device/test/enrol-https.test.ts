/**
 * Enrolment over HTTPS against the real cloud with a certificate of its own
 * (not in the system's store): trusted through kiosk.json's `cloudCa`, and
 * without it refused as cloud-unreachable with the setting to fix named.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { EnrolmentHarness } from "../../cloud/test/enrolment-harness.ts";
import { parseKioskFile } from "../src/config.ts";
import { loadOrCreateDeviceKey } from "../src/setup/device-key.ts";
import { EnrolClient } from "../src/setup/enrol-client.ts";
import { readCloudCa } from "../src/setup/setup-mode.ts";
import { FakeTimers } from "./fake-timers.ts";

const it = suite("enrolment over HTTPS");
const h = new EnrolmentHarness({ tls: true });
let dir = "";

it.before(async () => {
  await h.start();
  dir = await mkdtemp(join(tmpdir(), "paylane-enrol-https-"));
  await writeFile(join(dir, "cloud-ca.pem"), h.ca!);
});
it.after(async () => {
  await h.stop();
  await rm(dir, { recursive: true, force: true });
});

async function enrol(name: string, withCa: boolean) {
  const [claim] = await h.claims(1);
  const raw = {
    site: h.site,
    mqttUrl: "mqtts://127.0.0.1:8883",
    cloudUrl: h.cloud.url,
    dataDir: join(dir, name),
    reader: { type: "pn532-simulator" },
    ...(withCa ? { cloudCa: join(dir, "cloud-ca.pem") } : {}),
  };
  const configPath = join(dir, `${name}.json`);
  await writeFile(configPath, JSON.stringify(raw));
  const loaded = parseKioskFile(raw);
  if (loaded.enrolled) throw new Error("expected a kiosk to enrol");
  const client = new EnrolClient({
    configPath,
    raw,
    file: loaded.file,
    key: await loadOrCreateDeviceKey(loaded.file.dataDir),
    ca: await readCloudCa(loaded.file),
    logger: pino({ level: "silent" }),
    timers: new FakeTimers(),
    now: () => new Date(),
    maxAttempts: 1,
    addresses: () => ["192.0.2.3"],
  });
  return { outcome: await client.enrol(claim!.code), configPath };
}

it("with cloudCa the kiosk trusts the cloud's certificate and enrols", async () => {
  assert.match(h.cloud.url, /^https:/);
  const { outcome, configPath } = await enrol("trusting", true);
  assert.ok(outcome.ok, JSON.stringify(outcome));
  assert.ok(JSON.parse(await readFile(configPath, "utf8")).secret);
});

it("without it the certificate is not trusted: cloud-unreachable, naming cloudCa", async () => {
  const { outcome } = await enrol("untrusting", false);
  assert.ok(!outcome.ok);
  if (outcome.ok) return;
  assert.is(outcome.failure.reason, "cloud-unreachable");
  assert.match(outcome.failure.message, /TLS certificate is not trusted .*set cloudCa/);
});

it.run();
