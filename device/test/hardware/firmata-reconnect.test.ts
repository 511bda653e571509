/**
 * A johnny-five (Firmata) board that goes away and comes back, with
 * mock-firmata boards as what each reopen of the port finds (as in
 * gpio-johnny-five.test.ts): the link's state and attempts in health at the
 * moment of each change, reopen attempts on a backoff, and on return every
 * line set up again, the relay first and de-energised.
 */
import { createRequire } from "node:module";
import { TelemetrySchema } from "@paylane/protocol";
import pino from "pino";
import { test } from "uvu";
import * as assert from "uvu/assert";
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
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A mock board whose io calls are recorded as "write 7 0", "mode 7 1". */
function mockBoard() {
  const io = new Firmata({ pins: Pins.UNO.map((p) => ({ ...p })) });
  const calls: string[] = [];
  io.digitalWrite = (pin, value) => void calls.push(`write ${pin} ${value}`);
  io.pinMode = (pin, mode) => void calls.push(`mode ${pin} ${mode}`);
  io.digitalRead = () => {};
  return { io, calls };
}

/**
 * The serial port as the daemon reopens it: `present` says whether the board is plugged in
 * (an absent one fails to open, as serialport does with ENOENT); each open is a fresh board.
 */
function port() {
  const boards: Array<ReturnType<typeof mockBoard>> = [];
  const p = {
    present: true,
    opens: 0,
    closed: [] as FirmataIo[],
    boards,
    first: mockBoard(),
    openIo: (): FirmataIo => {
      p.opens++;
      if (!p.present) throw new Error("Error: No such file or directory, cannot open /dev/ttyACM0");
      const b = mockBoard();
      boards.push(b);
      return b.io;
    },
    closeIo: (io: FirmataIo) => void p.closed.push(io),
    latest: () => boards.at(-1) ?? p.first,
  };
  return p;
}

const answer = (io: FirmataIo) => {
  io.emit("connect");
  io.emit("ready");
};

async function rig(o: { readyOnStart?: boolean } = {}) {
  const timers = new FakeTimers();
  const p = port();
  let presses = 0;
  /** Health as it stood at each change (what telemetry and /healthz would show then). */
  const seen: Array<ReturnType<GpioRoles["health"]>> = [];
  const backend = new JohnnyFiveGpio({
    io: p.first.io,
    openIo: p.openIo,
    closeIo: p.closeIo,
    timers,
    logger,
    readyTimeoutMs: 1000,
    reconnectMinMs: 500,
    reconnectMaxMs: 10_000,
  });
  const roles: GpioRoles = new GpioRoles({
    config: parseGpioConfig({
      backend: "johnny-five",
      johnnyFive: { path: "/dev/ttyACM0", readyTimeoutMs: 1000 },
      relay: { line: { firmata: PINS.relay } },
      buzzer: { line: { firmata: PINS.buzzer } },
      led: { line: { firmata: PINS.led } },
      button: { line: { firmata: PINS.button } },
    }),
    backend,
    timers,
    logger,
    now: timers.now,
    onCallStaff: () => presses++,
    onChange: () => seen.push(roles.health()),
    deenergiseOnExit: false,
  });
  const started = roles.start();
  if (o.readyOnStart ?? true) answer(p.first.io);
  else timers.advance(1000);
  await started;
  return { timers, p, roles, seen, presses: () => presses };
}

test("stop closes the port the backend reopened, so no serial port or firmata-io timer outlives the daemon", async () => {
  const { timers, p, roles } = await rig();
  p.first.io.emit("close");
  timers.advance(500);
  const reopened = p.latest().io;
  answer(reopened);
  await new Promise((r) => setImmediate(r));
  assert.is.not(reopened, p.first.io);
  await roles.stop();
  assert.ok(p.closed.includes(reopened), "the reopened port is closed at stop");
  assert.is(p.closed.filter((io) => io === p.first.io).length, 1, "the lost one was closed once, before the reopen");
});

test("unplugged: the board reads reconnecting at once, every role disconnected, and reopen attempts back off", async () => {
  const { timers, p, roles, seen } = await rig();
  p.present = false;
  p.first.io.emit("close");
  assert.equal(seen.at(-1)?.board, { state: "reconnecting", attempts: 0, lastError: "close" }, "told at the change");
  assert.is(seen.at(-1)?.roles.relay?.state, "disconnected");
  assert.not.ok(roles.unlock(), "no unlock while the board is away");
  timers.advance(499);
  assert.is(p.opens, 0);
  timers.advance(1);
  assert.is(p.opens, 1, "first reopen after 500 ms");
  assert.equal(roles.health().board, {
    state: "reconnecting",
    attempts: 1,
    lastError: "Error: No such file or directory, cannot open /dev/ttyACM0",
  });
  timers.advance(999);
  assert.is(p.opens, 1);
  timers.advance(1);
  assert.is(p.opens, 2, "then after 1000 ms");
  timers.advance(2000);
  assert.is(p.opens, 3, "then after 2000 ms");
  assert.is(roles.health().board?.attempts, 3);
  assert.is(p.closed[0], p.first.io, "the lost port is closed before it is opened again");
  await roles.stop();
  assert.is(timers.pending, 0, "stop cancels the next attempt");
});

test("back: lines are set up again relay first at de-energised, the roles re-apply, and health reads connected", async () => {
  const { timers, p, roles, seen } = await rig();
  roles.status("idle"); // LED steady on
  p.first.io.emit("disconnect");
  timers.advance(500); // reopened: a board answers
  const back = p.latest();
  assert.is.not(back.io, p.first.io);
  answer(back.io);
  await settle();
  const relay = back.calls.filter((c) => c.split(" ")[1] === String(PINS.relay));
  assert.equal(back.calls.slice(0, 3), [`write ${PINS.relay} 0`, `mode ${PINS.relay} 1`, `write ${PINS.relay} 0`]);
  assert.not.ok(relay.includes(`write ${PINS.relay} 1`), "never energised on return");
  assert.ok(back.calls.includes(`write ${PINS.led} 1`), "the LED shows its pattern again");
  assert.equal(roles.health().board, { state: "connected", attempts: 0 });
  assert.equal(seen.at(-1)?.board, { state: "connected", attempts: 0 }, "told at the change");
  for (const role of ["relay", "led", "buzzer", "button"] as const)
    assert.is(roles.health().roles[role]?.state, "ok", role);
  assert.ok(roles.unlock());
  assert.is(back.calls.at(-1), `write ${PINS.relay} 1`, "the relay works on the new board");
  timers.advance(3000);
  assert.is(back.calls.at(-1), `write ${PINS.relay} 0`);
  await roles.stop();
});

test("a pulse cut by the unplug is not resumed on return; the button reads the new board, not the old", async () => {
  const { timers, p, roles, presses } = await rig();
  assert.ok(roles.unlock());
  p.first.io.emit("close");
  timers.advance(500);
  const back = p.latest();
  answer(back.io);
  await settle();
  assert.not.ok(
    back.calls.includes(`write ${PINS.relay} 1`),
    "the relay comes back de-energised though its pulse had 2.5 s left",
  );
  p.first.io.emit(`digital-read-${PINS.button}`, 0);
  timers.advance(100);
  assert.is(presses(), 0, "the old board's reports are not heard");
  back.io.emit(`digital-read-${PINS.button}`, 0);
  timers.advance(50);
  assert.is(presses(), 1);
  await roles.stop();
});

test("a reopened port whose board never answers is given up after readyTimeoutMs and tried again", async () => {
  const { timers, p, roles } = await rig();
  p.first.io.emit("close");
  timers.advance(500);
  assert.is(p.opens, 1);
  timers.advance(1000);
  await settle();
  assert.equal(roles.health().board, {
    state: "reconnecting",
    attempts: 1,
    lastError: "johnny-five board did not report ready within 1000 ms",
  });
  timers.advance(1000);
  assert.is(p.opens, 2);
  answer(p.latest().io);
  await settle();
  assert.is(roles.health().board?.state, "connected");
  await roles.stop();
});

test("a board missing at boot: roles start when it first answers, relay first", async () => {
  const { timers, p, roles } = await rig({ readyOnStart: false });
  assert.equal(roles.health().roles.relay, {
    state: "disconnected",
    lastError: "johnny-five board did not report ready within 1000 ms",
  });
  assert.is(roles.health().board?.state, "reconnecting");
  timers.advance(500);
  const back = p.latest();
  answer(back.io);
  for (let i = 0; i < 5; i++) await settle();
  assert.is(back.calls[0], `write ${PINS.relay} 0`);
  assert.is(roles.health().roles.relay?.state, "ok");
  assert.ok(roles.unlock());
  await roles.stop();
});

test("the board's link fits the telemetry message", async () => {
  const { p, roles } = await rig();
  p.first.io.emit("close");
  const h = roles.health();
  const gpio = { backend: h.backend, state: h.state, board: h.board };
  assert.ok(TelemetrySchema.shape.gpio.safeParse(gpio).success);
  assert.equal(gpio.board, { state: "reconnecting", attempts: 0, lastError: "close" });
  await roles.stop();
});

test.run();
