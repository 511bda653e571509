/**
 * The PN532 reader driving the PN532 simulator over an in-memory serial link,
 * on fake timers: taps trigger once per presence, damaged frames are NACKed,
 * a mute chip is re-initialised, an unplugged port comes back with backoff.
 */
import type { TapResult } from "@paylane/protocol/kiosk-api";
import { pino } from "pino";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Pn532Reader, type Pn532ReaderOptions, type ReaderState } from "../../src/hardware/pn532/pn532-reader.ts";
import { Pn532Simulator } from "../../src/hardware/pn532/simulator.ts";
import { createLinkPair, type LinkPair } from "../../src/hardware/serial/link-pair.ts";
import { FakeTimers } from "../fake-timers.ts";

const test = suite("pn532 reader");

const RESULT: TapResult = { outcome: "welcome", message: "Welcome", at: "2024-05-01T09:00:00.000Z" };

/** Lets queued I/O (microtasks, nextTicks) run; no wall-clock time passes on the fake clock. */
async function flush(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise<void>((r) => setImmediate(r));
}

class Rig {
  readonly timers = new FakeTimers();
  readonly sim = new Pn532Simulator();
  readonly taps: string[] = [];
  readonly states: ReaderState[] = [];
  readonly opens: number[] = [];
  plugged = true;
  pair: LinkPair | undefined;
  readonly reader: Pn532Reader;

  constructor(opts: Partial<Pn532ReaderOptions> = {}) {
    this.reader = new Pn532Reader({
      openLink: async () => {
        this.opens.push(this.timers.now().getTime());
        if (!this.plugged) throw new Error("cannot open serial port /dev/ttyS0: No such file or directory");
        this.pair = createLinkPair("/dev/ttyS0");
        this.sim.start(this.pair.device);
        return this.pair.host;
      },
      logger: pino({ level: "silent" }),
      timers: this.timers,
      onStateChange: (s) => this.states.push(s),
      ...opts,
    });
  }

  handler = async (uid: string): Promise<TapResult> => {
    this.taps.push(uid);
    return RESULT;
  };

  async start(): Promise<void> {
    await this.reader.start(this.handler);
  }

  /** Advances the fake clock in small steps, letting I/O settle between them. */
  async run(ms: number, step = 5): Promise<void> {
    await flush();
    for (let t = 0; t < ms; t += step) {
      this.timers.advance(step);
      await flush();
    }
  }
}

let rigs: Rig[] = [];
function rig(opts: Partial<Pn532ReaderOptions> = {}): Rig {
  const r = new Rig(opts);
  rigs.push(r);
  return r;
}

test.after.each(async () => {
  for (const r of rigs.splice(0)) await r.reader.stop();
  rigs = [];
});

test("start wakes the chip, configures it, reads its firmware and goes ok", async () => {
  const r = rig();
  await r.start();
  assert.is(r.reader.state, "ok");
  assert.equal(r.reader.firmware, { ic: 0x32, ver: 1, rev: 6, support: 7 });
  const s = r.sim.stats;
  assert.is(s.wakeUps, 1, "the HSU wake-up preamble woke the chip");
  assert.is(s.commands["14"], 1, "SAMConfiguration");
  assert.is(s.commands["32"], 1, "RFConfiguration MaxRetries");
  assert.is(s.commands["02"], 1, "GetFirmwareVersion");
  const self = await r.reader.selfTest();
  assert.ok(self.ok);
  assert.match(self.detail, /IC 0x32 firmware 1\.6/);
});

test("a card held on the reader triggers once; it must leave the field before it triggers again", async () => {
  const r = rig();
  await r.start();
  r.sim.placeCard("9A3B5C01");
  await r.run(1000);
  assert.equal(r.taps, ["9A3B5C01"], "held for a second: one tap");
  assert.ok((r.sim.stats.commands["52"] ?? 0) >= 1, "InRelease after reading");

  r.sim.removeCard();
  await r.run(100);
  r.sim.placeCard("9A3B5C01");
  await r.run(100);
  assert.equal(r.taps, ["9A3B5C01", "9A3B5C01"], "left and came back: a second tap");
});

test("4- and 7-byte UIDs are reported as upper-case hex; a different card triggers at once", async () => {
  const r = rig();
  await r.start();
  r.sim.placeCard("04:5e:2a:72:91:6c:80");
  await r.run(100);
  r.sim.removeCard();
  r.sim.placeCard("de ad be ef");
  await r.run(100);
  assert.equal(r.taps, ["045E2A72916C80", "DEADBEEF"]);
});

test("a placed card is read within one poll interval: the exchange itself needs no waiting", async () => {
  const r = rig({ pollIntervalMs: 50 });
  await r.start();
  r.sim.placeCard("9A3B5C01");
  r.timers.advance(50);
  await flush();
  assert.equal(r.taps, ["9A3B5C01"]);
});

test("a UID whose bytes look like a frame header (00 FF LEN LCS) is read within one poll, no timeout lost", async () => {
  // 00 FF 10 F0 inside the response claims a 16-byte frame that never comes: the decoder must not wait for it.
  const r = rig({ pollIntervalMs: 50 });
  await r.start();
  r.sim.placeCard("0400FF10F0AB12");
  r.timers.advance(50);
  await flush();
  assert.equal(r.taps, ["0400FF10F0AB12"]);
  assert.is(r.reader.counters.timeouts, 0);
});

test("one tap at a time: a card that arrives while the handler is busy triggers when it is done", async () => {
  const r = rig();
  let release: (() => void) | undefined;
  await r.reader.start((uid) => {
    r.taps.push(uid);
    return new Promise<TapResult>((resolve) => {
      release = () => resolve(RESULT);
    });
  });
  r.sim.placeCard("AAAAAAAA");
  await r.run(100);
  r.sim.removeCard();
  r.sim.placeCard("BBBBBBBB");
  await r.run(200);
  assert.equal(r.taps, ["AAAAAAAA"], "B waits for A's tap to finish");
  release?.();
  await r.run(100);
  assert.equal(r.taps, ["AAAAAAAA", "BBBBBBBB"]);
});

test("a handler that fails does not stop the reader", async () => {
  const r = rig();
  await r.reader.start(async (uid) => {
    r.taps.push(uid);
    throw new Error("database down");
  });
  r.sim.placeCard("AAAAAAAA");
  await r.run(100);
  r.sim.removeCard();
  await r.run(100);
  r.sim.placeCard("BBBBBBBB");
  await r.run(100);
  assert.equal(r.taps, ["AAAAAAAA", "BBBBBBBB"]);
  assert.is(r.reader.state, "ok");
});

for (const how of ["dcs", "lcs"] as const) {
  test(`a response with a bad ${how.toUpperCase()} is NACKed and the retransmission is used`, async () => {
    const r = rig();
    await r.start();
    r.sim.placeCard("9A3B5C01");
    r.sim.corruptNextResponse(how);
    await r.run(100);
    assert.equal(r.taps, ["9A3B5C01"]);
    const c = r.reader.counters;
    assert.is(c.nacksSent, 1);
    assert.is(c.discarded[how], 1);
    assert.is(c.timeouts, 0, "recovered without waiting for a timeout");
    assert.is(r.sim.stats.retransmissions, 1);
    assert.is(r.reader.state, "ok");
  });
}

test("a truncated response is discarded when the line goes quiet, NACKed, and recovered", async () => {
  const r = rig();
  await r.start();
  r.sim.placeCard("045E2A72916C80");
  r.sim.corruptNextResponse("truncate");
  await r.run(1000); // the response timeout (300 ms) tells a truncated frame from a slow one
  assert.equal(r.taps, ["045E2A72916C80"]);
  const c = r.reader.counters;
  assert.is(c.discarded.truncated, 1);
  assert.is(c.nacksSent, 1);
  assert.is(r.sim.stats.retransmissions, 1);
});

test("garbage between frames is counted and skipped, without NACKs", async () => {
  const r = rig();
  await r.start();
  r.sim.injectGarbage(Uint8Array.of(0x13, 0x37, 0x55, 0xaa));
  r.sim.placeCard("9A3B5C01");
  await r.run(100);
  assert.equal(r.taps, ["9A3B5C01"]);
  assert.is(r.reader.counters.discarded.garbage, 4);
  assert.is(r.reader.counters.nacksSent, 0);
});

test("a chip that stops answering: degraded, re-initialised, back to ok, and the next card works", async () => {
  const r = rig({ reinitAfterTimeouts: 3, reconnectMinMs: 100, reconnectMaxMs: 1000 });
  await r.start();
  const samBefore = r.sim.stats.commands["14"] ?? 0;
  r.sim.setSilent(true);
  await r.run(2000);
  assert.is(r.reader.state, "degraded");
  const c = r.reader.counters;
  assert.ok(c.timeouts >= 3, `timeouts: ${c.timeouts}`);
  assert.is(c.reinits, 1, "re-initialised once; further attempts back off while it stays mute");
  assert.ok(r.opens.length >= 2, "a port that never answers re-initialisation is reopened");

  r.sim.setSilent(false);
  await r.run(1500);
  assert.is(r.reader.state, "ok");
  assert.ok((r.sim.stats.commands["14"] ?? 0) > samBefore, "SAMConfiguration was sent again");
  assert.equal(r.states, ["ok", "degraded", "ok"]);
  r.sim.placeCard("9A3B5C01");
  await r.run(100);
  assert.equal(r.taps, ["9A3B5C01"]);
});

test("unplugged: disconnected at once, reopened with exponential backoff, the next card works", async () => {
  const r = rig({ pollIntervalMs: 50, reconnectMinMs: 100, reconnectMaxMs: 800 });
  await r.start();
  r.sim.placeCard("AAAAAAAA");
  await r.run(100);
  r.sim.removeCard();
  await r.run(100);

  r.plugged = false;
  r.pair?.unplug();
  await flush();
  assert.is(r.reader.state, "disconnected");
  const before = r.opens.length;
  await r.run(4000);
  const attempts = r.opens.slice(before);
  const gaps = attempts.slice(1).map((t, i) => t - (attempts[i] ?? 0));
  assert.equal(gaps.slice(0, 4), [100, 200, 400, 800], "delays double up to the maximum");
  assert.ok(
    gaps.slice(4).every((g) => g === 800),
    `then stay at the maximum: ${gaps}`,
  );

  r.plugged = true;
  await r.run(1000);
  assert.is(r.reader.state, "ok");
  assert.is(r.reader.counters.reconnects, 1);
  assert.is(r.sim.stats.wakeUps, 2, "the replugged chip powered up asleep and was woken again");
  r.sim.placeCard("BBBBBBBB");
  await r.run(100);
  assert.equal(r.taps, ["AAAAAAAA", "BBBBBBBB"]);
  assert.equal(r.states, ["ok", "disconnected", "ok"]);
});

test("a reader missing at start: start resolves disconnected, and it connects when it appears", async () => {
  const r = rig({ reconnectMinMs: 100 });
  r.plugged = false;
  await r.start();
  assert.is(r.reader.state, "disconnected");
  assert.equal(await r.reader.selfTest(), { ok: false, detail: "PN532 disconnected: serial port not open" });
  r.plugged = true;
  await r.run(500);
  assert.is(r.reader.state, "ok");
});

test("stop clears every timer, closes the port and reports no more cards", async () => {
  const r = rig();
  await r.start();
  await r.run(200);
  await r.reader.stop();
  assert.is(r.timers.pending, 0, "no timer outlives stop()");
  assert.is(r.reader.state, "disconnected");
  assert.not.ok(r.sim.attached, "the port was closed, so the simulator lost its link");
  r.sim.placeCard("9A3B5C01");
  await r.run(200);
  assert.equal(r.taps, []);
});

test("stop while the chip is mute does not wait for timeouts", async () => {
  const r = rig();
  await r.start();
  r.sim.setSilent(true);
  await r.run(60);
  await r.reader.stop();
  assert.is(r.timers.pending, 0);
});

test("bad options are refused with the option named", () => {
  const make = (o: Partial<Pn532ReaderOptions>) =>
    new Pn532Reader({ openLink: async () => createLinkPair().host, logger: pino({ level: "silent" }), ...o });
  assert.throws(() => make({ pollIntervalMs: 0 }), /pollIntervalMs must be a positive number/);
  assert.throws(() => make({ retries: -1 }), /retries must be a whole number/);
});

test.run();
