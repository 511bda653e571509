/**
 * The PN532 reader and simulator through a real pty pair (socat), both ends
 * opened with serialport exactly as on a Pi: the reader on the device path,
 * the simulator on the peer path. Real time; every wait is on an event,
 * bounded by a timeout that only fails the test.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TapResult } from "@paylane/protocol/kiosk-api";
import { pino } from "pino";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Pn532Reader, type ReaderState } from "../../src/hardware/pn532/pn532-reader.ts";
import { Pn532Simulator } from "../../src/hardware/pn532/simulator.ts";
import { openPtyPair, type PtyPair } from "../../src/hardware/serial/pty-pair.ts";
import { openSerialPort, type SerialLink } from "../../src/hardware/serial/serial-link.ts";

const test = suite("pn532 through a pty");
const WAIT_MS = 5000;
const RESULT: TapResult = { outcome: "welcome", message: "Welcome", at: "2024-05-01T09:00:00.000Z" };

interface Ctx {
  dir: string;
  devicePath: string;
  peerPath: string;
  pair: PtyPair | undefined;
  simLink: SerialLink | undefined;
  sim: Pn532Simulator;
  reader: Pn532Reader;
  taps: string[];
  waiters: (() => void)[];
}
const ctx = {} as Ctx;

/** Wakes every waiter; each re-checks its own condition. */
function notify(): void {
  for (const w of ctx.waiters.splice(0)) w();
}

/** Resolves once `cond()` holds, checked on every reader event; fails after WAIT_MS. */
function until(cond: () => boolean, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: not within ${WAIT_MS} ms`)), WAIT_MS);
    const check = () => {
      if (cond()) {
        clearTimeout(timer);
        resolve();
      } else ctx.waiters.push(check);
    };
    check();
  });
}

const state = (s: ReaderState) => until(() => ctx.reader.state === s, `reader ${s}`);
const taps = (n: number) => until(() => ctx.taps.length >= n, `${n} tap(s)`);

async function attachSimulator(): Promise<void> {
  ctx.simLink = await openSerialPort(ctx.peerPath);
  ctx.sim.start(ctx.simLink);
}

async function detachSimulator(): Promise<void> {
  ctx.sim.stop();
  await ctx.simLink?.close();
  ctx.simLink = undefined;
}

test.before(async () => {
  ctx.dir = await mkdtemp(join(tmpdir(), "paylane-pn532-pty-"));
  ctx.devicePath = join(ctx.dir, "ttyPN532");
  ctx.peerPath = join(ctx.dir, "pn532-sim");
  ctx.pair = await openPtyPair({ devicePath: ctx.devicePath, peerPath: ctx.peerPath });
  ctx.sim = new Pn532Simulator();
  ctx.taps = [];
  ctx.waiters = [];
  await attachSimulator();
  ctx.reader = new Pn532Reader({
    openLink: () => openSerialPort(ctx.devicePath),
    logger: pino({ level: "silent" }),
    pollIntervalMs: 20,
    ackTimeoutMs: 50,
    responseTimeoutMs: 200,
    reinitAfterTimeouts: 2,
    reconnectMinMs: 50,
    reconnectMaxMs: 400,
    onStateChange: notify,
  });
});

test.after(async () => {
  await ctx.reader?.stop();
  await detachSimulator();
  await ctx.pair?.close();
  await rm(ctx.dir, { recursive: true, force: true });
});

test("the reader opens the device path, initialises the simulated PN532 and reads a card", async () => {
  await ctx.reader.start(async (uid) => {
    ctx.taps.push(uid);
    notify();
    return RESULT;
  });
  await state("ok");
  assert.equal(ctx.reader.firmware, { ic: 0x32, ver: 1, rev: 6, support: 7 });
  ctx.sim.placeCard("045E2A72916C80");
  await taps(1);
  assert.equal(ctx.taps, ["045E2A72916C80"]);
  const self = await ctx.reader.selfTest();
  assert.ok(self.ok, self.detail);
});

test("the simulator's port closes and reopens mid-run: the reader re-initialises, the next card works", async () => {
  ctx.sim.removeCard();
  await detachSimulator();
  await state("degraded");
  // Reopened, the simulated chip powers up asleep again: only a fresh wake-up brings it back.
  await attachSimulator();
  await state("ok");
  assert.ok(ctx.reader.counters.reinits >= 1);
  ctx.sim.placeCard("9A3B5C01");
  await taps(2);
  assert.equal(ctx.taps, ["045E2A72916C80", "9A3B5C01"]);
});

test("the device disappears and returns at the same path: disconnected, then ok, the next card works", async () => {
  ctx.sim.removeCard();
  await detachSimulator();
  await ctx.pair?.close();
  await state("disconnected");

  ctx.pair = await openPtyPair({ devicePath: ctx.devicePath, peerPath: ctx.peerPath });
  await attachSimulator();
  await state("ok");
  assert.ok(ctx.reader.counters.reconnects >= 1);
  ctx.sim.placeCard("DEADBEEF");
  await taps(3);
  assert.equal(ctx.taps, ["045E2A72916C80", "9A3B5C01", "DEADBEEF"]);
});

test.run();
