/**
 * The same roles on a Firmata board through johnny-five, with mock-firmata as
 * the board: what reaches the board is the pinMode / digitalWrite calls on the
 * io, and the button is the board reporting `digital-read-<pin>`.
 */
import { createRequire } from "node:module";
import pino from "pino";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { GpioConfigError } from "../../src/hardware/gpio/backend.ts";
import { parseGpioConfig } from "../../src/hardware/gpio/config.ts";
import { GpioRoles } from "../../src/hardware/gpio/gpio-roles.ts";
import { type FirmataIo, JohnnyFiveGpio } from "../../src/hardware/gpio/johnny-five.ts";
import { FakeTimers } from "../fake-timers.ts";

const require = createRequire(import.meta.url);
type MockPin = { supportedModes: number[]; mode: number; value: number; report: number; analogChannel: number };
const { Firmata, Pins } = require("mock-firmata") as {
  Firmata: new (opts?: { pins?: MockPin[] }) => FirmataIo;
  Pins: { UNO: MockPin[] };
};
const logger = pino({ level: "silent" });

const PINS = { relay: 7, buzzer: 8, led: 13, button: 2 };

/** A mock board (an Uno unless `pins` are given) whose io calls are recorded. */
function mockBoard(pins?: MockPin[]) {
  const io = new Firmata({ pins: pins ?? Pins.UNO.map((p) => ({ ...p })) });
  const writes: Array<[pin: number, value: number]> = [];
  const modes: Array<[pin: number, mode: number]> = [];
  const reads: number[] = [];
  /** Every call in order, e.g. "write 7 0", "mode 7 1". */
  const calls: string[] = [];
  io.digitalWrite = (pin, value) => {
    writes.push([pin, value]);
    calls.push(`write ${pin} ${value}`);
  };
  io.pinMode = (pin, mode) => {
    modes.push([pin, mode]);
    calls.push(`mode ${pin} ${mode}`);
  };
  io.digitalRead = (pin) => void reads.push(pin);
  const level = (pin: number) => writes.filter(([p]) => p === pin).at(-1)?.[1];
  return { io, writes, modes, reads, calls, level };
}

/** johnny-five's handshake as an attached board would make it. */
function boardAnswers(io: FirmataIo) {
  io.emit("connect");
  io.emit("ready");
}

async function rolesOnBoard(extra: Record<string, unknown> = {}) {
  const board = mockBoard();
  const timers = new FakeTimers();
  const config = parseGpioConfig({
    backend: "johnny-five",
    johnnyFive: { path: "/dev/ttyACM0" },
    relay: { line: { firmata: PINS.relay } },
    buzzer: { line: { firmata: PINS.buzzer } },
    led: { line: { firmata: PINS.led } },
    button: { line: { firmata: PINS.button } },
    ...extra,
  });
  let presses = 0;
  const roles = new GpioRoles({
    config,
    backend: new JohnnyFiveGpio({ io: board.io, timers }),
    timers,
    logger,
    now: timers.now,
    onCallStaff: () => presses++,
    deenergiseOnExit: false,
  });
  const started = roles.start();
  boardAnswers(board.io);
  await started;
  return { ...board, timers, roles, presses: () => presses };
}

test("five.Board over an injected mock-firmata io becomes ready after connect + ready", async () => {
  const { io } = mockBoard();
  const timers = new FakeTimers();
  const backend = new JohnnyFiveGpio({ io, timers });
  assert.is(backend.state, "disconnected");
  const started = backend.start();
  boardAnswers(io);
  await started;
  assert.is(backend.state, "ok");
  assert.is(backend.describe(), "johnny-five (Mock board)");
  assert.is(timers.pending, 0, "the ready timeout was cleared");
  await backend.stop();
});

test("the relay pin is latched low before it becomes an output, and pulses high for pulseMs", async () => {
  const { calls, level, timers, roles, io } = await rolesOnBoard();
  const relayCalls = calls.filter((c) => c.split(" ")[1] === String(PINS.relay));
  assert.equal(relayCalls.slice(0, 2), [`write ${PINS.relay} 0`, `mode ${PINS.relay} ${io.MODES.OUTPUT}`]);
  assert.not.ok(relayCalls.includes(`write ${PINS.relay} 1`), "never high at start");
  assert.ok(roles.unlock());
  assert.is(level(PINS.relay), 1);
  timers.advance(2999);
  assert.is(level(PINS.relay), 1);
  timers.advance(1);
  assert.is(level(PINS.relay), 0);
  await roles.stop();
});

test("LED patterns and buzzer sounds are written through Firmata", async () => {
  const { writes, level, timers, roles } = await rolesOnBoard();
  roles.status("idle");
  assert.is(level(PINS.led), 1);
  roles.status("busy");
  const from = writes.length;
  timers.advance(400);
  assert.equal(
    writes.slice(from).filter(([p]) => p === PINS.led),
    [
      [PINS.led, 0],
      [PINS.led, 1],
      [PINS.led, 0],
      [PINS.led, 1],
    ],
  );
  roles.beep();
  assert.is(level(PINS.buzzer), 1);
  timers.advance(80);
  assert.is(level(PINS.buzzer), 0);
  await roles.stop();
  assert.is(level(PINS.led), 0, "off at stop");
});

test("the button: the board's digital-read reports, debounced, are one call-staff press", async () => {
  const { io, modes, reads, timers, roles, presses } = await rolesOnBoard();
  assert.ok(
    modes.some(([p, m]) => p === PINS.button && m === io.MODES.INPUT),
    "made an input",
  );
  assert.equal(reads, [PINS.button], "reporting enabled for the button pin");
  for (const v of [0, 1, 0, 1, 0]) io.emit(`digital-read-${PINS.button}`, v);
  timers.advance(49);
  assert.is(presses(), 0);
  timers.advance(1);
  assert.is(presses(), 1);
  io.emit(`digital-read-${PINS.button}`, 1);
  timers.advance(100);
  io.emit(`digital-read-${PINS.button}`, 0);
  timers.advance(100);
  assert.is(presses(), 2);
  await roles.stop();
  assert.is(io.listenerCount(`digital-read-${PINS.button}`), 0, "stop removes the read listener");
  io.emit(`digital-read-${PINS.button}`, 1);
  io.emit(`digital-read-${PINS.button}`, 0);
  timers.advance(100);
  assert.is(presses(), 2);
});

test("a pull-up button pin uses Firmata's PULLUP mode (0x0B) where the board supports it", async () => {
  const PULLUP = 0x0b;
  const pins = Pins.UNO.map((p, i) => ({
    ...p,
    supportedModes: i === PINS.button ? [0, 1, PULLUP] : p.supportedModes,
  }));
  const { io, modes } = mockBoard(pins);
  const timers = new FakeTimers();
  const backend = new JohnnyFiveGpio({ io, timers });
  const started = backend.start();
  boardAnswers(io);
  await started;
  const input = await backend.input(PINS.button, "both", { pull: "up" });
  assert.equal(modes.at(-1), [PINS.button, PULLUP]);
  assert.is(input.read(), 1, "idles high until the board reports");
  input.release();
  const plain = await backend.input(3, "both", { pull: "up" });
  assert.equal(modes.at(-1), [3, io.MODES.INPUT], "a pin without PULLUP falls back to INPUT");
  plain.release();
  await backend.stop();
});

test("a board that never answers: start gives up after readyTimeoutMs and the roles report disconnected", async () => {
  const { io } = mockBoard();
  const timers = new FakeTimers();
  const config = parseGpioConfig({
    backend: "johnny-five",
    johnnyFive: { path: "/dev/ttyACM0", readyTimeoutMs: 5000 },
    relay: { line: { firmata: PINS.relay } },
  });
  const roles = new GpioRoles({
    config,
    backend: new JohnnyFiveGpio({ io, timers, readyTimeoutMs: config.johnnyFive?.readyTimeoutMs }),
    timers,
    logger,
  });
  const started = roles.start();
  timers.advance(5000);
  await started;
  assert.equal(roles.health().roles.relay, {
    state: "disconnected",
    lastError: "johnny-five board did not report ready within 5000 ms",
  });
  assert.not.ok(roles.unlock());
  await roles.stop();
});

test("a board unplugged while running: every role reports disconnected, and writes fail instead of vanishing", async () => {
  const { io, roles, writes } = await rolesOnBoard();
  io.emit("close");
  const health = roles.health();
  assert.is(health.state, "disconnected");
  for (const role of ["relay", "led", "buzzer", "button"] as const)
    assert.is(health.roles[role]?.state, "disconnected", role);
  const before = writes.length;
  assert.not.ok(roles.unlock());
  assert.is(writes.length, before);
  await roles.stop();
});

test("pins the board cannot use are refused with the field named", async () => {
  const board = mockBoard();
  const timers = new FakeTimers();
  const roles = new GpioRoles({
    config: parseGpioConfig({
      backend: "johnny-five",
      johnnyFive: { path: "/dev/ttyACM0" },
      relay: { line: { firmata: 0 } },
    }),
    backend: new JohnnyFiveGpio({ io: board.io, timers }),
    timers,
    logger,
  });
  const started = roles.start();
  boardAnswers(board.io);
  try {
    await started;
    assert.unreachable("pin 0 (serial RX on an Uno) cannot be an output");
  } catch (err) {
    assert.instance(err, GpioConfigError);
    assert.is((err as Error).message, "gpio.relay.line: firmata pin 0 cannot be a digital output (its modes: none)");
  }
  const backend = new JohnnyFiveGpio({ io: board.io, timers });
  try {
    await backend.resolve({ bcm: 17 }, "gpio.led.line");
    assert.unreachable();
  } catch (err) {
    assert.match(
      (err as Error).message,
      "gpio.led.line: { bcm: 17 } is a Raspberry Pi line; a johnny-five board takes { firmata: <pin> }",
    );
  }
});

test.run();
