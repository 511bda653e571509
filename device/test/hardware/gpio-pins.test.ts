/**
 * Config pins to kernel GPIO numbers, against sysfs-shaped trees of the boards
 * and kernels we ship on, and the sysfs backend's file protocol.
 */
import { access, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { GpioConfigError, type Level, type PinSpec } from "../../src/hardware/gpio/backend.ts";
import { readGpioChips, resolveSysfsLine } from "../../src/hardware/gpio/pins.ts";
import { SysfsGpio } from "../../src/hardware/gpio/sysfs.ts";
import { FakeTimers } from "../fake-timers.ts";
import { createFakeSysfs, type FakeChip, PI4_KERNEL_6_1, PI4_KERNEL_6_6, PI5_KERNEL_6_6 } from "./fake-sysfs.ts";

const PI3_KERNEL_6_6: FakeChip[] = [{ base: 512, ngpio: 54, label: "pinctrl-bcm2835" }];

let dir = "";
let n = 0;
test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), "paylane-gpio-pins-"));
});
test.after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function tree(chips: readonly FakeChip[], lines: number[] = []): Promise<string> {
  const root = join(dir, `sys-${++n}`);
  await createFakeSysfs(root, { chips, lines });
  return root;
}

async function failure(spec: PinSpec, root: string, field = "gpio.relay.line"): Promise<string> {
  try {
    await resolveSysfsLine(spec, field, root);
  } catch (err) {
    assert.instance(err, GpioConfigError);
    return (err as Error).message;
  }
  assert.unreachable(`${JSON.stringify(spec)} should not resolve`);
  return "";
}

test("Pi 4 on kernel 6.6+: the header chip's base is 512, so BCM 17 is 529", async () => {
  const root = await tree(PI4_KERNEL_6_6);
  assert.is(await resolveSysfsLine({ bcm: 17 }, "gpio.relay.line", root), 529);
  assert.is(await resolveSysfsLine({ bcm: 0 }, "gpio.relay.line", root), 512);
  assert.is(await resolveSysfsLine({ global: 529 }, "gpio.relay.line", root), 529);
});

test("Pi 4 on an older kernel: base 0, BCM 17 is 17", async () => {
  const root = await tree(PI4_KERNEL_6_1);
  assert.is(await resolveSysfsLine({ bcm: 17 }, "gpio.relay.line", root), 17);
  assert.is(await resolveSysfsLine({ global: 17 }, "gpio.relay.line", root), 17);
});

test("Pi 5: the header is on the RP1 chip (base 571), not the first chip listed (512)", async () => {
  const root = await tree(PI5_KERNEL_6_6);
  assert.is(await resolveSysfsLine({ bcm: 17 }, "gpio.relay.line", root), 588);
});

test("Pi 3 (pinctrl-bcm2835, 54 lines): BCM 53 resolves, BCM 54 is refused with the range", async () => {
  const root = await tree(PI3_KERNEL_6_6);
  assert.is(await resolveSysfsLine({ bcm: 53 }, "gpio.led.line", root), 565);
  assert.is(
    await failure({ bcm: 54 }, root, "gpio.led.line"),
    "gpio.led.line: { bcm: 54 } is outside pinctrl-bcm2835 (BCM lines 0..53)",
  );
});

test("an old pre-6.6 number on a 6.6 kernel is refused, naming the field and the BCM form it probably meant", async () => {
  const root = await tree(PI4_KERNEL_6_6);
  assert.is(
    await failure({ global: 17 }, root),
    `gpio.relay.line: { global: 17 } is not on any GPIO chip under ${root} (pinctrl-bcm2711: 512..569; raspberrypi-exp-gpio: 570..577); kernels 6.6+ number lines from the chip base: did you mean { bcm: 17 } (= 529)?`,
  );
});

test("no Raspberry Pi chip (no GPIO, or another board): BCM cannot resolve, and the error says to give the global number", async () => {
  const missing = join(dir, "no-such-sysfs");
  assert.is(
    await failure({ bcm: 17 }, missing, "gpio.button.line"),
    `gpio.button.line: cannot resolve { bcm: 17 }: no Raspberry Pi GPIO chip (label pinctrl-rp1, pinctrl-bcm2711, pinctrl-bcm2835) under ${missing}; give the kernel's number as { global: <number> } instead`,
  );
  const other = await tree([{ base: 0, ngpio: 32, label: "gpio-mockup-A" }]);
  assert.match(await failure({ bcm: 17 }, other), "cannot resolve { bcm: 17 }");
  assert.is(
    await resolveSysfsLine({ global: 17 }, "gpio.relay.line", other),
    17,
    "a global number on a known chip is fine",
  );
  assert.is(
    await resolveSysfsLine({ global: 600 }, "gpio.relay.line", missing),
    600,
    "with no chips to check, taken as written",
  );
});

test("a Firmata pin on a sysfs backend is refused", async () => {
  const root = await tree(PI4_KERNEL_6_6);
  assert.match(await failure({ firmata: 13 }, root), "gpio.relay.line: { firmata: 13 } is a johnny-five board pin");
});

test("readGpioChips lists only gpiochipN entries with numeric attributes", async () => {
  const root = await tree(PI4_KERNEL_6_6, [529]);
  await mkdir(join(root, "gpiochip999"));
  await writeFile(join(root, "gpiochip999", "base"), "not a number\n");
  assert.equal(
    (await readGpioChips(root)).map((c) => [c.name, c.base, c.ngpio, c.label]),
    [
      ["gpiochip512", 512, 58, "pinctrl-bcm2711"],
      ["gpiochip570", 570, 8, "raspberrypi-exp-gpio"],
    ],
  );
});

/** Runs `work` while driving the fake clock; `each` runs every step (a kernel creating gpioN after export). */
async function drive<T>(timers: FakeTimers, work: Promise<T>, each?: () => Promise<void>): Promise<T> {
  let outcome: { ok: true; value: T } | { ok: false; err: unknown } | undefined;
  work.then(
    (value) => {
      outcome = { ok: true, value };
    },
    (err: unknown) => {
      outcome = { ok: false, err };
    },
  );
  // Fake time moves only while the backend is waiting on a timer; its file I/O is real and
  // may take many event-loop turns, so turns are counted only as a guard against a hang.
  for (let turns = 0; !outcome && turns < 1_000_000; turns++) {
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (timers.pending === 0) continue;
    await each?.();
    timers.advance(10);
  }
  if (!outcome) throw new Error("neither settled nor waiting on a timer");
  if (!outcome.ok) throw outcome.err;
  return outcome.value;
}

const file = (root: string, path: string) => readFile(join(root, path), "utf8").then((s) => s.trim());

test("sysfs backend: a line not yet exported is exported, then used once the kernel has made it writable", async () => {
  const root = await tree(PI4_KERNEL_6_6);
  const timers = new FakeTimers();
  const gpio = new SysfsGpio({ root, timers });
  let kernelSaw = "";
  const out = await drive(timers, gpio.output(530, { initial: 1 }), async () => {
    kernelSaw = await file(root, "export");
    // the "kernel" answers the export a few steps later, as udev does
    if (kernelSaw === "530") await createFakeSysfs(root, { chips: [], lines: [530] });
  });
  assert.is(kernelSaw, "530");
  assert.is(await file(root, "gpio530/direction"), "high");
  out.write(0);
  assert.is(await file(root, "gpio530/value"), "0");
  assert.is(out.read?.(), 0);
  out.release();
  assert.is(await file(root, "unexport"), "", "an output stays exported and driven");
});

test("sysfs backend: a line that never appears after export fails with the path named", async () => {
  const root = await tree(PI4_KERNEL_6_6);
  const timers = new FakeTimers();
  const gpio = new SysfsGpio({ root, timers, exportWaitMs: 100 });
  try {
    await drive(timers, gpio.output(531, { initial: 0 }));
    assert.unreachable();
  } catch (err) {
    assert.is((err as Error).message, `GPIO 531 was exported but ${root}/gpio531/value is not writable after 100 ms`);
  }
  await access(join(root, "export"));
});

test("sysfs backend: inputs are polled every 10 ms and only the watched edge is reported", async () => {
  const root = await tree(PI4_KERNEL_6_6, [532]);
  await writeFile(join(root, "gpio532/value"), "1");
  const timers = new FakeTimers();
  const gpio = new SysfsGpio({ root, timers });
  const input = await gpio.input(532, "falling");
  assert.is(await file(root, "gpio532/direction"), "in");
  const seen: Level[] = [];
  input.watch((level) => seen.push(level));
  await writeFile(join(root, "gpio532/value"), "0");
  timers.advance(9);
  assert.equal(seen, []);
  timers.advance(1);
  assert.equal(seen, [0]);
  await writeFile(join(root, "gpio532/value"), "1");
  timers.advance(10);
  assert.equal(seen, [0], "a rising edge is not reported to a falling watcher");
  input.release();
  assert.is(timers.pending, 0);
  assert.is(await file(root, "unexport"), "532");
});

test.run();
