/**
 * The gpiod tools driver (gpiod-tools.ts) as processes: against fake tools
 * (gpio-fake-gpiod.ts: scripts that print what libgpiod 1.6.3's do and keep
 * line levels and holders in files), and against the real Debian tools on
 * this machine, which has no GPIO chips. Real time here: the tools are real
 * processes; every wait is on a condition, with a timeout.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { ChardevGpio } from "../../src/hardware/gpio/chardev.ts";
import { parseGpioConfig } from "../../src/hardware/gpio/config.ts";
import { GpioRoles } from "../../src/hardware/gpio/gpio-roles.ts";
import { GpiodTools, parseGpiodetect, parseGpioinfo } from "../../src/hardware/gpio/gpiod-tools.ts";
import { realTimers } from "../../src/timers.ts";
import { createFakeGpiod, type FakeGpiod, realTool } from "./gpio-fake-gpiod.ts";

const logger = pino({ level: "silent" });

let dir: string;
let fake: FakeGpiod;

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), "paylane-gpiod-"));
  fake = await createFakeGpiod(dir, [
    { label: "pinctrl-bcm2711", lines: 32, names: { 17: "GPIO17", 18: "GPIO18", 27: "GPIO27" } },
    { label: "raspberrypi-exp-gpio", lines: 8, names: { 0: "BT_ON" } },
  ]);
});

test.after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function waitFor(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  for (let waited = 0; !(await check()); waited += 20) {
    if (waited >= timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test("gpiodetect and gpioinfo output (libgpiod 1.6.3's format) is read into chips and line holders", () => {
  assert.equal(
    parseGpiodetect("gpiochip0 [pinctrl-bcm2711] (58 lines)\ngpiochip1 [raspberrypi-exp-gpio] (8 lines)\n"),
    [
      { name: "gpiochip0", label: "pinctrl-bcm2711", lines: 58 },
      { name: "gpiochip1", label: "raspberrypi-exp-gpio", lines: 8 },
    ],
  );
  const info = [
    "gpiochip0 - 58 lines:",
    '\tline   0:     "ID_SDA"       unused   input  active-high ',
    '\tline  17:     "GPIO17"  "gpioset"  output  active-high [used]',
    "\tline  18:      unnamed     kernel   input  active-high [used]",
    '\tline  27: "a-very-long-line-name" "gpiomon" input active-high [used]',
  ].join("\n");
  assert.equal(parseGpioinfo(info), [
    { offset: 0, name: "ID_SDA", consumer: undefined, direction: "input" },
    { offset: 17, name: "GPIO17", consumer: "gpioset", direction: "output" },
    { offset: 18, name: undefined, consumer: "kernel", direction: "input" },
    { offset: 27, name: "a-very-long-line-name", consumer: "gpiomon", direction: "input" },
  ]);
});

test("roles through the tools: the relay held by gpioset at 0 then pulsed; a press through gpiomon; all let go on stop", async () => {
  let presses = 0;
  const timers = realTimers;
  const roles = new GpioRoles({
    config: parseGpioConfig({
      backend: "chardev",
      relay: { line: { bcm: 17 }, pulseMs: 100 },
      led: { line: { name: "GPIO18" } },
      button: { line: { chip: "pinctrl-bcm2711", offset: 27 } },
    }),
    backend: new ChardevGpio({ chardev: new GpiodTools({ timers, binDir: fake.binDir }), timers, logger }),
    timers,
    logger,
    onCallStaff: () => presses++,
    deenergiseOnExit: false,
  });
  await roles.start();
  try {
    assert.equal(roles.health().roles.relay, { state: "ok", line: 17, at: "gpiochip0 17" });
    assert.is((await fake.holder("gpiochip0", 17))?.tool, "gpioset");
    assert.is(await fake.level("gpiochip0", 17), "0");
    assert.is((await fake.holder("gpiochip0", 27))?.tool, "gpiomon");
    assert.is(await fake.level("gpiochip0", 27), "1", "read with its pull-up before it was watched");
    assert.ok(roles.unlock());
    await waitFor(async () => (await fake.level("gpiochip0", 17)) === "1", "relay energised");
    await waitFor(async () => (await fake.level("gpiochip0", 17)) === "0", "relay de-energised after pulseMs");
    assert.is((await fake.holder("gpiochip0", 17))?.tool, "gpioset", "still held after the level changes");
    await fake.drive("gpiochip0", 27, 0);
    await waitFor(() => presses === 1, "the press reported");
  } finally {
    await roles.stop();
  }
  assert.is(await fake.holder("gpiochip0", 17), undefined, "gpioset ended on stop");
  assert.is(await fake.holder("gpiochip0", 27), undefined, "gpiomon ended on stop");
});

test("a gpioset killed with SIGKILL: the role says so, and a new gpioset holds the line again at its level", async () => {
  const timers = realTimers;
  let changes = 0;
  const roles = new GpioRoles({
    config: parseGpioConfig({ backend: "chardev", led: { line: { bcm: 18 } } }),
    backend: new ChardevGpio({ chardev: new GpiodTools({ timers, binDir: fake.binDir }), timers, logger }),
    timers,
    logger,
    onChange: () => changes++,
    deenergiseOnExit: false,
  });
  await roles.start();
  try {
    roles.status("idle"); // steady on
    await waitFor(async () => (await fake.level("gpiochip0", 18)) === "1", "LED on");
    const first = await fake.holder("gpiochip0", 18);
    assert.ok(first);
    process.kill(first.pid, "SIGKILL");
    await waitFor(() => roles.health().roles.led?.state === "degraded", "the LED role degraded");
    assert.match(
      String(roles.health().roles.led?.lastError),
      "gpiochip0 18: gpioset exited (killed by SIGKILL); restarting",
    );
    assert.ok(changes > 0, "health pushed");
    await waitFor(() => roles.health().roles.led?.state === "ok", "the LED role ok again");
    const second = await fake.holder("gpiochip0", 18);
    assert.is(second?.tool, "gpioset");
    assert.is.not(second?.pid, first.pid);
    assert.is(await fake.level("gpiochip0", 18), "1", "held again at the level it had");
  } finally {
    await roles.stop();
  }
});

test("a busy line is an error at start with gpiod's own words, not a silent no-op", async () => {
  const tools = new GpiodTools({ timers: realTimers, binDir: fake.binDir });
  const held = await tools.output({ chip: "gpiochip1", offset: 0 }, 1, () => {});
  try {
    await tools.output({ chip: "gpiochip1", offset: 0 }, 0, () => {});
    assert.unreachable("a second holder");
  } catch (err) {
    assert.is(
      (err as Error).message,
      "gpioset exited (code 1): gpioset: error setting the GPIO line values: Device or resource busy",
    );
  } finally {
    await held.release();
  }
  assert.is(await tools.find("BT_ON").then((r) => r && `${r.chip} ${r.offset}`), "gpiochip1 0");
  assert.is(await tools.find("NO_SUCH_LINE"), undefined);
});

test("the real gpiod tools on this machine (no GPIO chips): gpiodetect lists none, so the backend does not start", async () => {
  const detect = realTool("gpiodetect");
  assert.equal(detect, { out: "", code: 0 }, "Debian's gpiodetect, no chips");
  const tools = new GpiodTools({ timers: realTimers });
  assert.equal(await tools.chips(), []);
  try {
    await new ChardevGpio({ chardev: tools, timers: realTimers }).start();
    assert.unreachable();
  } catch (err) {
    assert.is((err as Error).message, "no GPIO chips: gpiodetect lists none");
  }
  try {
    await tools.output({ chip: "gpiochip0", offset: 17 }, 0, () => {});
    assert.unreachable();
  } catch (err) {
    assert.is(
      (err as Error).message,
      "gpioset exited (code 1): gpioset: error setting the GPIO line values: No such file or directory",
    );
  }
});

test.run();
