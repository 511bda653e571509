/**
 * image build's flags: each bad value refused with one line naming what was
 * expected; what the manifest records says whether a secret was given and
 * never what it is.
 */
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatClaimCode, newClaimCode } from "@paylane/protocol";
import { test } from "uvu";
import * as assert from "uvu/assert";
import {
  claimFlag,
  cloudUrlFlag,
  countryFlag,
  deviceFlag,
  type ImageBuildFlags,
  mqttUrlFlag,
  resolveImageOptions,
  siteFlag,
  timezoneFlag,
} from "../src/image/options.ts";
import { wpaPsk } from "../src/kiosk-image/index.ts";

const dir = mkdtempSync(join(tmpdir(), "paylane-image-options-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const flags = (more: Partial<ImageBuildFlags> = {}): ImageBuildFlags => ({
  base: "raspios.img",
  out: "kiosk.img",
  site: "demo",
  cloudUrl: "https://cloud.example.com",
  mqttUrl: "mqtts://mqtt.example.com",
  ...more,
});

function throwsLine(fn: () => unknown, pattern: RegExp) {
  try {
    fn();
  } catch (err) {
    assert.match((err as Error).message, pattern);
    assert.not.match((err as Error).message, /\n/);
    return;
  }
  assert.unreachable(`expected ${pattern}`);
}

async function rejectsLine(promise: Promise<unknown>, pattern: RegExp) {
  try {
    await promise;
  } catch (err) {
    assert.match((err as Error).message, pattern);
    assert.not.match((err as Error).message, /\n/);
    return;
  }
  assert.unreachable(`expected ${pattern}`);
}

test("each flag's parser refuses a bad value, saying what it expected", () => {
  throwsLine(() => siteFlag("Demo"), /expected a site id/);
  throwsLine(() => siteFlag("cloud"), /expected a site id/);
  assert.is(siteFlag("demo-2"), "demo-2");
  throwsLine(() => deviceFlag("k 1"), /expected a device id/);
  throwsLine(() => cloudUrlFlag("cloud.example.com"), /expected a URL such as https:\/\/cloud\.example\.com/);
  throwsLine(() => cloudUrlFlag("ftp://x"), /expected https:\/\/ or http:\/\//);
  throwsLine(() => cloudUrlFlag("https://admin:pw@cloud.example.com"), /must not carry a user or password/);
  throwsLine(() => mqttUrlFlag("https://mqtt.example.com"), /expected mqtts:\/\/ or mqtt:\/\/ or wss:\/\/ or ws:\/\//);
  throwsLine(() => claimFlag("12345"), /a claim code has 20 digits; this has 5/);
  const code = formatClaimCode(newClaimCode().replace(/-/g, ""));
  assert.is(claimFlag(code.replace(/-/g, " ")), code, "spaces or dashes, the same code");
  const typo = `${code.slice(0, -1)}${(Number(code.at(-1)) + 1) % 10}`;
  throwsLine(() => claimFlag(typo), /typo/);
  throwsLine(() => timezoneFlag("Mars/Olympus"), /expected a time zone such as Europe\/Berlin/);
  assert.is(timezoneFlag("Europe/Berlin"), "Europe/Berlin");
  throwsLine(() => countryFlag("GBR"), /two-letter country code/);
  assert.is(countryFlag("gb"), "GB");
});

test("the cloud URL comes from the flag or PAYLANE_CLOUD_URL; the broker is required", async () => {
  await rejectsLine(resolveImageOptions(flags({ cloudUrl: undefined }), {}), /^--cloud-url is required/);
  const fromEnv = await resolveImageOptions(flags({ cloudUrl: undefined }), { PAYLANE_CLOUD_URL: "https://c.example" });
  assert.is(fromEnv.kiosk.cloudUrl, "https://c.example");
  await rejectsLine(
    resolveImageOptions(flags({ cloudUrl: undefined }), { PAYLANE_CLOUD_URL: "nope" }),
    /^--cloud-url nope:/,
  );
  await rejectsLine(resolveImageOptions(flags({ mqttUrl: undefined }), {}), /^--mqtt-url is required/);
  const lab = await resolveImageOptions(flags({ cloudUrl: "http://127.0.0.1:8080", mqttUrl: "mqtt://127.0.0.1" }), {});
  assert.ok(lab.notes.some((n) => n.includes("without TLS")));
  assert.ok(lab.notes.some((n) => n.includes("127.0.0.1 on the kiosk is the kiosk itself")));
});

test("Wi-Fi needs all three; the password from a file; the manifest says only that there is one", async () => {
  await rejectsLine(resolveImageOptions(flags({ wifiSsid: "Venue" }), {}), /Wi-Fi needs --wifi-ssid, --wifi-password/);
  await rejectsLine(
    resolveImageOptions(flags({ wifiSsid: "V", wifiPassword: "a", wifiPasswordFile: "b", wifiCountry: "GB" }), {}),
    /give one of them/,
  );
  writeFileSync(join(dir, "wifi"), "hunter2hunter2\n");
  const r = await resolveImageOptions(
    flags({ wifiSsid: "Venue", wifiPasswordFile: join(dir, "wifi"), wifiCountry: "GB" }),
    {},
  );
  assert.equal(r.kiosk.wifi, { ssid: "Venue", password: "hunter2hunter2", country: "GB" });
  assert.equal(r.recorded.wifi, { ssid: "Venue", country: "GB", password: true });
  assert.ok(r.secrets.includes("hunter2hunter2"));
  assert.ok(r.secrets.includes(wpaPsk("Venue", "hunter2hunter2")), "the derived PSK is as secret as the passphrase");
  assert.not.match(JSON.stringify(r.recorded), "hunter2");
});

test("a claim code is recorded as given or not, never as itself", async () => {
  const code = formatClaimCode(newClaimCode().replace(/-/g, ""));
  const r = await resolveImageOptions(flags({ claim: code }), {});
  assert.is(r.kiosk.claim, code);
  assert.is(r.recorded.claim, true);
  assert.ok(r.secrets.includes(code) && r.secrets.includes(code.replace(/-/g, "")));
  assert.is((await resolveImageOptions(flags(), {})).recorded.claim, false);
});

test("files named by flags: an SSH public key (not a private one), a CA certificate, hardware JSON", async () => {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const blob = publicKey.export({ format: "der", type: "spki" }).subarray(-32);
  const wire = Buffer.concat([
    Buffer.from([0, 0, 0, 11]),
    Buffer.from("ssh-ed25519"),
    Buffer.from([0, 0, 0, 32]),
    blob,
  ]);
  const pub = `ssh-ed25519 ${wire.toString("base64")} ann@laptop`;
  writeFileSync(join(dir, "id.pub"), `${pub}\n`);
  writeFileSync(join(dir, "id"), privateKey.export({ format: "pem", type: "pkcs8" }));
  writeFileSync(join(dir, "two.pub"), `${pub}\n${pub}\n`);
  const r = await resolveImageOptions(flags({ sshKey: join(dir, "id.pub") }), {});
  assert.is(r.kiosk.sshAuthorizedKey, pub);
  assert.match(String(r.recorded.sshAuthorizedKey), /^ssh-ed25519 SHA256:[A-Za-z0-9+/]{43}$/);
  await rejectsLine(
    resolveImageOptions(flags({ sshKey: join(dir, "id") }), {}),
    /is a private key: give the public one/,
  );
  await rejectsLine(
    resolveImageOptions(flags({ sshKey: join(dir, "two.pub") }), {}),
    /expected one public key line, the file has 2/,
  );

  writeFileSync(join(dir, "ca.pem"), "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n");
  await rejectsLine(
    resolveImageOptions(flags({ ca: join(dir, "ca.pem") }), {}),
    /--ca .*ca\.pem: not a PEM certificate/,
  );

  writeFileSync(join(dir, "hw.json"), '{"reader": {"type": "pn532"');
  await rejectsLine(
    resolveImageOptions(flags({ hardware: join(dir, "hw.json") }), {}),
    /--hardware .*hw\.json: not JSON/,
  );
  writeFileSync(join(dir, "hw.json"), '{"printer": {"type": "escpos", "path": "/dev/usb/lp0"}}');
  const hw = await resolveImageOptions(flags({ hardware: join(dir, "hw.json") }), {});
  assert.equal((hw.recorded.hardware as { sections: string[] }).sections, ["printer"]);
  await rejectsLine(resolveImageOptions(flags({ user: "root" }), {}), /--user root/);
});

test("--update-key: the Ed25519 public key update bundles must be signed with, recorded by its hash", async () => {
  const ed = generateKeyPairSync("ed25519");
  const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 });
  writeFileSync(join(dir, "update.pub"), ed.publicKey.export({ format: "pem", type: "spki" }));
  writeFileSync(join(dir, "update.pem"), ed.privateKey.export({ format: "pem", type: "pkcs8" }));
  writeFileSync(join(dir, "rsa.pub"), rsa.publicKey.export({ format: "pem", type: "spki" }));
  const r = await resolveImageOptions(flags({ updateKey: join(dir, "update.pub") }), {});
  assert.match(r.kiosk.updateSigningKey ?? "", /^-----BEGIN PUBLIC KEY-----/);
  assert.match(JSON.stringify(r.recorded.updateSigningKey), /^\{"sha256":"[0-9a-f]{64}"\}$/);
  await rejectsLine(
    resolveImageOptions(flags({ updateKey: join(dir, "update.pem") }), {}),
    /--update-key .*update\.pem is a private key: give the public one/,
  );
  await rejectsLine(
    resolveImageOptions(flags({ updateKey: join(dir, "rsa.pub") }), {}),
    /--update-key .*rsa\.pub: a rsa key; expected the Ed25519 public key/,
  );
});

test.run();
