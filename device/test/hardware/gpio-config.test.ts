/**
 * The `gpio` config section and backend choice: errors name the field and the
 * form expected; a machine without GPIO gets the simulated backend and says so.
 */
import pino from "pino";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { GpioConfigError, type Level } from "../../src/hardware/gpio/backend.ts";
import { type GpioConfigInput, PIN_FORMS, parseGpioConfig } from "../../src/hardware/gpio/config.ts";
import { createGpioBackend } from "../../src/hardware/gpio/factory.ts";
import { GpioRoles } from "../../src/hardware/gpio/gpio-roles.ts";
import { OnoffGpio, type OnoffLine, type OnoffModule } from "../../src/hardware/gpio/onoff.ts";
import { SimulatedGpio } from "../../src/hardware/gpio/simulated.ts";
import { FakeTimers } from "../fake-timers.ts";

function message(json: unknown): string {
  try {
    parseGpioConfig(json);
  } catch (err) {
    assert.instance(err, GpioConfigError);
    return (err as Error).message;
  }
  assert.unreachable(`${JSON.stringify(json)} should be refused`);
  return "";
}

test("defaults: backend auto, /sys/class/gpio, button active-low with 50 ms debounce, relay 3000 ms active-high", () => {
  const c = parseGpioConfig({ relay: { line: { bcm: 17 } }, button: { line: { bcm: 27 } } });
  assert.equal(c, {
    backend: "auto",
    sysfsRoot: "/sys/class/gpio",
    chardevDir: "/dev",
    deviceTreeModel: "/proc/device-tree/model",
    relay: { line: { bcm: 17 }, activeLow: false, pulseMs: 3000 },
    button: { line: { bcm: 27 }, activeLow: true, debounceMs: 50 },
  });
  assert.equal(
    parseGpioConfig(undefined),
    { backend: "auto", sysfsRoot: "/sys/class/gpio", chardevDir: "/dev", deviceTreeModel: "/proc/device-tree/model" },
    "no gpio section: no roles",
  );
});

test("errors name the field and the expected form", () => {
  const cases: Array<[unknown, string]> = [
    [{ relay: { line: { bcm: 17 }, pulseMs: 50 } }, "gpio.relay.pulseMs: expected an integer 100..30000"],
    [{ relay: { line: { bcm: 17 }, pulseMs: "3s" } }, "gpio.relay.pulseMs: expected an integer 100..30000"],
    [{ button: { line: { bcm: 27 }, debounceMs: 0 } }, "gpio.button.debounceMs: expected an integer 1..1000"],
    [{ relay: { line: { bcm: 60 } } }, "gpio.relay.line.bcm: expected an integer 0..57"],
    [{ led: { line: 18 } }, `gpio.led.line: ${PIN_FORMS}`],
    [{ led: { line: { bcm: 18, global: 530 } } }, `gpio.led.line: ${PIN_FORMS}`],
    [{ buzzer: { line: { bcm: 22 }, activeLow: "yes" } }, "gpio.buzzer.activeLow: expected true or false"],
    [
      { backend: "gpiod" },
      'gpio.backend: expected one of "auto", "chardev", "onoff", "sysfs", "simulated", "johnny-five"',
    ],
    [
      { led: { line: 18 } },
      'gpio.led.line: expected { bcm: 0..57 }, { global: <sysfs GPIO number> }, { chip: "<label or gpiochipN>", offset: <n> }, { name: "<line name>" } or { firmata: <board pin 0..127> }',
    ],
    [
      { backend: "sysfs", button: { line: { name: "GPIO27" } } },
      'gpio.button.line: expected { bcm: n }, { global: n } or { chip, offset }: { name } lines need backend "chardev" or "auto"',
    ],
    [
      { backend: "chardev", relay: { line: { global: 529 } } },
      "gpio.relay.line: expected { bcm: n }, { chip, offset } or { name }: { global } is a sysfs number",
    ],
    [{ relay: { line: { bcm: 17 }, pulseMS: 3000 } }, 'gpio.relay: Unrecognized key: "pulseMS"'],
    [
      { led: { line: { firmata: 13 } } },
      'gpio.led.line: expected { bcm: n } or { global: n }: { firmata } pins need backend "johnny-five"',
    ],
    [
      { backend: "johnny-five", led: { line: { bcm: 18 } } },
      'gpio.johnnyFive: expected { path: "/dev/ttyACM0" } for backend "johnny-five"; gpio.led.line: expected { firmata: <board pin> } on a johnny-five board',
    ],
  ];
  for (const [json, expected] of cases) assert.is(message(json), expected, JSON.stringify(json));
});

test("two roles on one line are refused at start, naming both fields", async () => {
  const timers = new FakeTimers();
  const roles = new GpioRoles({
    config: parseGpioConfig({ backend: "simulated", relay: { line: { bcm: 17 } }, led: { line: { global: 529 } } }),
    backend: new SimulatedGpio(),
    timers,
    logger: pino({ level: "silent" }),
  });
  try {
    await roles.start();
    assert.unreachable();
  } catch (err) {
    assert.instance(err, GpioConfigError);
    assert.is((err as Error).message, "gpio.led.line: { global: 529 } is line 529, already used by gpio.relay.line");
  }
});

/** A logger whose JSON lines land in `lines`. */
function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: "info" }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  return { logger, lines };
}

/** An onoff stand-in recording what the daemon asked of it. */
function fakeOnoff(accessible: boolean) {
  const opened: Array<{ gpio: number; direction: string; edge?: string; activeLow?: boolean }> = [];
  const unexported: number[] = [];
  const watchers = new Map<number, (err: Error | null | undefined, value: Level) => void>();
  const levels = new Map<number, Level>();
  class Gpio implements OnoffLine {
    static readonly accessible = accessible;
    constructor(
      readonly gpio: number,
      direction: string,
      edge?: string,
      options?: { activeLow?: boolean },
    ) {
      opened.push({ gpio, direction, edge, activeLow: options?.activeLow });
      if (direction === "high" || direction === "low") levels.set(gpio, direction === "high" ? 1 : 0);
    }
    readSync(): Level {
      return levels.get(this.gpio) ?? 0;
    }
    writeSync(value: Level): void {
      levels.set(this.gpio, value);
    }
    watch(cb: (err: Error | null | undefined, value: Level) => void): void {
      watchers.set(this.gpio, cb);
    }
    unwatchAll(): void {
      watchers.delete(this.gpio);
    }
    unexport(): void {
      this.unwatchAll();
      unexported.push(this.gpio);
    }
  }
  const onoff = { Gpio } as unknown as OnoffModule;
  return { onoff, opened, unexported, watchers, levels };
}

const sim = (c: GpioConfigInput) => parseGpioConfig(c);

test("auto on a machine without GPIO (no chardev, Gpio.accessible false): the simulated backend, and a warning that says why", async () => {
  const { logger, lines } = capture();
  const { onoff } = fakeOnoff(false);
  const noPi = { chardevDir: "/nonexistent-dev", deviceTreeModel: "/nonexistent-model" };
  const backend = await createGpioBackend(sim({ ...noPi, relay: { line: { bcm: 17 } } }), {
    timers: new FakeTimers(),
    logger,
    loadOnoff: async () => onoff,
  });
  assert.instance(backend, SimulatedGpio);
  assert.is(
    backend.describe(),
    "simulated (no GPIO character device opens (/nonexistent-dev: ENOENT); sysfs GPIO is not usable (Gpio.accessible is false: /sys/class/gpio/export cannot be opened for writing))",
  );
  const said = lines.find((l) => l.backend === "simulated");
  assert.ok(said, "logged at start");
  assert.is(said.level, 40, "as a warning");
  assert.match(String(said.msg), "GPIO backend: simulated (no GPIO character device opens");
  assert.match(String(said.reason), "Gpio.accessible is false");
});

test("auto when onoff cannot even load (no epoll addon): simulated, with the load error as the reason", async () => {
  const { logger, lines } = capture();
  const backend = await createGpioBackend(sim({ chardevDir: "/nonexistent-dev", sysfsRoot: "/nonexistent-sys" }), {
    timers: new FakeTimers(),
    logger,
    loadOnoff: async () => {
      throw new Error("Cannot find module 'epoll'");
    },
  });
  assert.instance(backend, SimulatedGpio);
  assert.match(
    String(lines.find((l) => l.backend === "simulated")?.reason),
    "onoff cannot be loaded: Cannot find module 'epoll'",
  );
});

test("backend onoff asked for explicitly on a machine without GPIO is a config error, not a silent simulation", async () => {
  const { onoff } = fakeOnoff(false);
  try {
    await createGpioBackend(sim({ backend: "onoff" }), {
      timers: new FakeTimers(),
      logger: capture().logger,
      loadOnoff: async () => onoff,
    });
    assert.unreachable();
  } catch (err) {
    assert.instance(err, GpioConfigError);
    assert.match((err as Error).message, 'gpio.backend is "onoff" but no GPIO on this machine');
  }
});

test("auto with GPIO: onoff; the relay is exported straight into its inactive level, physical values", async () => {
  const fake = fakeOnoff(true);
  const { logger, lines } = capture();
  const config = sim({
    sysfsRoot: "/nonexistent",
    relay: { line: { global: 529 } },
    led: { line: { global: 530 }, activeLow: true },
  });
  const backend = await createGpioBackend(config, {
    timers: new FakeTimers(),
    logger,
    loadOnoff: async () => fake.onoff,
  });
  assert.instance(backend, OnoffGpio);
  assert.ok(lines.some((l) => l.backend === "onoff" && l.level === 30));
  // no chips under sysfsRoot, so global numbers are taken as written
  const timers = new FakeTimers();
  const roles = new GpioRoles({ config, backend, timers, logger: pino({ level: "silent" }), deenergiseOnExit: false });
  await roles.start();
  assert.equal(fake.opened, [
    { gpio: 529, direction: "low", edge: "none", activeLow: false },
    { gpio: 530, direction: "high", edge: "none", activeLow: false },
  ]);
  await roles.stop();
  assert.equal(fake.unexported, [], "outputs are not unexported on stop");
  assert.is(fake.levels.get(529), 0);
});

test('onoff backend: an active-low relay exports "high"; a button input is watched on both edges and unexported on stop', async () => {
  const fake = fakeOnoff(true);
  const backend = new OnoffGpio({ onoff: fake.onoff, sysfsRoot: "/nonexistent" });
  const timers = new FakeTimers();
  let presses = 0;
  const roles = new GpioRoles({
    config: sim({
      backend: "onoff",
      sysfsRoot: "/nonexistent",
      relay: { line: { global: 529 }, activeLow: true },
      button: { line: { global: 539 } },
    }),
    backend,
    timers,
    logger: pino({ level: "silent" }),
    onCallStaff: () => presses++,
    deenergiseOnExit: false,
  });
  fake.levels.set(539, 1); // pulled up, not pressed
  await roles.start();
  assert.equal(fake.opened[0], { gpio: 529, direction: "high", edge: "none", activeLow: false });
  assert.equal(fake.opened[1], { gpio: 539, direction: "in", edge: "both", activeLow: false });
  fake.watchers.get(539)?.(null, 0);
  timers.advance(50);
  assert.is(presses, 1);
  await roles.stop();
  assert.equal(fake.unexported, [539]);
  assert.is(timers.pending, 0);
});

test.run();
