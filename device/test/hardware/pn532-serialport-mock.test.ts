/**
 * The PN532 reader on serialport's own stream with the mock binding
 * (SerialPortMock), the simulator behind it: the bytes the driver writes are
 * the manual's frames, a damaged response is NACKed on the wire, and a port
 * that disappears (DisconnectedError) is reopened once it is back.
 */
import type { TapResult } from "@paylane/protocol/kiosk-api";
import { pino } from "pino";
import { SerialPortMock } from "serialport";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { getFirmwareVersion, HSU_WAKEUP, samConfiguration } from "../../src/hardware/pn532/commands.ts";
import { encodeCommand, NACK_FRAME } from "../../src/hardware/pn532/frame.ts";
import { Pn532Reader, type ReaderState } from "../../src/hardware/pn532/pn532-reader.ts";
import { Pn532Simulator } from "../../src/hardware/pn532/simulator.ts";
import { openSerialLink } from "../../src/hardware/serial/serial-link.ts";
import { FakeTimers } from "../fake-timers.ts";
import { type MockPeerLink, mockPortPeer } from "./mock-peer.ts";

const test = suite("pn532 over SerialPortMock");
const PATH = "/dev/ttyS0";
const RESULT: TapResult = { outcome: "welcome", message: "Welcome", at: "2024-05-01T09:00:00.000Z" };

async function flush(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise<void>((r) => setImmediate(r));
}

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(haystack).indexOf(Buffer.from(needle)) >= 0;
}

interface Ctx {
  timers: FakeTimers;
  sim: Pn532Simulator;
  reader: Pn532Reader;
  ports: SerialPortMock[];
  peer: MockPeerLink | undefined;
  taps: string[];
  states: ReaderState[];
}

let ctx: Ctx;

async function run(ms: number, step = 5): Promise<void> {
  await flush();
  for (let t = 0; t < ms; t += step) {
    ctx.timers.advance(step);
    await flush();
  }
}

/** What the host has written to the current port so far. */
function written(): Uint8Array {
  return ctx.ports.at(-1)?.port?.recording ?? new Uint8Array();
}

test.before.each(() => {
  SerialPortMock.binding.reset();
  SerialPortMock.binding.createPort(PATH, { record: true });
  const timers = new FakeTimers();
  const sim = new Pn532Simulator();
  const c: Ctx = { timers, sim, ports: [], peer: undefined, taps: [], states: [], reader: undefined as never };
  c.reader = new Pn532Reader({
    openLink: async () => {
      const port = new SerialPortMock({ path: PATH, baudRate: 115200, autoOpen: false });
      const link = await openSerialLink(port, PATH);
      c.ports.push(port);
      c.peer = mockPortPeer(port);
      sim.start(c.peer);
      return link;
    },
    logger: pino({ level: "silent" }),
    timers,
    reconnectMinMs: 100,
    reconnectMaxMs: 400,
    onStateChange: (s) => c.states.push(s),
  });
  ctx = c;
});

test.after.each(async () => {
  await ctx.reader.stop();
  SerialPortMock.binding.reset();
});

async function start(): Promise<void> {
  await ctx.reader.start(async (uid) => {
    ctx.taps.push(uid);
    return RESULT;
  });
}

test("the driver writes the wake-up, then the manual's frames, and reads a card", async () => {
  await start();
  assert.is(ctx.reader.state, "ok");
  const w = written();
  const expectedStart = Uint8Array.from([...HSU_WAKEUP, ...encodeCommand(samConfiguration())]);
  assert.equal(Array.from(w.subarray(0, expectedStart.length)), Array.from(expectedStart));
  assert.ok(contains(w, encodeCommand(getFirmwareVersion())));
  ctx.sim.placeCard("9A3B5C01");
  await run(100);
  assert.equal(ctx.taps, ["9A3B5C01"]);
});

test("a corrupted response puts a NACK on the wire and the card is still read", async () => {
  await start();
  assert.not.ok(contains(written(), NACK_FRAME));
  ctx.sim.placeCard("045E2A72916C80");
  ctx.sim.corruptNextResponse("dcs");
  await run(100);
  assert.ok(contains(written(), NACK_FRAME), "00 00 FF FF 00 00 went out");
  assert.equal(ctx.taps, ["045E2A72916C80"]);
});

test("the port disappears: disconnected, reopened with backoff when it is back, next card works", async () => {
  await start();
  ctx.sim.placeCard("AAAAAAAA");
  await run(100);
  ctx.sim.removeCard();
  await run(100);

  // The USB adapter is pulled: the path vanishes and the open port reports a disconnect.
  SerialPortMock.binding.reset();
  ctx.peer?.unplug();
  await flush();
  assert.is(ctx.reader.state, "disconnected");
  await run(1500);
  assert.is(ctx.reader.state, "disconnected", "still missing: keeps retrying, stays disconnected");

  SerialPortMock.binding.createPort(PATH, { record: true });
  await run(500);
  assert.is(ctx.reader.state, "ok");
  assert.is(ctx.reader.counters.reconnects, 1);
  ctx.sim.placeCard("BBBBBBBB");
  await run(100);
  assert.equal(ctx.taps, ["AAAAAAAA", "BBBBBBBB"]);
  assert.equal(ctx.states, ["ok", "disconnected", "ok"]);
});

test.run();
