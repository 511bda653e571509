/**
 * Status LED patterns and buzzer sounds, measured from the simulated line's
 * level history on the fake clock: what a person standing at the kiosk sees
 * and hears.
 */
import pino from "pino";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { BUZZER_SOUNDS, Buzzer } from "../../src/hardware/gpio/buzzer.ts";
import { SimulatedGpio } from "../../src/hardware/gpio/simulated.ts";
import { LED_PATTERNS, type LedPattern, StatusLed } from "../../src/hardware/gpio/status-led.ts";
import { FakeTimers } from "../fake-timers.ts";

const LINE = 530;
const logger = pino({ level: "silent" });

/** The line's history as [on, ms] runs, from the first change up to `until`. */
function runs(sim: SimulatedGpio, until: Date, activeLow = false): Array<[boolean, number]> {
  const h = sim.history(LINE);
  return h.map((c, i) => {
    const end = h[i + 1]?.at ?? until;
    return [c.level === (activeLow ? 0 : 1), end.getTime() - c.at.getTime()] as [boolean, number];
  });
}

async function led(activeLow = false) {
  const timers = new FakeTimers();
  const sim = new SimulatedGpio({ now: timers.now });
  const unit = new StatusLed({ backend: sim, line: LINE, timers, logger, activeLow });
  await unit.start();
  return { timers, sim, unit };
}

/** Runs `pattern` for `ms` and returns the on/off runs after the initial "off" at start, up to `ms`. */
async function observe(pattern: LedPattern, ms: number): Promise<Array<[boolean, number]>> {
  const { timers, sim, unit } = await led();
  unit.set(pattern);
  timers.advance(ms);
  const r = runs(sim, timers.now()).slice(1);
  // the step that begins exactly at `ms` has not lasted yet
  if (r.at(-1)?.[1] === 0) r.pop();
  return r;
}

test("busy blinks fast: on 100 ms, off 100 ms, repeating", async () => {
  const r = await observe("busy", 400);
  assert.equal(r, [
    [true, 100],
    [false, 100],
    [true, 100],
    [false, 100],
  ]);
});

test("offline double-blinks every 1.5 s: on 150, off 150, on 150, off 1050", async () => {
  const r = await observe("offline", 3000);
  assert.equal(r, [
    [true, 150],
    [false, 150],
    [true, 150],
    [false, 1050],
    [true, 150],
    [false, 150],
    [true, 150],
    [false, 1050],
  ]);
});

test("fault flashes SOS (dots 150, dashes 450) every 5.1 s", async () => {
  const r = await observe("fault", 5100);
  const flashes = r.filter(([on]) => on).map(([, ms]) => ms);
  assert.equal(flashes, [150, 150, 150, 450, 450, 450, 150, 150, 150]);
  assert.equal(r.at(-1), [false, 1050], "a long pause before it repeats");
  assert.is(
    r.reduce((sum, [, ms]) => sum + ms, 0),
    5100,
  );
});

test("every repeating pattern plays exactly its documented sequence", async () => {
  for (const pattern of ["busy", "offline", "fault"] as const) {
    const steps = LED_PATTERNS[pattern];
    const period = steps.reduce((sum, [, ms]) => sum + ms, 0);
    const r = await observe(pattern, period * 2);
    assert.equal(
      r,
      [...steps, ...steps].map(([on, ms]) => [on, ms]),
      pattern,
    );
  }
});

test("idle is steady on and off is steady off, with no timer running", async () => {
  const { timers, sim, unit } = await led();
  unit.set("idle");
  timers.advance(10_000);
  assert.is(sim.level(LINE), 1);
  assert.is(timers.pending, 0);
  unit.set("off");
  assert.is(sim.level(LINE), 0);
  assert.is(timers.pending, 0);
});

test("the patterns are told apart by their first period", () => {
  const keys = Object.values(LED_PATTERNS).map((steps) => JSON.stringify(steps));
  assert.is(new Set(keys).size, keys.length);
});

test("setting the pattern already showing does not restart it", async () => {
  const { timers, sim, unit } = await led();
  unit.set("busy");
  timers.advance(50);
  unit.set("busy");
  timers.advance(50);
  assert.is(sim.level(LINE), 0, "went off at 100 ms as if never re-set");
});

test("a pattern set before start shows at start; active-low lights on a low line", async () => {
  const timers = new FakeTimers();
  const sim = new SimulatedGpio({ now: timers.now });
  const unit = new StatusLed({ backend: sim, line: LINE, timers, logger, activeLow: true });
  unit.set("idle");
  assert.is(sim.level(LINE), undefined, "no I/O before start");
  await unit.start();
  assert.is(sim.level(LINE), 0);
});

test("stop turns the LED off and leaves no timer", async () => {
  const { timers, sim, unit } = await led();
  unit.set("busy");
  timers.advance(50);
  assert.is(sim.level(LINE), 1);
  await unit.stop();
  assert.is(sim.level(LINE), 0);
  assert.is(timers.pending, 0);
});

async function buzzer() {
  const timers = new FakeTimers();
  const sim = new SimulatedGpio({ now: timers.now });
  const unit = new Buzzer({ backend: sim, line: LINE, timers, logger });
  await unit.start();
  return { timers, sim, unit };
}

test("beep is one short 80 ms tone, and it ends off", async () => {
  const { timers, sim, unit } = await buzzer();
  unit.beep();
  timers.advance(2000);
  assert.equal(runs(sim, timers.now()).slice(1, -1), [[true, 80]]);
  assert.is(sim.level(LINE), 0);
  assert.is(timers.pending, 0);
});

test("refuse is two long tones (400 on, 150 off, 400 on), distinct from a beep", async () => {
  const { timers, sim, unit } = await buzzer();
  unit.refuse();
  timers.advance(2000);
  const refuse = runs(sim, timers.now()).slice(1, -1);
  assert.equal(refuse, [
    [true, 400],
    [false, 150],
    [true, 400],
  ]);
  assert.is.not(JSON.stringify(BUZZER_SOUNDS.refuse), JSON.stringify(BUZZER_SOUNDS.beep));
  assert.is(sim.level(LINE), 0);
});

test("a beep during a refusal cuts it and still ends off", async () => {
  const { timers, sim, unit } = await buzzer();
  unit.refuse();
  timers.advance(200);
  unit.beep();
  timers.advance(80);
  assert.is(sim.level(LINE), 0);
  timers.advance(2000);
  assert.is(sim.level(LINE), 0, "the rest of the refusal does not play");
});

test("stop mid-tone leaves the buzzer off with no timer; sounds before start do nothing", async () => {
  const { timers, sim, unit } = await buzzer();
  unit.refuse();
  timers.advance(100);
  assert.is(sim.level(LINE), 1);
  await unit.stop();
  assert.is(sim.level(LINE), 0);
  assert.is(timers.pending, 0);
  unit.beep();
  assert.is(sim.level(LINE), 0);
  assert.is(await unit.play("chirp"), false);
});

test.run();
