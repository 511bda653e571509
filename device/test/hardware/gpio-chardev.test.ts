/**
 * The character-device backend against an in-memory chip behind the `Chardev`
 * interface (gpio-fake-chip.ts): how config pins resolve, outputs held at
 * their level, the button's edges debounced, and a line whose holder dies
 * shown in the role's health and restarted with backoff. The last test runs
 * the roles on the kernel's gpio-sim chip where configfs allows it, and says
 * which it ran on.
 */
import { access, mkdir, readFile, rmdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { TelemetrySchema } from "@paylane/protocol";
import pino from "pino";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { GpioConfigError, type Level } from "../../src/hardware/gpio/backend.ts";
import { type Chardev, ChardevGpio } from "../../src/hardware/gpio/chardev.ts";
import { parseGpioConfig } from "../../src/hardware/gpio/config.ts";
import { GpioRoles } from "../../src/hardware/gpio/gpio-roles.ts";
import { GpiodTools } from "../../src/hardware/gpio/gpiod-tools.ts";
import type { PeripheralsHealth } from "../../src/peripherals.ts";
import type { ReplicaInfo } from "../../src/replica.ts";
import { kioskTelemetry } from "../../src/telemetry.ts";
import { realTimers, type Timers } from "../../src/timers.ts";
import { FakeTimers } from "../fake-timers.ts";
import { FakeChip } from "./gpio-fake-chip.ts";

const logger = pino({ level: "silent" });
const G0 = (offset: number) => ({ chip: "gpiochip0", offset });
/** Lets the backend's promise chains (a restart, a level being applied) run. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

const CONFIG = {
  backend: "chardev",
  relay: { line: { bcm: 17 }, pulseMs: 2000 },
  led: { line: { chip: "pinctrl-bcm2711", offset: 18 } },
  button: { line: { name: "GPIO27" } },
} as const;

async function rig(chip = new FakeChip(), timers = new FakeTimers()) {
  let presses = 0;
  let changes = 0;
  const backend = new ChardevGpio({ chardev: chip, timers, logger });
  const roles = new GpioRoles({
    config: parseGpioConfig(CONFIG),
    backend,
    timers,
    logger,
    now: timers.now,
    onCallStaff: () => presses++,
    onChange: () => changes++,
    deenergiseOnExit: false,
  });
  await roles.start();
  return { chip, timers, backend, roles, presses: () => presses, changes: () => changes };
}

test("{ bcm }, { chip: label, offset } and { name } all find their line on the Pi's chip; health says where", async () => {
  const { roles, chip } = await rig();
  assert.equal(roles.lines, { relay: 17, led: 18, button: 27 });
  assert.equal(roles.health().roles, {
    relay: { state: "ok", line: 17, at: "gpiochip0 17" },
    led: { state: "ok", line: 18, at: "gpiochip0 18" },
    button: { state: "ok", line: 27, at: "gpiochip0 27" },
  });
  assert.is(chip.holder(G0(17)), "output");
  assert.is(chip.holder(G0(27)), "monitor");
  assert.match(roles.health().backend, "chardev (fake chip)");
  await roles.stop();
  assert.is(chip.holder(G0(17)), undefined, "stop lets every line go");
  assert.is(chip.holder(G0(27)), undefined);
});

test("lines on a second chip are numbered chip × 1000 + offset; gpiochipN names work as the chip", async () => {
  const backend = new ChardevGpio({ chardev: new FakeChip(), timers: new FakeTimers() });
  await backend.start();
  assert.is(await backend.resolve({ chip: "raspberrypi-exp-gpio", offset: 2 }, "gpio.led.line"), 1002);
  assert.is(await backend.resolve({ chip: "gpiochip1", offset: 2 }, "gpio.led.line"), 1002);
  assert.is(await backend.resolve({ name: "BT_ON" }, "gpio.led.line"), 1000);
  assert.is(backend.describeLine(1002), "gpiochip1 2");
});

test("pins that cannot be found are refused with the field named and what to write instead", async () => {
  const backend = new ChardevGpio({ chardev: new FakeChip(), timers: new FakeTimers() });
  await backend.start();
  const refused = async (spec: Parameters<ChardevGpio["resolve"]>[0]) => {
    try {
      await backend.resolve(spec, "gpio.relay.line");
    } catch (err) {
      assert.instance(err, GpioConfigError);
      return (err as Error).message;
    }
    throw new Error(`${JSON.stringify(spec)} resolved`);
  };
  assert.is(
    await refused({ name: "GPIO99" }),
    'gpio.relay.line: { name: "GPIO99" }: no line has that name (gpioinfo lists each chip\'s line names)',
  );
  assert.is(
    await refused({ chip: "pinctrl-rp1", offset: 17 }),
    'gpio.relay.line: { chip: "pinctrl-rp1", offset: 17 }: no such chip among gpiochip0 [pinctrl-bcm2711] (58 lines), gpiochip1 [raspberrypi-exp-gpio] (8 lines)',
  );
  assert.is(
    await refused({ chip: "raspberrypi-exp-gpio", offset: 8 }),
    'gpio.relay.line: { chip: "raspberrypi-exp-gpio", offset: 8 } is outside gpiochip1 [raspberrypi-exp-gpio] (offsets 0..7)',
  );
  assert.match(
    await refused({ global: 529 }),
    "gpio.relay.line: { global: 529 }: the chardev backend takes { bcm: n }",
  );
  const noPi = new ChardevGpio({
    chardev: new FakeChip([{ label: "gpio-mockup-A", lines: 8 }]),
    timers: new FakeTimers(),
  });
  await noPi.start();
  try {
    await noPi.resolve({ bcm: 17 }, "gpio.relay.line");
    assert.unreachable();
  } catch (err) {
    assert.match((err as Error).message, "gpio.relay.line: cannot resolve { bcm: 17 }: no Raspberry Pi GPIO chip");
  }
});

test("the relay is held de-energised from its first moment and pulses for pulseMs", async () => {
  const { chip, roles, timers } = await rig();
  assert.equal(chip.log.slice(0, 2), ["gpiochip0 17=0", "gpiochip0 18=0"], "relay first, both off");
  assert.ok(roles.unlock());
  await settle();
  assert.is(chip.level(G0(17)), 1);
  timers.advance(1999);
  await settle();
  assert.is(chip.level(G0(17)), 1);
  timers.advance(1);
  await settle();
  assert.is(chip.level(G0(17)), 0);
  await roles.stop();
});

test("the button: gpiomon's edges, bouncing, are one debounced press", async () => {
  const { chip, roles, timers, presses } = await rig();
  assert.is(chip.level(G0(27)), 1, "read first with its pull-up: not pressed");
  for (const level of [0, 1, 0, 1, 0] as Level[]) chip.drive(G0(27), level);
  timers.advance(49);
  assert.is(presses(), 0);
  timers.advance(1);
  assert.is(presses(), 1);
  chip.drive(G0(27), 1);
  timers.advance(60);
  chip.drive(G0(27), 0);
  timers.advance(60);
  assert.is(presses(), 2);
  await roles.stop();
});

test("a holder that dies: the role shows it at once, it is restarted with backoff, and comes back at its level", async () => {
  const { chip, roles, timers, changes } = await rig();
  // The LED's idle pattern is steady on.
  roles.status("idle");
  await settle();
  assert.is(chip.level(G0(18)), 1);
  const before = changes();
  chip.kill(G0(18));
  assert.equal(roles.health().roles.led, {
    state: "degraded",
    lastError: "gpiochip0 18: gpioset exited (killed by SIGKILL); restarting",
    line: 18,
    at: "gpiochip0 18",
  });
  assert.ok(changes() > before, "health pushed at once");
  // Someone else holds it for a while: each retry waits longer (100, 200, 400 ms…).
  chip.takeByOther(G0(18));
  timers.advance(100);
  await settle();
  assert.match(String(roles.health().roles.led?.lastError), "Device or resource busy; restarting");
  chip.free(G0(18));
  timers.advance(199);
  await settle();
  assert.is(chip.holder(G0(18)), undefined, "not before the backoff");
  timers.advance(1);
  await settle();
  assert.is(chip.holder(G0(18)), "output");
  assert.is(chip.level(G0(18)), 1, "back at the level last asked for");
  assert.equal(roles.health().roles.led, { state: "ok", line: 18, at: "gpiochip0 18" });
  await roles.stop();
});

test("telemetry reads degraded with the dead line's error until it is held again", async () => {
  const { chip, roles, timers } = await rig();
  const telemetry = () =>
    kioskTelemetry({
      now: timers.now(),
      bootedAt: timers.now(),
      journal: { lastSeq: 0, ackedUpTo: 0, backlog: 0, conflicts: 0, oldestUnackedAt: null },
      replica: { version: 0, syncedAt: null } as ReplicaInfo,
      peripherals: {
        reader: {
          state: "ok",
          counters: { discarded: {}, nacksSent: 0, timeouts: 0, errorFrames: 0, reinits: 0, reconnects: 0, reads: 0 },
        },
        printer: null,
        gpio: roles.health(),
      } as unknown as PeripheralsHealth,
      storage: "ok",
      payments: undefined,
    }).gpio;
  assert.equal(telemetry(), { backend: "chardev (fake chip)", state: "ok" });
  chip.kill(G0(27), "gpiomon exited (code 1)");
  const t = telemetry();
  assert.equal(t, {
    backend: "chardev (fake chip)",
    state: "degraded",
    lastError: "gpiochip0 27: gpiomon exited (code 1); restarting",
  });
  assert.ok(TelemetrySchema.shape.gpio.safeParse(t).success);
  timers.advance(100);
  await settle();
  assert.is(telemetry()?.state, "ok");
  await roles.stop();
});

test("a relay whose holder died mid-pulse: an unlock meanwhile is refused, and the line comes back de-energised", async () => {
  const { chip, roles, timers } = await rig();
  assert.ok(roles.unlock());
  await settle();
  chip.kill(G0(17));
  timers.advance(10);
  assert.not.ok(roles.unlock(), "no unlock (extending the pulse) is reported while the line is not held");
  assert.is(roles.health().roles.relay?.state, "degraded");
  timers.advance(100);
  await settle();
  assert.is(chip.holder(G0(17)), "output");
  assert.is(chip.level(G0(17)), 0, "not back at the pulse's level");
  timers.advance(5000);
  await settle();
  assert.is(chip.level(G0(17)), 0);
  await roles.stop();
});

test("a dead button monitor is restarted, and a press made while nobody watched is still seen", async () => {
  const { chip, roles, timers, presses } = await rig();
  chip.kill(G0(27), "gpiomon exited (code 1)");
  assert.is(roles.health().roles.button?.state, "degraded");
  chip.drive(G0(27), 0);
  timers.advance(100);
  await settle();
  assert.is(chip.holder(G0(27)), "monitor");
  timers.advance(50);
  assert.is(presses(), 1);
  assert.is(roles.health().roles.button?.state, "ok");
  await roles.stop();
  assert.is(timers.pending, 0, "no restart left behind");
});

/**
 * The kernel's gpio-sim chip (configfs), with the real gpiod tools: where this kernel has it.
 * Returns undefined (and why) where it does not.
 */
async function gpioSim(): Promise<
  | {
      chardev: Chardev;
      timers: Timers;
      drive(offset: number, level: Level): Promise<void>;
      read(offset: number): Promise<Level>;
      close(): Promise<void>;
    }
  | string
> {
  const configfs = "/sys/kernel/config";
  try {
    await access(configfs);
  } catch {
    return `${configfs} missing`;
  }
  const root = join(configfs, "gpio-sim");
  try {
    await access(root);
  } catch {
    return `${root} missing (modprobe gpio-sim)`;
  }
  const dev = join(root, `paylane-${process.pid}`);
  try {
    await mkdir(join(dev, "bank0"), { recursive: true });
    await writeFile(join(dev, "bank0", "label"), "pinctrl-bcm2711");
    await writeFile(join(dev, "bank0", "num_lines"), "58");
    await writeFile(join(dev, "live"), "1");
  } catch (err) {
    return `cannot create a gpio-sim chip: ${(err as Error).message}`;
  }
  const devName = (await readFile(join(dev, "dev_name"), "utf8")).trim();
  const chipName = (await readFile(join(dev, "bank0", "chip_name"), "utf8")).trim();
  const sim = (offset: number) => join("/sys/devices/platform", devName, chipName, `sim_gpio${offset}`);
  return {
    chardev: new GpiodTools({ timers: realTimers }),
    timers: realTimers,
    drive: (offset, level) => writeFile(join(sim(offset), "pull"), level ? "pull-up" : "pull-down"),
    read: async (offset) => ((await readFile(join(sim(offset), "value"), "utf8")).trim() === "1" ? 1 : 0),
    close: async () => {
      await writeFile(join(dev, "live"), "0");
      await rmdir(join(dev, "bank0"));
      await rmdir(dev);
    },
  };
}

test("on a simulated chip: the kernel's gpio-sim where configfs allows it, else the fake chip (and it says which)", async () => {
  const world = await gpioSim();
  if (typeof world === "string") {
    console.log(`gpio-sim not available: ${world}; ran against the fake chip`);
    const chip = new FakeChip();
    const timers = new FakeTimers();
    const { roles, presses } = await rig(chip, timers);
    assert.ok(roles.unlock());
    await settle();
    assert.is(chip.level(G0(17)), 1);
    chip.drive(G0(27), 0);
    timers.advance(50);
    assert.is(presses(), 1);
    await roles.stop();
    return;
  }
  console.log("gpio-sim available: ran against the kernel's gpio-sim chip with the real gpiod tools");
  let presses = 0;
  const roles = new GpioRoles({
    config: parseGpioConfig({ ...CONFIG, led: { line: { bcm: 18 } }, button: { line: { bcm: 27 } } }),
    backend: new ChardevGpio({ chardev: world.chardev, timers: world.timers, logger }),
    timers: world.timers,
    logger,
    onCallStaff: () => presses++,
    deenergiseOnExit: false,
  });
  try {
    await world.drive(27, 1);
    await roles.start();
    assert.is(await world.read(17), 0);
    assert.ok(roles.unlock());
    await waitFor(async () => (await world.read(17)) === 1, "relay energised");
    await world.drive(27, 0);
    await waitFor(async () => presses === 1, "button press seen");
  } finally {
    await roles.stop();
    await world.close();
  }
});

async function waitFor(check: () => Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  for (let waited = 0; !(await check()); waited += 20) {
    if (waited >= timeoutMs) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test.run();
