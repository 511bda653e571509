/**
 * The GpioRoles composite on the simulated backend, as the daemon and the
 * `npm start` site use it: start order, telemetry health, the panel, the
 * self-test, and a clean stop.
 */
import pino from "pino";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { parseGpioConfig } from "../../src/hardware/gpio/config.ts";
import { GpioRoles } from "../../src/hardware/gpio/gpio-roles.ts";
import { SimulatedGpio } from "../../src/hardware/gpio/simulated.ts";
import { FakeTimers } from "../fake-timers.ts";

const logger = pino({ level: "silent" });

const CONFIG = {
  backend: "simulated",
  relay: { line: { bcm: 17 }, pulseMs: 2000 },
  led: { line: { bcm: 18 } },
  buzzer: { line: { bcm: 22 } },
  button: { line: { bcm: 27 } },
} as const;

async function rig(sim = new SimulatedGpio(), timers = new FakeTimers()) {
  let presses = 0;
  const roles = new GpioRoles({
    config: parseGpioConfig(CONFIG),
    backend: sim,
    timers,
    logger,
    now: timers.now,
    onCallStaff: () => presses++,
    deenergiseOnExit: false,
  });
  await roles.start();
  return { sim, timers, roles, panel: roles.panel(), presses: () => presses };
}

test("BCM lines land at 512 + n on the simulated backend, and the relay is set up before any other role", async () => {
  const timers = new FakeTimers();
  const { sim, roles } = await rig(new SimulatedGpio({ now: timers.now }), timers);
  assert.equal(roles.lines, { relay: 529, led: 530, buzzer: 534, button: 539 });
  assert.equal(
    sim.history().map((c) => [c.line, c.level]),
    [
      [529, 0],
      [530, 0],
      [534, 0],
    ],
    "relay first, all outputs come up off",
  );
  await roles.stop();
});

test("health: every configured role is ok with its line; unconfigured roles are absent", async () => {
  const { roles } = await rig();
  assert.equal(roles.health(), {
    backend: "simulated",
    state: "ok",
    roles: {
      relay: { state: "ok", line: 529 },
      led: { state: "ok", line: 530 },
      buzzer: { state: "ok", line: 534 },
      button: { state: "ok", line: 539 },
    },
  });
  await roles.stop();
  const partial = new GpioRoles({
    config: parseGpioConfig({ backend: "simulated", led: { line: { bcm: 18 } } }),
    backend: new SimulatedGpio(),
    timers: new FakeTimers(),
    logger,
  });
  await partial.start();
  assert.equal(Object.keys(partial.health().roles), ["led"]);
  assert.not.ok(partial.unlock(), "no relay configured: nothing unlocks");
  partial.beep();
  await partial.stop();
});

test("the panel drives the simulated kiosk: a press reaches ops, the door unlocks, the LED and buzzer are seen", async () => {
  const { panel, roles, timers, presses } = await rig();
  panel.pressButton();
  timers.advance(50);
  panel.releaseButton();
  timers.advance(50);
  assert.is(presses(), 1);
  assert.ok(roles.unlock());
  assert.ok(panel.relayEnergised());
  timers.advance(2000);
  assert.not.ok(panel.relayEnergised());
  roles.status("idle");
  assert.ok(panel.ledLit());
  roles.beep();
  assert.ok(panel.buzzerSounding());
  timers.advance(80);
  assert.not.ok(panel.buzzerSounding());
  assert.equal(
    panel.history("relay").map((c) => c.on),
    [false, true, false],
  );
  await roles.stop();
});

test("self-test blinks the LED, chirps the buzzer, reads the button, and does not pulse the relay", async () => {
  const { roles, timers, panel } = await rig();
  const running = roles.selfTest();
  timers.advance(1000);
  assert.equal(await running, {
    led: { ok: true, detail: "blinked, read back" },
    buzzer: { ok: true, detail: "chirped" },
    button: { ok: true, detail: "reads released" },
    relay: { ok: true, detail: "not pulsed (pulseRelay: true pulses it); reads de-energised" },
  });
  assert.equal(
    panel.history("led").map((c) => c.on),
    [false, true, false, true, false],
  );
  assert.equal(
    panel.history("buzzer").map((c) => c.on),
    [false, true, false],
  );
  assert.equal(
    panel.history("relay").map((c) => c.on),
    [false],
    "the door never opened",
  );
  await roles.stop();
});

test("self-test during a check-in's unlock: the relay reads energised as it should, and is not pulsed again", async () => {
  const { roles, timers, panel } = await rig();
  roles.unlock();
  const running = roles.selfTest();
  timers.advance(1000);
  assert.equal((await running).relay, { ok: true, detail: "unlocking (a check-in's pulse); reads energised" });
  assert.equal(
    panel.history("relay").map((c) => c.on),
    [false, true],
    "one pulse: the check-in's",
  );
  await roles.stop();
});

test("self-test with pulseRelay pulses the relay for its pulseMs; the LED resumes its pattern", async () => {
  const { roles, timers, panel } = await rig();
  roles.status("idle");
  const running = roles.selfTest({ pulseRelay: true });
  timers.advance(1999);
  assert.ok(panel.relayEnergised());
  timers.advance(1);
  const result = await running;
  assert.equal(result.relay, { ok: true, detail: "pulsed, read back on then off" });
  assert.not.ok(panel.relayEnergised());
  assert.ok(panel.ledLit(), "back to idle after the blink");
  await roles.stop();
});

test("self-test reports a held button and a role that failed to start", async () => {
  const sim = new SimulatedGpio();
  await sim.output(534, { initial: 0 }); // something else holds the buzzer's line
  const { roles, timers, panel } = await rig(sim);
  panel.pressButton();
  const running = roles.selfTest();
  timers.advance(1000);
  const result = await running;
  assert.equal(result.button, { ok: false, detail: "reads pressed: held, stuck, or activeLow set wrong" });
  assert.equal(result.buzzer, { ok: false, detail: "simulated line 534 is already in use" });
  assert.equal(roles.health().roles.buzzer, {
    state: "disconnected",
    lastError: "simulated line 534 is already in use",
    line: 534,
  });
  assert.is(roles.health().roles.relay?.state, "ok", "the others run");
  await roles.stop();
});

test("stop leaves every output off, no timer running, and every role disconnected", async () => {
  const { roles, timers, panel } = await rig();
  roles.status("busy");
  roles.refuse();
  roles.unlock();
  panel.pressButton();
  timers.advance(10);
  await roles.stop();
  assert.not.ok(panel.relayEnergised());
  assert.not.ok(panel.ledLit());
  assert.not.ok(panel.buzzerSounding());
  assert.is(timers.pending, 0);
  for (const h of Object.values(roles.health().roles)) assert.is(h.state, "disconnected");
});

test.run();
