/**
 * The `terminal` config section and createTerminal: defaults, errors that
 * name the field (and never echo the password), and the in-process simulated
 * terminal the daemon can drive.
 */
import { Writable } from "node:stream";
import { pino } from "pino";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Signal } from "../../../test/support/signal.ts";
import {
  createTerminal,
  parseTerminalConfig,
  TERMINAL_RECONNECT_MS,
  TerminalConfigError,
  TerminalConfigSchema,
} from "../../src/hardware/terminal/factory.ts";
import { FakeTimers } from "../fake-timers.ts";

function error(json: unknown): string {
  try {
    parseTerminalConfig(json);
  } catch (err) {
    assert.instance(err, TerminalConfigError);
    return (err as Error).message;
  }
  throw new Error("expected the config to be refused");
}

function capture(): { logger: pino.Logger; text: () => string } {
  const lines: string[] = [];
  const sink = new Writable({
    write: (chunk, _enc, done) => {
      lines.push(String(chunk));
      done();
    },
  });
  return { logger: pino({ level: "debug", timestamp: false }, sink), text: () => lines.join("") };
}

test("default: no terminal", () => {
  assert.equal(parseTerminalConfig(undefined), { type: "none" });
  assert.equal(TerminalConfigSchema.parse(undefined), { type: "none" });
});

test("zvt takes port 20007, password 000000 and a 60 s timeout by default", () => {
  assert.equal(parseTerminalConfig({ type: "zvt", host: "10.0.0.5" }), {
    type: "zvt",
    host: "10.0.0.5",
    port: 20007,
    password: "000000",
    timeoutMs: 60_000,
  });
  assert.equal(parseTerminalConfig({ type: "zvt-simulator" }), { type: "zvt-simulator", timeoutMs: 60_000 });
});

test("errors name the field", () => {
  assert.match(error({ type: "zvt" }), /^terminal\.host: /);
  assert.match(error({ type: "zvt", host: "h", port: 70_000 }), /^terminal\.port: expected a TCP port/);
  assert.match(error({ type: "zvt", host: "h", timeoutMs: 10 }), /^terminal\.timeoutMs: expected at least 5000 ms/);
  assert.match(error({ type: "zvt-simulator", timeoutMs: "60s" }), /^terminal\.timeoutMs: /);
  assert.match(error({ type: "sumup" }), /^terminal\.type: expected terminal\.type "none", "zvt"/);
  assert.match(error({ type: "zvt", host: "h", pasword: "123456" }), /^terminal: Unrecognized key: "pasword"/);
});

test("a bad password is named but never echoed", () => {
  const message = error({ type: "zvt", host: "h", password: "98765" });
  assert.match(message, /^terminal\.password: expected 6 digits/);
  assert.not.ok(message.includes("98765"));
  assert.match(error({ type: "zvt", host: "h", password: 987654 }), /^terminal\.password: expected 6 digits in quotes/);
});

test('type "none": no terminal, nothing to close', async () => {
  const setup = await createTerminal({ type: "none" }, { timers: new FakeTimers(), logger: pino({ level: "silent" }) });
  assert.is(setup.terminal, undefined);
  assert.is(setup.simulator, undefined);
  await setup.close();
});

test('type "zvt": a driver for the terminal; the password is not logged', async () => {
  const log = capture();
  const setup = await createTerminal(
    { type: "zvt", host: "127.0.0.1", port: 20_007, password: "271828" },
    { timers: new FakeTimers(), logger: log.logger },
  );
  assert.is(setup.terminal?.state, "disconnected");
  assert.is(setup.simulator, undefined);
  await setup.close();
  assert.ok(log.text().includes("ZVT over TCP"));
  assert.not.ok(log.text().includes("271828"));
});

test('type "zvt-simulator": the driver charges against the in-process simulator, which the daemon can drive', async () => {
  const timers = new FakeTimers();
  const setup = await createTerminal({ type: "zvt-simulator" }, { timers, logger: pino({ level: "silent" }) });
  try {
    const { terminal, simulator } = setup;
    assert.ok(terminal && simulator);
    const approved = await terminal.charge({
      amount: 500,
      currency: "CHF",
      reference: "a3f9e6f2-0d0c-4a53-8f57-2b7f4d6c1e11",
    });
    assert.is(approved.status, "approved");
    assert.is(approved.status === "approved" ? approved.cardLabel : "", simulator.cardLabel);
    simulator.nextOutcome("decline");
    const declined = await terminal.charge({
      amount: 500,
      currency: "CHF",
      reference: "a3f9e6f2-0d0c-4a53-8f57-2b7f4d6c1e12",
    });
    assert.is(declined.status, "declined");
    assert.equal(simulator.lastCharge, { amount: 500, currency: "CHF" });
    assert.is(simulator.stats.charges, 2);
  } finally {
    await setup.close();
  }
  assert.is(setup.simulator?.address, undefined);
  assert.is(timers.pending, 0);
});

test("zvt-serial: a path, 9600 baud by default; errors name the field", () => {
  assert.equal(parseTerminalConfig({ type: "zvt-serial", path: "/dev/ttyUSB0" }), {
    type: "zvt-serial",
    path: "/dev/ttyUSB0",
    baudRate: 9600,
    password: "000000",
    timeoutMs: 60_000,
  });
  assert.match(error({ type: "zvt-serial" }), /^terminal\.path: expected the serial device path/);
  assert.match(error({ type: "zvt-serial", path: "ttyUSB0" }), /^terminal\.path: expected an absolute device path/);
  assert.match(error({ type: "zvt-serial", path: "/dev/ttyS0", baudRate: 9600.5 }), /^terminal\.baudRate: /);
  assert.match(error({ type: "zvt-serial", path: "/dev/ttyS0", host: "h" }), /^terminal: Unrecognized key: "host"/);
});

test("the daemon's terminal links at once and keeps its health current: stopped, restarted, each told", async () => {
  const timers = new FakeTimers();
  const told: string[] = [];
  const changed = new Signal();
  const setup = await createTerminal(
    { type: "zvt-simulator" },
    {
      timers,
      logger: pino({ level: "silent" }),
      onStateChange: (s) => {
        told.push(s);
        changed.notify();
      },
    },
  );
  const health = () => setup.health();
  try {
    const simulator = setup.simulator;
    assert.ok(simulator);
    // No charge needed: linked and registered from the start.
    await changed.until(() => health()?.state === "ready", "ready");
    const port = simulator.address?.port ?? 0;
    assert.equal(health(), { type: "zvt-simulator", state: "ready", link: `127.0.0.1:${port}`, reconnects: 0 });

    await simulator.stop();
    await changed.until(() => health()?.state === "disconnected", "disconnected");
    await simulator.start(port);
    timers.advance(TERMINAL_RECONNECT_MS);
    await changed.until(() => health()?.state === "ready", "ready again");
    assert.equal(told, ["ready", "disconnected", "ready"]);
    assert.is(health()?.reconnects, 1);
  } finally {
    await setup.close();
  }
  assert.is(timers.pending, 0);
});

test('type "none" has no health to show', async () => {
  const setup = await createTerminal({ type: "none" }, { timers: new FakeTimers(), logger: pino({ level: "silent" }) });
  assert.is(setup.health(), null);
});

test("createTerminal validates too", async () => {
  try {
    await createTerminal({ type: "zvt", host: "" }, { timers: new FakeTimers(), logger: pino({ level: "silent" }) });
    assert.unreachable("an empty host was accepted");
  } catch (err) {
    assert.match((err as Error).message, /^terminal\.host: /);
  }
});

test.run();
