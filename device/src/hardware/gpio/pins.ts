/**
 * Config pin → kernel sysfs GPIO number. Since Linux 6.6 the kernel numbers
 * dynamically allocated GPIO chips from 512 upwards, so on Raspberry Pi OS
 * BCM line 17 is no longer sysfs GPIO 17 but base + 17 (529 on a Pi 4; the
 * Pi 5's RP1 chip sits higher still). The base is read from the chip that
 * drives the 40-pin header, never assumed.
 */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { describePin, GpioConfigError, type PinSpec } from "./backend.ts";

export const SYSFS_GPIO_ROOT = "/sys/class/gpio";

/** One `/sys/class/gpio/gpiochipN` entry. */
export interface GpioChip {
  name: string;
  base: number;
  ngpio: number;
  label: string;
}

/**
 * Labels of the chips that carry the 40-pin header's BCM lines: bcm2835 (Pi 1-3, Zero),
 * bcm2711 (Pi 4, 400, CM4), RP1 (Pi 5, whose SoC's own GPIO chips are listed before it
 * with other labels, so the base is never "the first chip").
 */
export const BCM_CHIP_LABELS = ["pinctrl-rp1", "pinctrl-bcm2711", "pinctrl-bcm2835"] as const;

/** The chips listed under `root`; none when the folder is missing (no GPIO, or not Linux). */
export async function readGpioChips(root: string = SYSFS_GPIO_ROOT): Promise<GpioChip[]> {
  let names: string[];
  try {
    names = await readdir(root);
  } catch {
    return [];
  }
  const chips: GpioChip[] = [];
  for (const name of names.filter((n) => /^gpiochip\d+$/.test(n)).sort()) {
    const field = (f: string) => readFile(join(root, name, f), "utf8").then((s) => s.trim());
    try {
      const [base, ngpio, label] = await Promise.all([field("base"), field("ngpio"), field("label")]);
      if (!/^\d+$/.test(base) || !/^\d+$/.test(ngpio)) continue;
      chips.push({ name, base: Number(base), ngpio: Number(ngpio), label });
    } catch {
      // a chip whose attributes cannot be read is not one we can use
    }
  }
  return chips;
}

/** The chip carrying the BCM header lines, if any. */
export function findBcmChip(chips: readonly GpioChip[]): GpioChip | undefined {
  for (const label of BCM_CHIP_LABELS) {
    const chip = chips.find((c) => c.label === label);
    if (chip) return chip;
  }
  return undefined;
}

const range = (c: GpioChip) => `${c.label || c.name}: ${c.base}..${c.base + c.ngpio - 1}`;

/**
 * Resolves a config pin to the global sysfs number against the chips under `root`.
 * Errors name `field` and say what to write instead.
 */
export async function resolveSysfsLine(spec: PinSpec, field: string, root: string = SYSFS_GPIO_ROOT): Promise<number> {
  if ("firmata" in spec) {
    throw new GpioConfigError(
      `${field}: ${describePin(spec)} is a johnny-five board pin; this backend takes { bcm: <line> } or { global: <number> }`,
    );
  }
  if ("name" in spec) {
    throw new GpioConfigError(
      `${field}: ${describePin(spec)}: lines by name need the character-device backend (gpio.backend "chardev", gpiod installed); this backend takes { bcm }, { global } or { chip, offset }`,
    );
  }
  const chips = await readGpioChips(root);
  const bcmChip = findBcmChip(chips);
  if ("chip" in spec) {
    // sysfs names its chip folders by base, not like /dev/gpiochipN: the label is what both share.
    const chip = chips.find((c) => c.label === spec.chip);
    if (!chip) {
      throw new GpioConfigError(
        `${field}: ${describePin(spec)}: no GPIO chip labelled "${spec.chip}" under ${root} (${chips.map(range).join("; ") || "none"})`,
      );
    }
    if (spec.offset >= chip.ngpio) {
      throw new GpioConfigError(
        `${field}: ${describePin(spec)} is outside ${chip.label} (offsets 0..${chip.ngpio - 1})`,
      );
    }
    return chip.base + spec.offset;
  }
  if ("bcm" in spec) {
    if (!bcmChip) {
      throw new GpioConfigError(
        `${field}: cannot resolve ${describePin(spec)}: no Raspberry Pi GPIO chip (label ${BCM_CHIP_LABELS.join(", ")}) under ${root}; give the kernel's number as { global: <number> } instead`,
      );
    }
    if (spec.bcm >= bcmChip.ngpio) {
      throw new GpioConfigError(
        `${field}: ${describePin(spec)} is outside ${bcmChip.label} (BCM lines 0..${bcmChip.ngpio - 1})`,
      );
    }
    return bcmChip.base + spec.bcm;
  }
  // Without chips to check against (an unusual sysfs), the number is taken as written.
  if (chips.length === 0 || chips.some((c) => spec.global >= c.base && spec.global < c.base + c.ngpio)) {
    return spec.global;
  }
  const hint =
    bcmChip && spec.global < bcmChip.ngpio
      ? `; kernels 6.6+ number lines from the chip base: did you mean { bcm: ${spec.global} } (= ${bcmChip.base + spec.global})?`
      : "";
  throw new GpioConfigError(
    `${field}: ${describePin(spec)} is not on any GPIO chip under ${root} (${chips.map(range).join("; ")})${hint}`,
  );
}
