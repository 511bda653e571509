/** The kiosk config: hardware sections are validated and errors name the field and the expected form. */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { parseDeviceConfig } from "../src/config.ts";

const base = {
  site: "demo",
  device: "k1",
  secret: "0123456789abcdef0123",
  mqttUrl: "mqtt://127.0.0.1:1883",
  cloudUrl: "http://127.0.0.1:8080",
  dataDir: "/tmp/k1",
};

function error(extra: Record<string, unknown>): string {
  try {
    parseDeviceConfig({ ...base, reader: { type: "pn532-simulator" }, ...extra }, "k1.json");
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error("expected the config to be refused");
}

test("defaults: no printer, no GPIO; the simulator only when asked for", () => {
  const c = parseDeviceConfig({ ...base, reader: { type: "pn532-simulator" } });
  assert.equal(c.reader, { type: "pn532-simulator", pollIntervalMs: 20 });
  assert.equal(c.printer, { type: "none" });
  assert.is(c.gpio, undefined);
});

test("the reader has no default: without one the config is refused, naming reader.type and both choices", () => {
  let message = "";
  try {
    parseDeviceConfig(base, "k1.json");
  } catch (err) {
    message = (err as Error).message;
  }
  assert.match(message, /^k1\.json: reader: missing: set reader\.type to "pn532" .* or "pn532-simulator"/);
  assert.not.match(message, /\n/);
});

test("a PN532 on a UART and a USB printer take their defaults", () => {
  const c = parseDeviceConfig({
    ...base,
    reader: { type: "pn532", path: "/dev/serial0" },
    printer: { type: "device-file" },
  });
  assert.equal(c.reader, { type: "pn532", path: "/dev/serial0", baudRate: 115_200, pollIntervalMs: 20 });
  assert.equal(c.printer, { type: "device-file", path: "/dev/usb/lp0", columns: 42, checkinReceipts: true });
});

test("errors name the field and what was expected", () => {
  assert.match(
    error({ reader: { type: "pn532" } }),
    /k1\.json: reader\.path: expected a device path like \/dev\/ttyS0/,
  );
  assert.match(
    error({ reader: { type: "rfid" } }),
    /reader(\.type)?: expected reader\.type "pn532" \(with a path\) or "pn532-simulator"/,
  );
  assert.match(
    error({ printer: { type: "serial", path: "/dev/ttyUSB0", baudRate: "fast" } }),
    /printer\.baudRate: expected a baud rate/,
  );
  assert.match(
    error({ printer: { type: "simulator", columns: 12 } }),
    /printer\.columns: expected at least 24 columns/,
  );
  assert.match(error({ printer: { type: "simulator", paper: "A4" } }), /printer: .*paper/);
  assert.match(
    error({ gpio: { relay: { line: { bcm: 17 }, pulseMs: 5 } } }),
    /gpio\.relay\.pulseMs: expected an integer 100\.\.30000/,
  );
  assert.match(error({ gpio: { led: { line: { pin: 18 } } } }), /gpio\.led\.line: expected \{ bcm: 0\.\.57 \}/);
});

test.run();
