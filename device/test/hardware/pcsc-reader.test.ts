/**
 * The PC/SC reader's own rules against a fake binding (the real pcscd is in
 * pcsc-pcscd.test.ts, but vpcd's readers cannot be unplugged while pcscd
 * runs): a USB reader pulled out and plugged back while pcscd stays up,
 * the reader picked by name among several, and a card that arrives during
 * another card's tap waiting its turn.
 */
import { EventEmitter } from "node:events";
import { pino } from "pino";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Signal } from "../../../test/support/signal.ts";
import type { PcscBinding, PcscCardReader, PcscContext } from "../../src/hardware/pcsc/binding.ts";
import { SCARD_STATE } from "../../src/hardware/pcsc/binding.ts";
import { PcscReader } from "../../src/hardware/pcsc/pcsc-reader.ts";
import { FakeTimers } from "../fake-timers.ts";

const test = suite("PC/SC reader rules");
const WAIT_MS = 5000;

class FakeReader extends EventEmitter {
  uid = "04A1B2C3";
  constructor(readonly name: string) {
    super();
  }
  connect(_o: unknown, cb: (err: unknown, protocol: number) => void): void {
    setImmediate(() => cb(null, 2));
  }
  transmit(_d: Buffer, _n: number, _p: number, cb: (err: unknown, r: Buffer) => void): void {
    setImmediate(() => cb(null, Buffer.concat([Buffer.from(this.uid, "hex"), Buffer.of(0x90, 0x00)])));
  }
  disconnect(_d: number, cb: (err: unknown) => void): void {
    cb(null);
  }
  close(): void {}
  /** As the binding does: a first report once its thread runs, then one per change. */
  card(present: boolean): void {
    this.emit("status", { state: present ? SCARD_STATE.PRESENT : SCARD_STATE.EMPTY });
  }
}

class Rig {
  readonly signal = new Signal();
  readonly timers = new FakeTimers();
  readonly contexts: Array<EventEmitter & PcscContext> = [];
  readonly taps: string[] = [];
  /** Resolves the tap in progress (the kiosk's answer). */
  finishTap: (() => void) | undefined;
  holdTaps = false;
  readonly reader: PcscReader;

  constructor(name?: string) {
    const binding: PcscBinding = {
      socketPath: "/run/pcscd/pcscd.comm",
      serviceRunning: async () => true,
      open: async () => {
        const c = Object.assign(new EventEmitter(), { close() {} }) as EventEmitter & PcscContext;
        this.contexts.push(c);
        this.signal.notify();
        return c;
      },
    };
    this.reader = new PcscReader({
      logger: pino({ level: "silent" }),
      timers: this.timers,
      binding,
      reader: name,
      onStateChange: this.signal.notify,
    });
  }

  start(): Promise<void> {
    return this.reader.start(async (uid) => {
      this.taps.push(uid);
      this.signal.notify();
      if (this.holdTaps) await new Promise<void>((resolve) => (this.finishTap = resolve));
      return { outcome: "welcome", message: "Welcome", at: new Date().toISOString() };
    });
  }

  plug(name: string): FakeReader {
    const r = new FakeReader(name);
    this.contexts.at(-1)?.emit("reader", r as unknown as PcscCardReader);
    r.card(false);
    return r;
  }

  until<T>(check: () => T | undefined | false, what: string): Promise<T> {
    return this.signal.until(check, what, WAIT_MS);
  }
}

test("a USB reader pulled out while pcscd runs is disconnected at once, and plugged back it reads again", async () => {
  const rig = new Rig();
  await rig.start();
  const first = rig.plug("ACS ACR122U PICC Interface 00 00");
  await rig.until(() => rig.reader.state === "ok", "ok with the reader attached");
  first.emit("end");
  await rig.until(() => rig.reader.state === "disconnected", "disconnected after the unplug");
  assert.match(rig.reader.reason, /reader "ACS ACR122U PICC Interface 00 00" detached/);
  // A fresh context lists what is there now, after reconnectMinMs (100 ms).
  rig.timers.advance(100);
  await rig.until(() => rig.contexts.length === 2, "a fresh context");
  const back = rig.plug("ACS ACR122U PICC Interface 00 00");
  await rig.until(() => rig.reader.state === "ok", "ok again");
  assert.is(rig.reader.counters.reconnects, 1);
  back.card(true);
  await rig.until(() => rig.taps.length === 1, "a tap on the reader that came back");
  assert.equal(rig.taps, ["04A1B2C3"]);
  await rig.reader.stop();
});

test("with reader set, another reader is left alone and the named one is used", async () => {
  const rig = new Rig("ACR1252");
  await rig.start();
  const other = rig.plug("ACS ACR122U PICC Interface 00 00");
  await new Promise((r) => setImmediate(r));
  assert.is(rig.reader.state, "disconnected");
  assert.is(rig.reader.reason, 'no PC/SC reader named like "ACR1252"');
  other.card(true);
  const mine = rig.plug("ACS ACR1252 1S CL Reader [ACR1252 1S CL Reader(1)] 00 00");
  await rig.until(() => rig.reader.state === "ok", "the named reader attached");
  assert.match(rig.reader.readerName ?? "", /ACR1252/);
  mine.uid = "DEADBEEF";
  mine.card(true);
  await rig.until(() => rig.taps.length === 1, "a tap on the named reader");
  assert.equal(rig.taps, ["DEADBEEF"], "the other reader's card is not read");
  await rig.reader.stop();
});

test("a card arriving during another's tap waits its turn, and one gone before its turn never taps", async () => {
  const rig = new Rig();
  rig.holdTaps = true;
  await rig.start();
  const r = rig.plug("ACS ACR122U PICC Interface 00 00");
  await rig.until(() => rig.reader.state === "ok", "ok");
  r.card(true);
  await rig.until(() => rig.taps.length === 1, "the first tap");
  // The first card leaves and a second arrives while the kiosk is still answering the first.
  r.card(false);
  r.uid = "CAFEF00D";
  r.card(true);
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(rig.taps, ["04A1B2C3"], "no second tap while the first runs");
  rig.finishTap?.();
  await rig.until(() => rig.taps.length === 2, "the waiting card's tap");
  assert.equal(rig.taps, ["04A1B2C3", "CAFEF00D"]);
  // A third card read during the second tap, but taken away before it ends: no tap for it.
  r.card(false);
  r.uid = "0BADCAFE";
  r.card(true);
  await rig.until(() => rig.reader.cardPresent, "the third card present");
  r.card(false);
  rig.finishTap?.();
  await rig.reader.stop();
  assert.equal(rig.taps, ["04A1B2C3", "CAFEF00D"]);
});

test.run();
