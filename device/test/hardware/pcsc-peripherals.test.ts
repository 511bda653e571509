/**
 * The daemon's Peripherals with `reader.type "pcsc"`: a tap on our virtual
 * card behind the real pcscd + vpcd reaches the kiosk's card handler exactly
 * as a PN532 tap does, and the reader's state reaches health() (telemetry,
 * /healthz) through onChange. Real time; waits are on events.
 */
import { pino } from "pino";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { type DeviceConfig, parseDeviceConfig } from "../../src/config.ts";
import { PCSCD_MISSING } from "../../src/hardware/pcsc/pcsc-reader.ts";
import { VirtualCard } from "../../src/hardware/pcsc/virtual-card.ts";
import { Peripherals } from "../../src/peripherals.ts";
import { realTimers } from "../../src/timers.ts";
import { type PrivatePcscd, privatePcscd } from "./pcscd-harness.ts";

const test = suite("Peripherals with a PC/SC reader");
const WAIT_MS = 8000;
const UID = "C0FFEE12";

const base = {
  site: "demo",
  device: "k1",
  secret: "0123456789abcdef0123",
  mqttUrl: "mqtt://127.0.0.1:1883",
  cloudUrl: "http://127.0.0.1:8080",
  dataDir: "/tmp/k1",
};

function configError(reader: unknown): string {
  try {
    parseDeviceConfig({ ...base, reader }, "k1.json");
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error("expected the config to be refused");
}

test("config: reader.type pcsc, optionally with part of the reader's name; a bad name is refused naming the field", () => {
  assert.equal(parseDeviceConfig({ ...base, reader: { type: "pcsc" } }).reader, { type: "pcsc" });
  assert.equal(parseDeviceConfig({ ...base, reader: { type: "pcsc", reader: "ACR122U" } }).reader, {
    type: "pcsc",
    reader: "ACR122U",
  });
  assert.match(
    configError({ type: "pcsc", reader: "" }),
    /k1\.json: reader\.reader: expected part of the reader's name/,
  );
  assert.match(configError({ type: "pcsc", path: "/dev/ttyUSB0" }), /reader.*path/);
  assert.match(configError({ type: "acr122" }), /"pcsc" \(a USB reader through pcscd\)/);
});

interface Ctx {
  pcscd: PrivatePcscd;
  peripherals: Peripherals;
  cards: string[];
  changes: number;
  waiters: (() => void)[];
}
const ctx = { cards: [], changes: 0, waiters: [] } as unknown as Ctx;

function notify(): void {
  setImmediate(() => {
    for (const w of ctx.waiters.splice(0)) w();
  });
}

function until(cond: () => boolean, what: string, ms = WAIT_MS): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () =>
        reject(new Error(`${what}: not within ${ms} ms; health ${JSON.stringify(ctx.peripherals.health().reader)}`)),
      ms,
    );
    const check = () => {
      if (cond()) {
        clearTimeout(timer);
        resolve();
      } else ctx.waiters.push(check);
    };
    check();
  });
}

const reader = () => ctx.peripherals.health().reader;

test.before(async () => {
  ctx.pcscd = await privatePcscd();
  const config: DeviceConfig = parseDeviceConfig({ ...base, reader: { type: "pcsc", reader: "Virtual 00 00" } });
  ctx.peripherals = new Peripherals({
    config,
    logger: pino({ level: "silent" }),
    timers: realTimers,
    now: () => new Date(),
  });
});

test.after(async () => {
  await ctx.peripherals.stop();
  await ctx.pcscd.dispose();
});

test("started before pcscd: the reader is disconnected with the fix in health, and ready once pcscd runs", async () => {
  await ctx.peripherals.start({
    onCard: async (uid) => {
      ctx.cards.push(uid);
      notify();
      return { outcome: "welcome", message: "Welcome", at: new Date().toISOString() };
    },
    onCallStaff: () => {},
    onChange: () => {
      ctx.changes++;
      notify();
    },
    onPaper: () => {},
  });
  assert.equal(
    { driver: reader().driver, state: reader().state, reason: reader().reason },
    { driver: "pcsc", state: "disconnected", reason: PCSCD_MISSING },
  );
  const changes = ctx.changes;
  await ctx.pcscd.start();
  const started = Date.now();
  await until(() => reader().state === "ok", "reader ok");
  assert.ok(Date.now() - started < 2000, "ready in health within 2 s of pcscd starting");
  assert.ok(ctx.changes > changes, "onChange told the daemon");
  assert.is(reader().name, ctx.pcscd.readerName);
  assert.is(reader().reason, undefined);
});

test("a tap on the card reaches the kiosk's card handler once, with its UID, as a PN532 tap does", async () => {
  const card = new VirtualCard({ port: ctx.pcscd.port, uid: UID });
  await card.insert();
  await until(() => ctx.cards.length >= 1, "a tap");
  assert.equal(ctx.cards, [UID]);
  assert.is(reader().counters.reads, 1);
  const self = await ctx.peripherals.selfTest();
  assert.ok(self.peripherals.reader?.ok, self.peripherals.reader?.detail);
  await card.remove();
});

test("pcscd stopped: disconnected in health within 2 s, and back with no restart", async () => {
  const stopped = Date.now();
  await ctx.pcscd.stop();
  await until(() => reader().state === "disconnected", "reader disconnected", 2000);
  assert.ok(Date.now() - stopped < 2000);
  await ctx.pcscd.start();
  await until(() => reader().state === "ok", "reader ok again", 2000);
  assert.is(reader().counters.reconnects, 1);
  const card = new VirtualCard({ port: ctx.pcscd.port, uid: UID });
  await card.insert();
  await until(() => ctx.cards.length >= 2, "a tap after pcscd's return");
  await card.remove();
});

test.run();
