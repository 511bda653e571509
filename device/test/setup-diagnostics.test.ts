/**
 * Diagnostics when things are wrong, as a technician sees them: no reader
 * answering, a clock minutes off the cloud's (and NTP not synchronised), a
 * cloud that cannot be reached — each a failed check with one line saying what.
 */
import pino from "pino";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { parseDeviceConfig } from "../src/config.ts";
import { Peripherals } from "../src/peripherals.ts";
import { runDiagnostics } from "../src/setup/diagnostics.ts";
import { realTimers } from "../src/timers.ts";
import { FakeCloud } from "./enrol-fake-cloud.ts";

const it = suite("setup diagnostics");
let cloud: FakeCloud;

it.before(async () => {
  cloud = new FakeCloud();
  await cloud.start();
});
it.after(() => cloud.stop());

function setup(cloudUrl: string, reader: object = { type: "pn532", path: "/dev/ttyNOPE" }) {
  const config = parseDeviceConfig({
    site: "demo",
    device: "k1",
    secret: "0123456789abcdef0123",
    mqttUrl: "mqtt://127.0.0.1:9",
    cloudUrl,
    dataDir: "/tmp/unused",
    reader,
  });
  // Not started: the reader is as a missing one reads.
  const peripherals = new Peripherals({
    config,
    logger: pino({ level: "silent" }),
    timers: realTimers,
    now: () => new Date(),
  });
  return { config, peripherals };
}

it("a missing reader, a clock 5 minutes ahead and NTP not synchronised are each failed, in words", async () => {
  const { config, peripherals } = setup(cloud.url);
  const d = await runDiagnostics({
    config,
    peripherals,
    now: () => new Date(Date.now() + 5 * 60_000),
    ntpSynchronized: async () => false,
  });
  assert.not.ok(d.reader.ok);
  assert.match(d.reader.detail, /no PN532 answers on \/dev\/ttyNOPE: check its cable/);
  assert.ok(d.printer.ok, "no printer configured is not a fault");
  assert.ok(d.cloud.ok, d.cloud.detail);
  assert.not.ok(d.clock.ok);
  assert.match(d.clock.detail, /^(299|300|301) s ahead of the cloud; NTP not synchronised$/);
});

it("a USB reader through pcscd is named as one, with what to check, not as a PN532", async () => {
  const { config, peripherals } = setup(cloud.url, { type: "pcsc", reader: "ACR122U" });
  const d = await runDiagnostics({ config, peripherals, now: () => new Date(), ntpSynchronized: async () => true });
  assert.not.ok(d.reader.ok);
  assert.is(d.reader.detail, 'no PC/SC reader matching "ACR122U": check its USB cable, then pcsc_scan');
});

it("a cloud that cannot be reached is failed, and the clock is then judged by NTP alone", async () => {
  const { config, peripherals } = setup("http://127.0.0.1:9");
  const d = await runDiagnostics({ config, peripherals, now: () => new Date(), ntpSynchronized: async () => true });
  assert.not.ok(d.cloud.ok);
  assert.match(d.cloud.detail, /refused the connection: is the cloud running\?/);
  assert.ok(d.clock.ok);
  assert.match(d.clock.detail, /not compared with the cloud \(unreachable\); NTP synchronised/);
});

it.run();
