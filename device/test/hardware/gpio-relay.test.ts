/**
 * The door relay: a pulse lasts what it should, a second tap extends it, and
 * it is de-energised on stop and first thing on start, whatever state the
 * line was left in.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { GpioBackend, Level, OutputLine } from "../../src/hardware/gpio/backend.ts";
import { Relay } from "../../src/hardware/gpio/relay.ts";
import { SimulatedGpio } from "../../src/hardware/gpio/simulated.ts";
import { SysfsGpio } from "../../src/hardware/gpio/sysfs.ts";
import { FakeTimers } from "../fake-timers.ts";
import { createFakeSysfs, PI4_KERNEL_6_6 } from "./fake-sysfs.ts";

const LINE = 529;
const logger = pino({ level: "silent" });

async function rig(o: { activeLow?: boolean; pulseMs?: number } = {}) {
  const timers = new FakeTimers();
  const sim = new SimulatedGpio({ now: timers.now });
  const relay = new Relay({ backend: sim, line: LINE, timers, logger, now: timers.now, ...o });
  await relay.start();
  return { timers, sim, relay };
}

test("a pulse energises the relay for 3000 ms by default, then de-energises it", async () => {
  const { timers, sim, relay } = await rig();
  assert.ok(relay.pulse());
  assert.is(sim.level(LINE), 1);
  timers.advance(2999);
  assert.is(sim.level(LINE), 1);
  timers.advance(1);
  assert.is(sim.level(LINE), 0);
  assert.not.ok(relay.energised);
  assert.is(timers.pending, 0);
});

test("the pulse length is configurable", async () => {
  const { timers, sim, relay } = await rig({ pulseMs: 500 });
  relay.pulse();
  timers.advance(499);
  assert.is(sim.level(LINE), 1);
  timers.advance(1);
  assert.is(sim.level(LINE), 0);
});

test("a second pulse during a pulse extends it from now; a shorter one never cuts it", async () => {
  const { timers, sim, relay } = await rig();
  relay.pulse();
  timers.advance(2000);
  relay.pulse(); // now ends at 5000
  timers.advance(500);
  relay.pulse(500); // would end at 3000: ignored
  timers.advance(2499); // t = 4999
  assert.is(sim.level(LINE), 1);
  timers.advance(1);
  assert.is(sim.level(LINE), 0);
  const changes = sim.history(LINE).map((c) => c.level);
  assert.equal(changes, [0, 1, 0], "one continuous unlock, no flicker at the extension");
});

test("pulse lengths are bounds-checked: integer 100..30000 ms", async () => {
  const { relay, sim } = await rig();
  for (const bad of [99, 30_001, 1500.5, Number.NaN]) {
    assert.throws(() => relay.pulse(bad), /relay pulse: expected an integer 100\.\.30000 ms/);
  }
  assert.is(sim.level(LINE), 0);
  assert.throws(
    () => new Relay({ backend: sim, line: 1, timers: new FakeTimers(), logger, pulseMs: 50 }),
    /relay pulseMs: expected an integer 100\.\.30000 ms, got 50/,
  );
});

test("active-low: energised is a low line, and start drives it high", async () => {
  const { timers, sim, relay } = await rig({ activeLow: true });
  assert.is(sim.level(LINE), 1);
  relay.pulse();
  assert.is(sim.level(LINE), 0);
  timers.advance(3000);
  assert.is(sim.level(LINE), 1);
});

test("stop during a pulse de-energises at once and leaves no timer; a pulse after stop does nothing", async () => {
  const { timers, sim, relay } = await rig();
  relay.pulse();
  timers.advance(100);
  await relay.stop();
  assert.is(sim.level(LINE), 0);
  assert.is(timers.pending, 0);
  assert.not.ok(relay.pulse());
  assert.is(sim.level(LINE), 0);
});

test("start de-energises a line left energised (the process died mid-pulse) before anything else", async () => {
  const timers = new FakeTimers();
  const sim = new SimulatedGpio({ now: timers.now });
  // The first process's clock is never advanced again: it died, its pulse never ends.
  const dead = new FakeTimers();
  const first = new Relay({ backend: sim, line: LINE, timers: dead, logger, deenergiseOnExit: false });
  await first.start();
  first.pulse();
  await sim.stop(); // its lines are free, the latch still holds 1
  timers.advance(10_000);
  assert.is(sim.level(LINE), 1);

  const second = new Relay({ backend: sim, line: LINE, timers, logger, now: timers.now });
  await second.start();
  assert.is(sim.level(LINE), 0);
  const last = sim.history(LINE).at(-1);
  assert.equal(last && { level: last.level, at: last.at.getTime() }, { level: 0, at: timers.now().getTime() });
  await second.stop();
});

for (const activeLow of [false, true]) {
  const stuck = activeLow ? "0" : "1";
  const off = activeLow ? "1" : "0";
  test(`sysfs: a relay stuck energised (value ${stuck}) comes up as an output already at ${off} (activeLow ${activeLow})`, async () => {
    const root = await mkdtemp(join(tmpdir(), "paylane-gpio-relay-"));
    try {
      await createFakeSysfs(root, { chips: PI4_KERNEL_6_6, lines: [LINE] });
      await writeFile(join(root, `gpio${LINE}`, "value"), stuck);
      await writeFile(join(root, `gpio${LINE}`, "active_low"), "1"); // left over by another program
      const timers = new FakeTimers();
      const relay = new Relay({ backend: new SysfsGpio({ root, timers }), line: LINE, timers, logger, activeLow });
      await relay.start();
      const file = (f: string) => readFile(join(root, `gpio${LINE}`, f), "utf8").then((s) => s.trim());
      assert.is(await file("value"), off);
      assert.is(await file("direction"), activeLow ? "high" : "low", "exported straight into the inactive level");
      assert.is(await file("active_low"), "0", "levels are physical");
      assert.is(relay.readEnergised(), false);
      await relay.stop();
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
}

test("a failing write is reported: pulse returns false and the relay is degraded", async () => {
  let broken = false;
  const levels: Level[] = [];
  const line: OutputLine = {
    write: (level) => {
      if (broken) throw new Error("EIO");
      levels.push(level);
    },
    release: () => {},
  };
  const backend = { output: async () => line } as unknown as GpioBackend;
  const timers = new FakeTimers();
  const relay = new Relay({ backend, line: 1, timers, logger, deenergiseOnExit: false });
  await relay.start();
  broken = true;
  assert.not.ok(relay.pulse());
  assert.not.ok(relay.energised);
  assert.equal(relay.health, { state: "degraded", lastError: "EIO" });
  assert.is(timers.pending, 0);
  await relay.stop();
});

test("started, the relay de-energises on process exit; stopped, it has let go of the exit hook", async () => {
  const before = process.listenerCount("exit");
  const { relay } = await rig();
  assert.is(process.listenerCount("exit"), before + 1);
  await relay.stop();
  assert.is(process.listenerCount("exit"), before);
});

test.run();
