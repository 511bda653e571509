/**
 * The call-staff button: a debounced press reaches ops exactly once per press,
 * whatever the contacts do in between.
 */
import pino from "pino";
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { Level } from "../../src/hardware/gpio/backend.ts";
import { CallStaffButton } from "../../src/hardware/gpio/button.ts";
import { SimulatedGpio } from "../../src/hardware/gpio/simulated.ts";
import { FakeTimers } from "../fake-timers.ts";

const LINE = 529;
const logger = pino({ level: "silent" });

async function rig(o: { activeLow?: boolean; debounceMs?: number; onPress?: () => void } = {}) {
  const timers = new FakeTimers();
  const sim = new SimulatedGpio({ now: timers.now });
  let presses = 0;
  const button = new CallStaffButton({
    backend: sim,
    line: LINE,
    timers,
    logger,
    activeLow: o.activeLow,
    debounceMs: o.debounceMs,
    onPress:
      o.onPress ??
      (() => {
        presses++;
      }),
  });
  await button.start();
  /** Drives the line through `levels`, `gapMs` apart: contact bounce. */
  const bounce = (levels: Level[], gapMs = 2) => {
    for (const level of levels) {
      sim.drive(LINE, level);
      timers.advance(gapMs);
    }
  };
  return { timers, sim, button, bounce, presses: () => presses };
}

test("a press with a bounce train is one press, reported once the line has settled for 50 ms", async () => {
  const { timers, bounce, presses } = await rig();
  bounce([0, 1, 0, 1, 0, 1, 0]); // ends pressed (active-low), 14 ms of bouncing
  assert.is(presses(), 0, "nothing while bouncing");
  timers.advance(47); // 49 ms since the last edge
  assert.is(presses(), 0, "not before the line has been stable for 50 ms");
  timers.advance(1);
  assert.is(presses(), 1);
  timers.advance(10_000);
  assert.is(presses(), 1);
});

test("holding the button down for a minute is still one press", async () => {
  const { timers, sim, presses, button } = await rig();
  sim.drive(LINE, 0);
  timers.advance(60_000);
  assert.is(presses(), 1);
  assert.ok(button.pressed);
  assert.is(timers.pending, 0, "no timer keeps running while held");
});

test("a contact glitch while the button is held down is not a second press", async () => {
  const { timers, sim, bounce, presses } = await rig();
  sim.drive(LINE, 0);
  timers.advance(500);
  bounce([1, 0]); // the finger slips for 2 ms
  timers.advance(500);
  assert.is(presses(), 1);
});

test("two real presses are two presses; the bouncy release between them is none", async () => {
  const { timers, bounce, presses } = await rig();
  bounce([0, 1, 0]);
  timers.advance(100);
  bounce([1, 0, 1, 0, 1]); // release, bouncing
  timers.advance(100);
  assert.is(presses(), 1);
  bounce([0, 1, 0, 1, 0]);
  timers.advance(100);
  assert.is(presses(), 2);
});

test("a glitch shorter than the debounce is not a press", async () => {
  const { timers, sim, presses } = await rig();
  sim.drive(LINE, 0);
  timers.advance(20);
  sim.drive(LINE, 1);
  timers.advance(1000);
  assert.is(presses(), 0);
});

test("debounceMs is configurable", async () => {
  const { timers, sim, presses } = await rig({ debounceMs: 200 });
  sim.drive(LINE, 0);
  timers.advance(199);
  assert.is(presses(), 0);
  timers.advance(1);
  assert.is(presses(), 1);
});

test("active-high: pressed is a high line, and the input idles low", async () => {
  const { timers, sim, presses } = await rig({ activeLow: false });
  assert.is(sim.level(LINE), 0, "idles at the pull-down");
  sim.drive(LINE, 1);
  timers.advance(50);
  assert.is(presses(), 1);
});

test("a button held down at start is not a press; the next press after releasing it is", async () => {
  const timers = new FakeTimers();
  const sim = new SimulatedGpio({ now: timers.now });
  sim.drive(LINE, 0);
  let presses = 0;
  const button = new CallStaffButton({ backend: sim, line: LINE, timers, logger, onPress: () => presses++ });
  await button.start();
  timers.advance(1000);
  assert.is(presses, 0);
  sim.drive(LINE, 1);
  timers.advance(100);
  sim.drive(LINE, 0);
  timers.advance(100);
  assert.is(presses, 1);
});

test("a handler that throws does not stop later presses", async () => {
  let calls = 0;
  const { timers, sim } = await rig({
    onPress: () => {
      calls++;
      throw new Error("ops alert failed");
    },
  });
  for (let i = 0; i < 2; i++) {
    sim.drive(LINE, 0);
    timers.advance(100);
    sim.drive(LINE, 1);
    timers.advance(100);
  }
  assert.is(calls, 2);
});

test("stop clears the debounce timer and releases the line: a press after stop is not reported", async () => {
  const { timers, sim, button, presses } = await rig();
  sim.drive(LINE, 0);
  await button.stop();
  assert.is(timers.pending, 0);
  timers.advance(100);
  sim.drive(LINE, 1);
  sim.drive(LINE, 0);
  timers.advance(100);
  assert.is(presses(), 0);
  assert.is(button.health.state, "disconnected");
});

test.run();
