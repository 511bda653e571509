/**
 * A kiosk process that owns only the relay, on a sysfs-shaped folder of
 * ordinary files (fake-sysfs.ts) so its output "latch" outlives it — for the
 * kill -9 test in device/test/hardware/gpio-relay-crash.test.ts.
 *
 *   node --import tsx relay-crash-child.ts <root> [--pulse | --throw] [--active-low]
 *
 * Prints `ready value=<v>` right after the roles started (v = the relay's value
 * file), then:
 *   --pulse  unlocks (30 s pulse), prints `pulsing value=<v>` and waits to be killed;
 *   --throw  unlocks, prints `pulsing value=<v>`, then dies of an uncaught exception;
 *   neither  stops the roles, prints `stopped value=<v>` and exits 0.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import pino from "pino";
import { parseGpioConfig } from "../../src/hardware/gpio/config.ts";
import { GpioRoles } from "../../src/hardware/gpio/gpio-roles.ts";
import { SysfsGpio } from "../../src/hardware/gpio/sysfs.ts";
import { realTimers } from "../../src/timers.ts";
import { createFakeSysfs, PI4_KERNEL_6_6 } from "./fake-sysfs.ts";

/** BCM 17 on a Pi 4 with a 6.6+ kernel. */
const CRASH_CHILD_LINE = 529;

const [root, ...flags] = process.argv.slice(2);
if (!root) {
  console.error("usage: relay-crash-child.ts <root> [--pulse | --throw] [--active-low]");
  process.exit(2);
}

await createFakeSysfs(root, { chips: PI4_KERNEL_6_6, lines: [CRASH_CHILD_LINE] });
const value = () => readFileSync(join(root, `gpio${CRASH_CHILD_LINE}`, "value"), "utf8").trim();
const config = parseGpioConfig({
  backend: "sysfs",
  sysfsRoot: root,
  relay: { line: { bcm: 17 }, pulseMs: 30_000, activeLow: flags.includes("--active-low") },
});
const roles = new GpioRoles({
  config,
  backend: new SysfsGpio({ root, timers: realTimers }),
  timers: realTimers,
  logger: pino({ level: "warn" }, pino.destination(2)),
});
await roles.start();
console.log(`ready value=${value()}`);

if (flags.includes("--pulse") || flags.includes("--throw")) {
  if (!roles.unlock()) throw new Error("relay did not energise");
  console.log(`pulsing value=${value()}`);
  if (flags.includes("--throw")) {
    setImmediate(() => {
      throw new Error("crash: uncaught exception while the door is open");
    });
  }
} else {
  await roles.stop();
  console.log(`stopped value=${value()}`);
}
