/**
 * The daemon's Peripherals with `reader.type "pcsc"`: a tap on our virtual
 * card behind the real pcscd + vpcd reaches the kiosk's card handler exactly
 * as a PN532 tap does, and the reader's state reaches health() (telemetry,
 * /healthz) through onChange. Real time; waits are on events.
 */
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { parseDeviceConfig } from "../../src/config.ts";
import { PCSCD_MISSING } from "../../src/hardware/pcsc/pcsc-reader.ts";
import { VirtualCard } from "../../src/hardware/pcsc/virtual-card.ts";
import { type PrivatePcscd, privatePcscd } from "./pcscd-harness.ts";
import { KIOSK, type PeripheralsRig, peripheralsFor } from "./peripherals-rig.ts";

const test = suite("Peripherals with a PC/SC reader");
const WAIT_MS = 8000;
const UID = "C0FFEE12";

const base = { ...KIOSK, dataDir: "/tmp/k1" };

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
  rig: PeripheralsRig;
  cards: string[];
  changes: number;
}
const ctx = { cards: [], changes: 0 } as unknown as Ctx;

const notify = () => ctx.rig.signal.notify();
const until = (cond: () => boolean, what: string) => ctx.rig.signal.until(cond, what, WAIT_MS);
/** The reader's state in health() within 2 s. */
const readerWithin = (state: string, what: string) =>
  ctx.rig.healthWithin((h) => h.reader.state === state, `reader ${state} ${what}`);
const reader = () => ctx.rig.peripherals.health().reader;

test.before(async () => {
  ctx.pcscd = await privatePcscd();
  ctx.rig = peripheralsFor("/tmp/k1", { reader: { type: "pcsc", reader: "Virtual 00 00" } });
});

test.after(async () => {
  await ctx.rig.peripherals.stop();
  await ctx.pcscd.dispose();
});

test("started before pcscd: the reader is disconnected with the fix in health, and ready once pcscd runs", async () => {
  await ctx.rig.peripherals.start({
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
  await readerWithin("ok", "within 2 s of pcscd starting");
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
  const self = await ctx.rig.peripherals.selfTest();
  assert.ok(self.peripherals.reader?.ok, self.peripherals.reader?.detail);
  await card.remove();
});

test("pcscd stopped: disconnected in health within 2 s, and back with no restart", async () => {
  // Timed from before the stop; a failure is reported when awaited, not as an unhandled rejection.
  const stopped = readerWithin("disconnected", "within 2 s of pcscd stopping");
  stopped.catch(() => {});
  await ctx.pcscd.stop();
  await stopped;
  await ctx.pcscd.start();
  await readerWithin("ok", "again");
  assert.is(reader().counters.reconnects, 1);
  const card = new VirtualCard({ port: ctx.pcscd.port, uid: UID });
  await card.insert();
  await until(() => ctx.cards.length >= 2, "a tap after pcscd's return");
  await card.remove();
});

test.run();
