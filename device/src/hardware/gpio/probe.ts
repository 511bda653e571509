/**
 * What "auto" looks at before it picks a backend: whether a GPIO character
 * device opens, whether sysfs export is writable, and whether this board is a
 * Raspberry Pi (where falling back to simulated GPIO would leave a relay that
 * silently does nothing). Every path is a parameter, so tests fake a Pi.
 */
import { access, constants, open, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";

export const DEVICE_TREE_MODEL = "/proc/device-tree/model";

/** The board's model from the device tree, e.g. "Raspberry Pi 4 Model B Rev 1.4"; undefined where there is none. */
export async function readBoardModel(path: string = DEVICE_TREE_MODEL): Promise<string | undefined> {
  try {
    // The device tree's strings end in a NUL.
    const model = (await readFile(path, "utf8")).replace(/\0/g, "").trim();
    return model || undefined;
  } catch {
    return undefined;
  }
}

export function isRaspberryPi(model: string | undefined): boolean {
  return model?.includes("Raspberry Pi") ?? false;
}

/**
 * The `gpiochipN` devices under `dir` that this process can open, or why none can
 * (e.g. `none in /dev`, `/dev/gpiochip0: EACCES`: the user is not in the gpio group).
 */
export async function openableChips(dir = "/dev"): Promise<{ chips: string[]; why?: string }> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => /^gpiochip\d+$/.test(n)).sort();
  } catch (err) {
    return { chips: [], why: `${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
  }
  if (names.length === 0) return { chips: [], why: `none in ${dir}` };
  const chips: string[] = [];
  const refused: string[] = [];
  for (const name of names) {
    try {
      // Read-only is enough: line requests are ioctls on this descriptor.
      await (await open(join(dir, name), "r")).close();
      chips.push(name);
    } catch (err) {
      refused.push(`${join(dir, name)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  return chips.length > 0 ? { chips } : { chips, why: refused.join(", ") };
}

/** Whether `<root>/export` can be written (sysfs GPIO is there and this user may export lines). */
export async function sysfsExportWritable(root: string): Promise<boolean> {
  try {
    await access(join(root, "export"), constants.W_OK);
    return true;
  } catch {
    return false;
  }
}
