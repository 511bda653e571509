/** kiosk.json before and after enrolment: which files start setup mode, and the errors for ones that cannot run. */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { parseKioskFile } from "../src/config.ts";

const base = {
  site: "demo",
  mqttUrl: "mqtts://broker.example:8883",
  cloudUrl: "https://cloud.example",
  dataDir: "/var/lib/paylane",
  reader: { type: "pn532-simulator" },
};

function error(json: unknown): string {
  try {
    parseKioskFile(json, "kiosk.json");
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error("expected kiosk.json to be refused");
}

test("no secret: setup mode, with the claim and the CA kept for the enrolment", () => {
  const loaded = parseKioskFile({ ...base, claim: "12345-67890-12345-67890", cloudCa: "/etc/paylane/ca.pem" });
  assert.is(loaded.enrolled, false);
  if (loaded.enrolled) return;
  assert.is(loaded.file.device, undefined);
  assert.is(loaded.file.claim, "12345-67890-12345-67890");
  assert.is(loaded.file.cloudCa, "/etc/paylane/ca.pem");
});

test("secret and device: the daemon's config, every default filled in", () => {
  const loaded = parseKioskFile({ ...base, device: "k1", secret: "0123456789abcdef0123" });
  assert.ok(loaded.enrolled);
  if (!loaded.enrolled) return;
  assert.is(loaded.config.device, "k1");
  assert.is(loaded.config.http.port, 8081);
});

test("a secret without a device is refused in one line that says what to do", () => {
  const message = error({ ...base, secret: "0123456789abcdef0123" });
  assert.match(message, /^kiosk\.json: device: missing: a kiosk with a secret needs its device id/);
  assert.not.match(message, /\n/);
});

test("before enrolment too, a misspelled key is refused, never ignored", () => {
  assert.match(error({ ...base, claimCode: "12345" }), /claimCode/);
});

test("a short nextSecret is refused like a short secret", () => {
  assert.match(
    error({ ...base, device: "k1", secret: "0123456789abcdef0123", nextSecret: "short" }),
    /nextSecret: expected at least 16 characters/,
  );
});

test.run();
