/**
 * What gpio.backend "auto" picks, on folders made to look like a machine:
 * the character device where a /dev/gpiochip* opens, onoff/sysfs where export
 * is writable, a refusal on a Raspberry Pi where neither works (the daemon
 * itself does not start, and says why in one line), simulated elsewhere.
 */
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { GpioConfigError } from "../../src/hardware/gpio/backend.ts";
import { ChardevGpio } from "../../src/hardware/gpio/chardev.ts";
import { type GpioConfigInput, parseGpioConfig } from "../../src/hardware/gpio/config.ts";
import { createGpioBackend, type GpioBackendDeps } from "../../src/hardware/gpio/factory.ts";
import { OnoffGpio, type OnoffModule } from "../../src/hardware/gpio/onoff.ts";
import { SimulatedGpio } from "../../src/hardware/gpio/simulated.ts";
import { SysfsGpio } from "../../src/hardware/gpio/sysfs.ts";
import { FakeTimers } from "../fake-timers.ts";
import { createFakeSysfs, PI4_KERNEL_6_6 } from "./fake-sysfs.ts";
import { FakeChip } from "./gpio-fake-chip.ts";

const PI_MODEL = "Raspberry Pi 4 Model B Rev 1.4";
const root = join(import.meta.dirname, "..", "..", "..");

let dir: string;

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), "paylane-gpio-auto-"));
});

test.after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/**
 * A machine in folders: a device-tree model (a Pi or not), a /dev whose gpiochip0 cannot be
 * opened, and a sysfs GPIO folder with chips but no export (CONFIG_GPIO_SYSFS off, or read-only).
 */
async function machine(name: string, o: { pi: boolean; chipOpens?: boolean }) {
  const m = join(dir, name);
  await mkdir(join(m, "dev"), { recursive: true });
  if (o.pi) await writeFile(join(m, "model"), `${PI_MODEL}\0`);
  if (o.chipOpens) await writeFile(join(m, "dev", "gpiochip0"), "");
  else await symlink(join(m, "gone"), join(m, "dev", "gpiochip0"));
  await createFakeSysfs(join(m, "sys"), { chips: PI4_KERNEL_6_6 });
  await rm(join(m, "sys", "export"));
  return {
    gpio: { chardevDir: join(m, "dev"), sysfsRoot: join(m, "sys"), deviceTreeModel: join(m, "model") },
    dir: m,
  };
}

const onoffAccessible = (accessible: boolean) => async () => ({ Gpio: { accessible } }) as unknown as OnoffModule;

function deps(extra: Partial<GpioBackendDeps> = {}) {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino(
    { level: "info" },
    { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) },
  );
  return { lines, deps: { timers: new FakeTimers(), logger, loadOnoff: onoffAccessible(false), ...extra } };
}

const config = (c: GpioConfigInput) => parseGpioConfig({ relay: { line: { bcm: 17 } }, ...c });

test("a fake Pi with no chip that opens and no writable sysfs: auto refuses to start, in one line that says what to do", async () => {
  const { gpio, dir: m } = await machine("pi", { pi: true });
  try {
    await createGpioBackend(config(gpio), deps().deps);
    assert.unreachable("a Pi must not fall back to simulated GPIO");
  } catch (err) {
    assert.instance(err, GpioConfigError);
    const message = (err as Error).message;
    assert.is(
      message,
      `gpio.backend "auto": this is a ${PI_MODEL} but no GPIO backend works (no GPIO character device opens (${m}/dev/gpiochip0: ENOENT); ` +
        "sysfs GPIO is not usable (Gpio.accessible is false: /sys/class/gpio/export cannot be opened for writing)); " +
        'add the daemon\'s user to the "gpio" group (sudo usermod -aG gpio <user>) and restart it, ' +
        'or set gpio.backend to "simulated" to run this kiosk without GPIO on purpose',
    );
    assert.not.match(message, "\n");
  }
});

test('the same Pi with gpio.backend "simulated" set explicitly starts simulated, as asked', async () => {
  const { gpio } = await machine("pi-simulated", { pi: true });
  const backend = await createGpioBackend(config({ ...gpio, backend: "simulated" }), deps().deps);
  assert.instance(backend, SimulatedGpio);
  assert.is(backend.describe(), 'simulated (gpio.backend is "simulated")');
});

test("off a Pi, the same machine simulates and warns with every reason", async () => {
  const { gpio, dir: m } = await machine("laptop", { pi: false });
  const { lines, deps: d } = deps();
  const backend = await createGpioBackend(config(gpio), d);
  assert.instance(backend, SimulatedGpio);
  const warned = lines.find((l) => l.backend === "simulated");
  assert.is(warned?.level, 40);
  assert.match(String(warned?.reason), `no GPIO character device opens (${m}/dev/gpiochip0: ENOENT)`);
  assert.match(String(warned?.reason), "sysfs GPIO is not usable");
});

test("auto takes the character device where a gpiochip opens and the tools list chips, even on a Pi with sysfs", async () => {
  const { gpio } = await machine("pi-chardev", { pi: true, chipOpens: true });
  const { lines, deps: d } = deps({ chardev: new FakeChip(), loadOnoff: onoffAccessible(true) });
  const backend = await createGpioBackend(config(gpio), d);
  assert.instance(backend, ChardevGpio);
  assert.ok(lines.some((l) => l.backend === "chardev" && l.msg === "GPIO backend: chardev (fake chip)"));
});

test("a chip that opens but gpiod tools that fail: auto says so and uses sysfs (onoff) instead", async () => {
  const { gpio } = await machine("pi-no-tools", { pi: true, chipOpens: true });
  const broken = new FakeChip();
  broken.chips = async () => {
    throw new Error("gpiodetect not found: install Debian's gpiod package (apt install gpiod)");
  };
  const { deps: d } = deps({ chardev: broken, loadOnoff: onoffAccessible(true) });
  assert.instance(await createGpioBackend(config(gpio), d), OnoffGpio);
  // Without onoff's addon, plain sysfs where export is writable.
  const sysfs = join(dir, "pi-no-tools", "sys");
  await writeFile(join(sysfs, "export"), "");
  const { deps: d2 } = deps({
    chardev: broken,
    loadOnoff: async () => {
      throw new Error("Cannot find module 'epoll'");
    },
  });
  assert.instance(await createGpioBackend(config(gpio), d2), SysfsGpio);
});

test("the daemon on the fake Pi does not start: paylane-device exits 1 with the refusal as its one line", async () => {
  const { gpio } = await machine("pi-daemon", { pi: true });
  const dataDir = join(dir, "pi-daemon", "data");
  const configPath = join(dir, "pi-daemon", "kiosk.json");
  await writeFile(
    configPath,
    JSON.stringify({
      site: "s1",
      device: "k1",
      secret: "kit-secret-0123456789",
      mqttUrl: "mqtt://127.0.0.1:9",
      cloudUrl: "http://127.0.0.1:9",
      dataDir,
      reader: { type: "pn532-simulator" },
      gpio: { ...gpio, relay: { line: { bcm: 17 } } },
    }),
  );
  const child = spawn(
    process.execPath,
    ["--import", "tsx", join(root, "device", "src", "main.ts"), "--config", configPath],
    { cwd: root, env: { ...process.env, LOG_LEVEL: "silent" }, stdio: ["ignore", "pipe", "pipe"] },
  );
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (d: string) => {
    stderr += d;
  });
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  assert.is(code, 1);
  const said = stderr.trim().split("\n");
  assert.is(said.length, 1, stderr);
  assert.match(
    said[0] as string,
    `paylane-device: failed to start: gpio.backend "auto": this is a ${PI_MODEL} but no GPIO backend works`,
  );
  assert.match(said[0] as string, 'or set gpio.backend to "simulated" to run this kiosk without GPIO on purpose');
});

test.run();
