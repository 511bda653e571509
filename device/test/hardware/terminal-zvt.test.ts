/**
 * The ZVT driver against the simulated terminal over real TCP on 127.0.0.1,
 * on fake timers: approvals, declines, a card that never comes (timeout), a
 * link lost mid-transaction, aborts, one charge at a time, reconnection and
 * garbage on the wire. Waits are event-driven (Signal), never sleeps; every
 * test ends with no timer left behind and no PAN or password in the logs.
 */
import { createServer, type Socket } from "node:net";
import { Writable } from "node:stream";
import { pino } from "pino";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { findPans } from "../../../test/support/pan-scan.ts";
import { Signal } from "../../../test/support/signal.ts";
import type { TerminalCharge, TerminalOutcome, TerminalState } from "../../src/hardware/terminal/terminal.ts";
import { ZvtTerminal, type ZvtTerminalOptions } from "../../src/hardware/terminal/zvt.ts";
import { ACK, ApduDecoder } from "../../src/hardware/terminal/zvt-frame.ts";
import { completion, maskedPanBody, statusInformation } from "../../src/hardware/terminal/zvt-messages.ts";
import { ZvtSimulator } from "../../src/hardware/terminal/zvt-simulator.ts";
import { FakeTimers } from "../fake-timers.ts";

const test = suite("zvt terminal");

const TIMEOUT_MS = 60_000;
const PASSWORD = "314159";
const EUR_250: TerminalCharge = { amount: 250, currency: "EUR", reference: "0b7d4c1e-6a2f-4e39-9d57-2f1c3b8a9e10" };

class Rig {
  readonly timers = new FakeTimers();
  readonly signal = new Signal();
  readonly logs: string[] = [];
  readonly states: TerminalState[] = [];
  readonly sim = new ZvtSimulator({ password: PASSWORD, now: this.timers.now, onChange: this.signal.notify });
  terminal!: ZvtTerminal;

  async start(opts: Partial<ZvtTerminalOptions> = {}): Promise<this> {
    const { host, port } = await this.sim.start();
    const sink = new Writable({
      write: (chunk, _enc, done) => {
        this.logs.push(String(chunk));
        done();
      },
    });
    this.terminal = new ZvtTerminal({
      host,
      port,
      password: PASSWORD,
      timeoutMs: TIMEOUT_MS,
      timers: this.timers,
      // No epoch-ms "time" field: 13 digits that pass Luhn one time in ten would read as a PAN.
      logger: pino({ level: "debug", timestamp: false }, sink),
      onStateChange: (s) => {
        this.states.push(s);
        this.signal.notify();
      },
      ...opts,
    });
    return this;
  }

  /** Resolves once the simulator holds an Authorization and the ECR has acknowledged its intermediate status. */
  waitingForCard(charges = 1): Promise<true> {
    return this.signal.until(
      () => this.sim.stats.charges === charges && this.sim.stats.acks === this.sim.stats.registrations + charges,
      `charge ${charges} waiting for a card`,
    );
  }

  /** Lets socket I/O that is already under way settle (a few event-loop turns, no clock time). */
  async settle(): Promise<void> {
    for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
  }

  async stop(): Promise<void> {
    await this.terminal?.close();
    await this.sim.stop();
    assert.is(this.timers.pending, 0, "timers left behind");
    const logs = this.logs.join("");
    assert.equal(findPans(logs), [], "a PAN was logged");
    assert.not.ok(logs.includes(PASSWORD), "the password was logged");
  }
}

let rigs: Rig[] = [];
async function rig(opts: Partial<ZvtTerminalOptions> = {}): Promise<Rig> {
  const r = new Rig();
  rigs.push(r);
  return r.start(opts);
}

test.after.each(async () => {
  for (const r of rigs.splice(0)) await r.stop();
  rigs = [];
});

function approved(o: TerminalOutcome): Extract<TerminalOutcome, { status: "approved" }> {
  if (o.status !== "approved") throw new Error(`expected approved, got ${JSON.stringify(o)}`);
  return o;
}

test("approve: connects, registers, charges; the card label shows the last four only", async () => {
  const r = await rig();
  assert.is(r.terminal.state, "disconnected");
  const o = approved(await r.terminal.charge(EUR_250));
  assert.is(o.cardLabel, "VISA •••• 4242");
  assert.match(o.reference, /^\d{6}-\d{4}$/);
  assert.match(o.approvalCode, /^\d{6}$/);
  assert.equal(findPans(JSON.stringify(o)), []);
  assert.equal(r.sim.lastCharge, { amount: 250, currency: "EUR" });
  assert.equal(r.sim.stats.registrations, 1);
  assert.is(r.terminal.state, "ready");
  assert.equal(r.states, ["busy", "ready"]);
  assert.is(r.terminal.counters.approved, 1);
});

test("approve: the link is kept for the next charge, in another currency", async () => {
  const r = await rig();
  approved(await r.terminal.charge(EUR_250));
  const o = approved(await r.terminal.charge({ ...EUR_250, amount: 1999, currency: "GBP" }));
  assert.equal(r.sim.lastCharge, { amount: 1999, currency: "GBP" });
  assert.is(r.sim.stats.connections, 1);
  assert.is(r.sim.stats.registrations, 1);
  assert.is.not(o.reference, "");
});

test("approve: another card brand and PAN", async () => {
  const r = await rig();
  r.sim.setCard({ brand: "Mastercard", pan: "5555555555554444" });
  const o = approved(await r.terminal.charge(EUR_250));
  assert.is(o.cardLabel, "Mastercard •••• 4444");
});

test("decline: Abort 06 1E with the issuer's result code", async () => {
  const r = await rig();
  r.sim.nextOutcome("decline");
  assert.equal(await r.terminal.charge(EUR_250), {
    status: "declined",
    reason: "card declined by issuer (result code 0x05)",
  });
  r.sim.nextOutcome("decline", { resultCode: 0x64 });
  assert.equal(await r.terminal.charge(EUR_250), {
    status: "declined",
    reason: "card not readable (result code 0x64)",
  });
  assert.is(r.terminal.state, "ready");
  // The queue is used up: the next charge is approved.
  approved(await r.terminal.charge(EUR_250));
});

test("timeout: no final answer within timeoutMs; the driver aborts and drops the link", async () => {
  const r = await rig();
  r.sim.nextOutcome("timeout");
  let settled: TerminalOutcome | undefined;
  const p = r.terminal.charge(EUR_250).then((o) => {
    settled = o;
    return o;
  });
  await r.waitingForCard();
  r.timers.advance(TIMEOUT_MS - 1);
  await r.settle();
  assert.is(settled, undefined);
  r.timers.advance(1);
  assert.equal(await p, { status: "timeout" });
  await r.signal.until(() => r.sim.stats.aborts === 1 && r.sim.connections === 0, "abort received, link dropped");
  assert.is(r.terminal.state, "disconnected");
});

test("disconnect: the terminal closes the connection mid-transaction", async () => {
  const r = await rig();
  r.sim.nextOutcome("disconnect");
  const o = await r.terminal.charge(EUR_250);
  assert.is(o.status, "disconnected");
  assert.match(o.status === "disconnected" ? o.reason : "", /lost during the payment/);
  assert.is(r.terminal.state, "disconnected");
  assert.equal(r.states, ["busy", "disconnected"]);
});

test("reconnect: the next charge after a lost link connects and registers again", async () => {
  const r = await rig();
  r.sim.nextOutcome("disconnect");
  assert.is((await r.terminal.charge(EUR_250)).status, "disconnected");
  approved(await r.terminal.charge(EUR_250));
  assert.is(r.sim.stats.connections, 2);
  assert.is(r.sim.stats.registrations, 2);
  assert.is(r.terminal.counters.reconnects, 1);
  // A link dropped while idle (cable pulled) is noticed and picked up again too.
  r.sim.dropConnections();
  await r.signal.until(() => r.terminal.state === "disconnected", "idle link loss noticed");
  approved(await r.terminal.charge(EUR_250));
  assert.is(r.sim.stats.registrations, 3);
});

test("reconnect: after a timeout", async () => {
  const r = await rig();
  r.sim.nextOutcome("timeout");
  const p = r.terminal.charge(EUR_250);
  await r.waitingForCard();
  r.timers.advance(TIMEOUT_MS);
  assert.equal(await p, { status: "timeout" });
  approved(await r.terminal.charge(EUR_250));
  assert.is(r.sim.stats.registrations, 2);
});

test("abort: an AbortSignal cancels a charge waiting for a card; the link stays up", async () => {
  const r = await rig();
  r.sim.nextOutcome("timeout");
  const ac = new AbortController();
  const p = r.terminal.charge(EUR_250, { signal: ac.signal });
  await r.waitingForCard();
  ac.abort();
  assert.equal(await p, { status: "cancelled" });
  assert.is(r.sim.stats.aborts, 1);
  assert.is(r.terminal.state, "ready");
  approved(await r.terminal.charge(EUR_250));
  assert.is(r.sim.stats.connections, 1);
});

test("abort: an already aborted signal never reaches the terminal", async () => {
  const r = await rig();
  const ac = new AbortController();
  ac.abort();
  assert.equal(await r.terminal.charge(EUR_250, { signal: ac.signal }), { status: "cancelled" });
  assert.is(r.sim.stats.connections, 0);
  assert.is(r.sim.stats.charges, 0);
});

test("abort: while connecting, the charge ends at once; the link set up meanwhile serves the next charge", async () => {
  const r = await rig();
  const ac = new AbortController();
  const p = r.terminal.charge(EUR_250, { signal: ac.signal });
  ac.abort();
  assert.equal(await p, { status: "cancelled" });
  await r.signal.until(() => r.terminal.state === "ready", "link up in the background");
  assert.is(r.sim.stats.charges, 0);
  approved(await r.terminal.charge(EUR_250));
  assert.is(r.sim.stats.connections, 1);
});

test("connect() and a charge arriving meanwhile share one connection", async () => {
  const r = await rig();
  const linking = r.terminal.connect();
  approved(await r.terminal.charge(EUR_250));
  await linking;
  assert.is(r.sim.stats.connections, 1);
  assert.is(r.sim.stats.registrations, 1);
});

test("abort: a terminal that cannot abort is given abortGraceMs, then it is a timeout", async () => {
  const r = await rig({ abortGraceMs: 3000 });
  r.sim.nextOutcome("timeout", { ignoreAbort: true });
  const ac = new AbortController();
  const p = r.terminal.charge(EUR_250, { signal: ac.signal });
  await r.waitingForCard();
  ac.abort();
  await r.signal.until(() => r.sim.stats.aborts === 1, "abort refused by the terminal");
  r.timers.advance(3000);
  assert.equal(await p, { status: "timeout" });
});

test("one charge at a time: a second call while busy rejects", async () => {
  const r = await rig();
  const first = r.terminal.charge(EUR_250);
  assert.is(r.terminal.state, "busy");
  try {
    await r.terminal.charge(EUR_250);
    assert.unreachable("a second charge was accepted");
  } catch (err) {
    assert.instance(err, Error);
    assert.match((err as Error).message, /busy/);
  }
  approved(await first);
  assert.is(r.sim.stats.charges, 1);
});

test("bad requests reject: amount, currency", async () => {
  const r = await rig();
  for (const bad of [
    { ...EUR_250, amount: 0 },
    { ...EUR_250, amount: 2.5 },
    { ...EUR_250, amount: 1e13 },
    { ...EUR_250, currency: "XTS" },
  ]) {
    try {
      await r.terminal.charge(bad);
      assert.unreachable(`accepted ${JSON.stringify(bad)}`);
    } catch (err) {
      assert.instance(err, RangeError);
    }
  }
  assert.is(r.terminal.state, "disconnected");
});

test("garbage from the terminal is dropped and does not disturb a charge", async () => {
  const r = await rig();
  await r.terminal.connect();
  assert.is(r.terminal.state, "ready");
  r.sim.injectGarbage(Uint8Array.of(0xde, 0xad, 0xbe, 0xef, 0x13, 0x37));
  r.sim.nextOutcome("timeout");
  const ac = new AbortController();
  const p = r.terminal.charge(EUR_250, { signal: ac.signal });
  await r.waitingForCard();
  r.sim.injectGarbage(Uint8Array.of(0xff, 0x00, 0x99));
  ac.abort();
  assert.equal(await p, { status: "cancelled" });
  approved(await r.terminal.charge(EUR_250));
  assert.is(r.terminal.counters.garbageBytes, 9);
});

test("a truncated message swallowing the next ones ends in a timeout, and the next charge recovers", async () => {
  const r = await rig();
  await r.terminal.connect();
  // A Status information header announcing 0x30 bytes, cut off after one.
  r.sim.injectGarbage(Uint8Array.of(0x04, 0x0f, 0x30, 0x27));
  const p = r.terminal.charge(EUR_250);
  await r.signal.until(() => r.sim.stats.charges === 1, "authorization received");
  r.timers.advance(TIMEOUT_MS);
  assert.equal(await p, { status: "timeout" });
  approved(await r.terminal.charge(EUR_250));
  assert.is(r.sim.stats.connections, 2);
});

test("wrong password: registration refused, reported as disconnected before any payment", async () => {
  const r = await rig({ password: "000000" });
  const o = await r.terminal.charge(EUR_250);
  assert.is(o.status, "disconnected");
  assert.match(o.status === "disconnected" ? o.reason : "", /refused Registration.*no payment was started/);
  assert.is(r.sim.stats.charges, 0);
  assert.is(r.sim.stats.refused, 1);
});

test("nothing listening: connection refused, reported as disconnected", async () => {
  const r = await rig();
  await r.sim.stop();
  const o = await r.terminal.charge(EUR_250);
  assert.is(o.status, "disconnected");
  assert.match(o.status === "disconnected" ? o.reason : "", /cannot reach the terminal.*no payment was started/);
});

test("a terminal that accepts the connection but never answers Registration: connectTimeoutMs", async () => {
  const timers = new FakeTimers();
  const silent = createServer((s) => s.on("error", () => {}));
  await new Promise<void>((res) => silent.listen(0, "127.0.0.1", () => res()));
  const addr = silent.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;
  const registration = new Promise<void>((res) => silent.once("connection", (s) => s.once("data", () => res())));
  const mute = new ZvtTerminal({
    host: "127.0.0.1",
    port,
    timers,
    logger: pino({ level: "silent" }),
    connectTimeoutMs: 2000,
  });
  const p = mute.charge(EUR_250);
  await registration;
  timers.advance(2000);
  const o = await p;
  assert.is(o.status, "disconnected");
  assert.match(o.status === "disconnected" ? o.reason : "", /did not answer Registration within 2000 ms/);
  await mute.close();
  await new Promise<void>((res) => silent.close(() => res()));
  assert.is(timers.pending, 0);
});

/**
 * A bare terminal for the cases the simulator does not play: it registers
 * anyone, ACKs the Authorization, then runs `script` on the socket. `acks`
 * counts the ECR's ACKs, and `signal` is told of each.
 */
async function scriptedTerminal(script: (socket: Socket) => void) {
  const signal = new Signal();
  const t = { port: 0, acks: 0, signal, close: () => new Promise<void>((res) => server.close(() => res())) };
  const server = createServer((socket) => {
    const decoder = new ApduDecoder();
    socket.setNoDelay(true);
    socket.on("error", () => {});
    socket.on("data", (chunk) => {
      for (const e of decoder.push(chunk)) {
        if (e.type !== "apdu") continue;
        if (e.apdu.cls === 0x80) t.acks++;
        if (e.apdu.cls !== 0x06) continue;
        socket.write(ACK);
        if (e.apdu.ins === 0x00) socket.write(completion());
        if (e.apdu.ins === 0x01) script(socket);
      }
      signal.notify();
    });
  });
  await new Promise<void>((res) => server.listen(0, "127.0.0.1", () => res()));
  const addr = server.address();
  t.port = typeof addr === "object" && addr ? addr.port : 0;
  return t;
}

const APPROVED_STATUS = statusInformation({
  resultCode: 0,
  amount: 250,
  currency: 978,
  traceNumber: 77,
  receiptNumber: 12,
  maskedPan: maskedPanBody("4000056655665556"),
  approvalCode: "XY12",
  cardType: 10,
});

test("past the commit point: Status information 00 without Completion is approved at the timeout", async () => {
  const timers = new FakeTimers();
  const t = await scriptedTerminal((socket) => socket.write(APPROVED_STATUS));
  const terminal = new ZvtTerminal({ host: "127.0.0.1", port: t.port, timers, logger: pino({ level: "silent" }) });
  const p = terminal.charge(EUR_250);
  // ACKs: Registration's Completion, then the Status information.
  await t.signal.until(() => t.acks === 2, "status information acknowledged");
  timers.advance(60_000);
  assert.equal(await p, {
    status: "approved",
    reference: "000077-0012",
    approvalCode: "XY12",
    cardLabel: "VISA •••• 5556",
  });
  await terminal.close();
  await t.close();
  assert.is(timers.pending, 0);
});

test("past the commit point: a link lost after Status information 00 is still approved", async () => {
  const timers = new FakeTimers();
  const t = await scriptedTerminal((socket) => socket.end(APPROVED_STATUS));
  const terminal = new ZvtTerminal({ host: "127.0.0.1", port: t.port, timers, logger: pino({ level: "silent" }) });
  const o = await terminal.charge(EUR_250);
  assert.is(o.status, "approved");
  assert.is(terminal.state, "disconnected");
  await terminal.close();
  await t.close();
  assert.is(timers.pending, 0);
});

test("close during a charge: the charge ends disconnected, later charges reject", async () => {
  const r = await rig();
  r.sim.nextOutcome("timeout");
  const p = r.terminal.charge(EUR_250);
  await r.waitingForCard();
  await r.terminal.close();
  const o = await p;
  assert.is(o.status, "disconnected");
  assert.match(o.status === "disconnected" ? o.reason : "", /closed/);
  assert.is(r.terminal.state, "disconnected");
  try {
    await r.terminal.charge(EUR_250);
    assert.unreachable("charged after close");
  } catch (err) {
    assert.match((err as Error).message, /closed/);
  }
});

test.run();
