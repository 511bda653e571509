/**
 * A folder shaped like /sys/class/gpio, made of ordinary files: chips with
 * base/ngpio/label, and exported lines with value/direction/active_low/edge.
 * There is no kernel behind it, so lines are "exported" up front; values
 * written by one process stay for the next, like an output latch does.
 */
import { access, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";

export interface FakeChip {
  base: number;
  ngpio: number;
  label: string;
}

/** A Pi 4 on a 6.6+ kernel: the header's chip starts at 512. */
export const PI4_KERNEL_6_6: readonly FakeChip[] = [
  { base: 512, ngpio: 58, label: "pinctrl-bcm2711" },
  { base: 570, ngpio: 8, label: "raspberrypi-exp-gpio" },
];

/** A Pi 4 on a kernel before 6.6: BCM n was sysfs GPIO n. */
export const PI4_KERNEL_6_1: readonly FakeChip[] = [
  { base: 0, ngpio: 58, label: "pinctrl-bcm2711" },
  { base: 504, ngpio: 8, label: "raspberrypi-exp-gpio" },
];

/** A Pi 5 on a 6.6+ kernel: the SoC's own chips come first, the header's RP1 chip after them. */
export const PI5_KERNEL_6_6: readonly FakeChip[] = [
  { base: 512, ngpio: 32, label: "gpio-brcmstb@107d508500" },
  { base: 544, ngpio: 4, label: "gpio-brcmstb@107d508520" },
  { base: 548, ngpio: 17, label: "gpio-brcmstb@107d517c00" },
  { base: 565, ngpio: 6, label: "gpio-brcmstb@107d517c20" },
  { base: 571, ngpio: 54, label: "pinctrl-rp1" },
];

export interface FakeSysfsOptions {
  chips: readonly FakeChip[];
  /** Global numbers to create as exported lines. */
  lines?: readonly number[];
}

/** Creates what is missing under `root` and never overwrites a value already there. */
export async function createFakeSysfs(root: string, o: FakeSysfsOptions): Promise<void> {
  await mkdir(root, { recursive: true });
  await writeMissing(join(root, "export"), "");
  await writeMissing(join(root, "unexport"), "");
  for (const chip of o.chips) {
    const dir = join(root, `gpiochip${chip.base}`);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "base"), `${chip.base}\n`);
    await writeFile(join(dir, "ngpio"), `${chip.ngpio}\n`);
    await writeFile(join(dir, "label"), `${chip.label}\n`);
  }
  for (const line of o.lines ?? []) {
    const dir = join(root, `gpio${line}`);
    await mkdir(dir, { recursive: true });
    await writeMissing(join(dir, "value"), "0\n");
    await writeMissing(join(dir, "direction"), "in\n");
    await writeMissing(join(dir, "active_low"), "0\n");
    await writeMissing(join(dir, "edge"), "none\n");
  }
}

async function writeMissing(path: string, text: string): Promise<void> {
  try {
    await access(path);
  } catch {
    await writeFile(path, text);
  }
}
