/**
 * ZVT End-of-Day (06 50): the bytes the driver sends and the single totals
 * (BMP 60) it reads, byte for byte; then the driver against the simulated
 * terminal over TCP (the batch it closes is the charges approved since the
 * last one) and against a scripted terminal that refuses or falls silent.
 * Fake timers, event-driven waits, no PAN or password in the logs.
 */
import { createServer, type Socket } from "node:net";
import { Writable } from "node:stream";
import { pino } from "pino";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { findPans } from "../../../test/support/pan-scan.ts";
import { Signal } from "../../../test/support/signal.ts";
import { ZvtTerminal } from "../../src/hardware/terminal/zvt.ts";
import { ACK, ApduDecoder, negativeAck } from "../../src/hardware/terminal/zvt-frame.ts";
import {
  completion,
  endOfDay,
  parseEndOfDay,
  parseSingleTotals,
  parseStatusInformation,
  type SingleTotals,
  statusInformation,
  TOTALS_GROUPS,
  totalsGroup,
} from "../../src/hardware/terminal/zvt-messages.ts";
import { ZvtSimulator } from "../../src/hardware/terminal/zvt-simulator.ts";
import { FakeTimers } from "../fake-timers.ts";

const test = suite("zvt end-of-day");
const PASSWORD = "314159";
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

async function rejects(p: Promise<unknown>, message: RegExp): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.instance(err, Error, "expected a rejection");
  assert.match((err as Error).message, message);
}

function totals(over: Partial<SingleTotals["groups"]>, receiptFrom = "0001", receiptTo = "0003"): SingleTotals {
  const groups = Object.fromEntries(TOTALS_GROUPS.map((g) => [g, { count: 0, amount: 0 }])) as SingleTotals["groups"];
  return { receiptFrom, receiptTo, groups: { ...groups, ...over } };
}

test("End-of-Day is 06 50 03 and the password in 3 BCD bytes, like Registration's", () => {
  assert.is(hex(endOfDay(PASSWORD)), "065003314159");
  assert.equal(parseEndOfDay(Uint8Array.of(0x31, 0x41, 0x59)), { password: PASSWORD });
  assert.is(parseEndOfDay(Uint8Array.of(0x31, 0x4a, 0x59)), undefined, "a nibble that is not BCD");
  assert.is(parseEndOfDay(Uint8Array.of(0x31)), undefined, "too short");
  assert.throws(() => endOfDay("31415"), /6 digits/);
});

test("BMP 60 single totals: receipt numbers, then count (binary) and turnover (6 BCD) per card group, in spec order", () => {
  const t = totals({ visa: { count: 2, amount: 4500 }, eurocard: { count: 1, amount: 1000 } });
  const status = statusInformation({ resultCode: 0, amount: 5500, currency: 978, traceNumber: 9, totals: t });
  // 04 0F, then LL of the whole; the BMP 60 is at the end of this message: 60 F0 F5 F3 and 53 bytes
  const body = hex(status);
  const bmp60 =
    "60f0f5f3" +
    "0001" +
    "0003" +
    "00000000000000" + // girocard
    "00000000000000" + // JCB
    "01000000001000" + // Eurocard/Mastercard: 1, 10.00
    "00000000000000" + // Amex
    "02000000004500" + // VISA: 2, 45.00
    "00000000000000" + // Diners
    "00000000000000"; // other
  assert.ok(body.endsWith(bmp60), body);
  const parsed = parseStatusInformation(status.subarray(3));
  assert.ok(parsed.complete);
  assert.is(parsed.amount, 5500);
  assert.equal(parsed.totals, t);
  assert.is(parseSingleTotals(Uint8Array.of(0x00, 0x01)), undefined, "a short BMP 60 is not read");
  assert.is(totalsGroup(10), "visa");
  assert.is(totalsGroup(6), "eurocard");
  assert.is(totalsGroup(5), "girocard");
  assert.is(totalsGroup(undefined), "other");
});

/** The driver and the simulator over TCP on fake timers, with logs kept for the PAN/password scan. */
async function simRig() {
  const timers = new FakeTimers();
  const logs: string[] = [];
  const sim = new ZvtSimulator({ password: PASSWORD, now: timers.now });
  const { host, port } = await sim.start();
  const sink = new Writable({
    write: (chunk, _enc, done) => {
      logs.push(String(chunk));
      done();
    },
  });
  const terminal = new ZvtTerminal({
    host,
    port,
    password: PASSWORD,
    timers,
    logger: pino({ level: "debug", timestamp: false }, sink),
  });
  return {
    sim,
    terminal,
    timers,
    async stop() {
      await terminal.close();
      await sim.stop();
      assert.is(timers.pending, 0, "timers left behind");
      const text = logs.join("");
      assert.equal(findPans(text), [], "a PAN was logged");
      assert.not.ok(text.includes(PASSWORD), "the password was logged");
    },
  };
}

test("against the simulator: the batch is the charges approved since the last End-of-Day, then a new batch starts", async () => {
  const r = await simRig();
  try {
    const charge = (amount: number) =>
      r.terminal.charge({ amount, currency: "EUR", reference: "6f1c3b8a-0b7d-4c1e-9d57-2f1c3b8a9e10" });
    assert.is((await charge(2000)).status, "approved");
    r.sim.nextOutcome("decline");
    assert.is((await charge(700)).status, "declined");
    r.sim.setCard({ brand: "Mastercard", pan: "5555555555554444" });
    assert.is((await charge(1500)).status, "approved");
    assert.equal(r.sim.batch, { count: 2, total: 3500 });

    const eod = await r.terminal.endOfDay();
    assert.equal(eod, {
      total: 3500,
      count: 2,
      currency: "EUR",
      traceNumber: "000004",
      receiptFrom: "0001",
      receiptTo: "0003",
    });
    assert.is(r.sim.stats.endOfDays, 1);
    assert.equal(r.sim.batch, { count: 0, total: 0 });
    assert.is(r.terminal.state, "ready");

    const empty = await r.terminal.endOfDay();
    assert.is(empty.total, 0);
    assert.is(empty.count, 0);
    // the link still charges after an End-of-Day
    assert.is((await charge(100)).status, "approved");
  } finally {
    await r.stop();
  }
});

test("one thing at a time: End-of-Day during a charge rejects, naming why", async () => {
  const r = await simRig();
  try {
    r.sim.nextOutcome("timeout");
    const abort = new AbortController();
    const pending = r.terminal.charge(
      { amount: 100, currency: "EUR", reference: "6f1c3b8a-0b7d-4c1e-9d57-2f1c3b8a9e11" },
      { signal: abort.signal },
    );
    await rejects(r.terminal.endOfDay(), /busy/);
    abort.abort();
    assert.is((await pending).status, "cancelled");
  } finally {
    await r.stop();
  }
});

/** A bare terminal: registers anyone, and answers End-of-Day with `script`. */
async function scriptedTerminal(script: (socket: Socket) => void) {
  const signal = new Signal();
  const received: string[] = [];
  const server = createServer((socket) => {
    const decoder = new ApduDecoder();
    socket.on("error", () => {});
    socket.on("data", (chunk) => {
      for (const e of decoder.push(chunk)) {
        if (e.type !== "apdu" || e.apdu.cls !== 0x06) continue;
        received.push(`${e.apdu.cls.toString(16)}${e.apdu.ins.toString(16).padStart(2, "0")}`);
        if (e.apdu.ins === 0x00) socket.write(Buffer.concat([ACK, completion()]));
        if (e.apdu.ins === 0x50) script(socket);
      }
      signal.notify();
    });
  });
  await new Promise<void>((res) => server.listen(0, "127.0.0.1", () => res()));
  const addr = server.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;
  return { port, signal, received, close: () => new Promise<void>((res) => server.close(() => res())) };
}

test("a terminal that refuses End-of-Day (84 XX 00): rejected with its result in words", async () => {
  const timers = new FakeTimers();
  const t = await scriptedTerminal((s) => s.write(negativeAck(0x83)));
  const terminal = new ZvtTerminal({ host: "127.0.0.1", port: t.port, timers, logger: pino({ level: "silent" }) });
  await rejects(terminal.endOfDay(), /refused end-of-day: function not possible \(result code 0x83\)/);
  assert.equal(t.received, ["600", "650"]);
  await terminal.close();
  await t.close();
  assert.is(timers.pending, 0);
});

test("a terminal that answers with result 00 and totals, then drops the link: the batch is closed, the totals stand", async () => {
  const timers = new FakeTimers();
  const status = statusInformation({
    resultCode: 0,
    amount: 1200,
    currency: 978,
    traceNumber: 41,
    totals: totals({ girocard: { count: 3, amount: 1200 } }, "0007", "0009"),
  });
  const t = await scriptedTerminal((s) => s.end(Buffer.concat([ACK, status])));
  const terminal = new ZvtTerminal({ host: "127.0.0.1", port: t.port, timers, logger: pino({ level: "silent" }) });
  assert.equal(await terminal.endOfDay(), {
    total: 1200,
    count: 3,
    currency: "EUR",
    traceNumber: "000041",
    receiptFrom: "0007",
    receiptTo: "0009",
  });
  await terminal.close();
  await t.close();
  assert.is(timers.pending, 0);
});

test("a terminal that never answers End-of-Day: rejected at timeoutMs, the link dropped", async () => {
  const timers = new FakeTimers();
  const t = await scriptedTerminal((s) => s.write(ACK));
  const terminal = new ZvtTerminal({
    host: "127.0.0.1",
    port: t.port,
    timers,
    timeoutMs: 5000,
    logger: pino({ level: "silent" }),
  });
  const p = terminal.endOfDay();
  await t.signal.until(() => t.received.includes("650"), "End-of-Day sent");
  timers.advance(5000);
  await rejects(p, /no end-of-day answer from the terminal within 5000 ms/);
  assert.is(terminal.state, "disconnected");
  await terminal.close();
  await t.close();
  assert.is(timers.pending, 0);
});

test("result 00 without single totals: rejected, the count being unknown", async () => {
  const timers = new FakeTimers();
  const status = statusInformation({ resultCode: 0, amount: 1200, currency: 978, traceNumber: 41 });
  const t = await scriptedTerminal((s) => s.write(Buffer.concat([ACK, status, completion()])));
  const terminal = new ZvtTerminal({ host: "127.0.0.1", port: t.port, timers, logger: pino({ level: "silent" }) });
  await rejects(terminal.endOfDay(), /no single totals \(BMP 60\)/);
  await terminal.close();
  await t.close();
  assert.is(timers.pending, 0);
});

test.run();
