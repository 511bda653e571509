/**
 * GPIO through the kernel's sysfs ABI with plain file I/O and no native addon
 * (Documentation/ABI/obsolete/sysfs-gpio): write the number to `export`, then
 * `gpioN/direction` ("in", or "high"/"low" = output starting at that level
 * with no glitch) and `gpioN/value` ("0"/"1"). Inputs are polled instead of
 * waiting on epoll, which is all a call-staff button needs.
 *
 * The root is injectable, so the same code runs against a sysfs-shaped folder
 * of ordinary files (device/test/hardware/fake-sysfs.ts) whose values outlive the
 * process, like a real output latch does: that is what the kill -9 relay test runs on.
 */

import { closeSync, openSync, readSync, writeFileSync, writeSync } from "node:fs";
import { access, constants, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Timers } from "../../timers.ts";
import type { Edge, InputLine, Level, OutputLine, OutputOptions } from "./backend.ts";
import { EdgeWatch, SysfsPinBank } from "./pin-bank.ts";

export interface SysfsGpioOptions {
  root?: string;
  timers: Timers;
  /** How often inputs are read for changes; 10 ms keeps well inside a 50 ms debounce. */
  pollMs?: number;
  /** How long to wait for udev to make a freshly exported line writable. */
  exportWaitMs?: number;
}

const BYTE = { 0: Buffer.from("0"), 1: Buffer.from("1") } as const;

export class SysfsGpio extends SysfsPinBank {
  readonly kind = "sysfs" as const;
  readonly #timers: Timers;
  readonly #pollMs: number;
  readonly #exportWaitMs: number;

  constructor(o: SysfsGpioOptions) {
    super(o.root);
    this.#timers = o.timers;
    this.#pollMs = o.pollMs ?? 10;
    this.#exportWaitMs = o.exportWaitMs ?? 1000;
  }

  describe(): string {
    return `sysfs (${this.root})`;
  }

  async output(line: number, { initial }: OutputOptions): Promise<OutputLine> {
    const dir = await this.#export(line);
    await this.#physicalLevels(dir);
    // "high"/"low" make it an output already at the initial level: the kernel never drives it the other way first.
    await writeFile(join(dir, "direction"), initial === 1 ? "high" : "low");
    const fd = openSync(join(dir, "value"), "r+");
    return {
      write: (level: Level) => {
        writeSync(fd, BYTE[level], 0, 1, 0);
      },
      read: () => readLevel(fd),
      // Stays exported and driven: unexport hands a Pi pin back to pinctrl as an input, and an
      // active-low relay on a pulled-down input would then energise.
      release: this.hold(() => closeSync(fd)),
    };
  }

  async input(line: number, edge: Edge): Promise<InputLine> {
    const dir = await this.#export(line);
    await this.#physicalLevels(dir);
    await writeFile(join(dir, "direction"), "in");
    const fd = openSync(join(dir, "value"), "r+");
    let timer: unknown;
    return {
      read: () => readLevel(fd),
      watch: (cb: (level: Level) => void, onError?: (err: Error) => void) => {
        this.#timers.clearTimeout(timer);
        const input = new EdgeWatch(edge, readLevel(fd));
        input.watch(cb);
        let failing = false;
        const poll = () => {
          timer = this.#timers.setTimeout(poll, this.#pollMs);
          let level: Level;
          try {
            level = readLevel(fd);
            failing = false;
          } catch (err) {
            // told once per run of failures, not every poll
            if (!failing) onError?.(err as Error);
            failing = true;
            return;
          }
          input.see(level);
        };
        timer = this.#timers.setTimeout(poll, this.#pollMs);
      },
      release: this.hold(() => {
        this.#timers.clearTimeout(timer);
        closeSync(fd);
        unexport(this.root, line);
      }),
    };
  }

  /** Exports the line unless it already is, and waits until its value file is writable. */
  async #export(line: number): Promise<string> {
    const dir = join(this.root, `gpio${line}`);
    const value = join(dir, "value");
    if (await writable(value)) return dir;
    try {
      await writeFile(join(this.root, "export"), String(line));
    } catch (err) {
      // EBUSY: another driver (an overlay, a second daemon) holds the line
      throw new Error(`cannot export GPIO ${line} via ${this.root}/export: ${(err as Error).message}`);
    }
    const waitStep = 10;
    for (let waited = 0; !(await writable(value)); waited += waitStep) {
      if (waited >= this.#exportWaitMs) {
        throw new Error(`GPIO ${line} was exported but ${value} is not writable after ${this.#exportWaitMs} ms`);
      }
      await new Promise<void>((resolve) => this.#timers.setTimeout(resolve, waitStep));
    }
    return dir;
  }

  /** Levels in this module are physical: undo an active_low another program may have left set. */
  async #physicalLevels(dir: string): Promise<void> {
    try {
      await writeFile(join(dir, "active_low"), "0");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
  }
}

function unexport(root: string, line: number): void {
  try {
    writeFileSync(join(root, "unexport"), String(line));
  } catch {
    // already unexported, or a root without unexport: the line is given back either way
  }
}

function readLevel(fd: number): Level {
  const buf = Buffer.alloc(1);
  readSync(fd, buf, 0, 1, 0);
  return buf[0] === BYTE[1][0] ? 1 : 0;
}

async function writable(path: string): Promise<boolean> {
  try {
    await access(path, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}
