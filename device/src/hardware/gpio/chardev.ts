/**
 * GPIO through the kernel's character device (/dev/gpiochipN), the interface
 * current Raspberry Pi OS recommends (sysfs is deprecated). How lines are
 * reached is the small `Chardev` interface: gpiod-tools.ts drives Debian's
 * gpiod tools as processes, and tests use an in-memory chip. This file keeps
 * what does not depend on that: resolving config pins to chip lines, holding
 * outputs and watching inputs, and restarting a line whose holder died (with
 * backoff), reporting it in the role's health meanwhile.
 *
 * Line numbers handed to the roles are chip × 1000 + offset (gpiochip0 line 17
 * is 17, gpiochip4 line 17 is 4017), so telemetry shows where a role is.
 */
import { ExponentialBackoff, type IBackoff, noJitterGenerator } from "cockatiel";
import type { Logger } from "pino";
import type { Timers } from "../../timers.ts";
import {
  describePin,
  type Edge,
  GpioConfigError,
  type InputLine,
  type InputOptions,
  type Level,
  type OutputLine,
  type OutputOptions,
  type PinSpec,
} from "./backend.ts";
import { EdgeWatch, PinBank } from "./pin-bank.ts";
import { BCM_CHIP_LABELS } from "./pins.ts";

/** A chip as gpiodetect lists it: `gpiochip0 [pinctrl-bcm2711] (58 lines)`. */
export interface ChardevChip {
  name: string;
  label: string;
  lines: number;
}

export interface ChardevLineRef {
  /** The chip's name, `gpiochipN`. */
  chip: string;
  offset: number;
}

export type Bias = "as-is" | "pull-up" | "pull-down";

/** An output line held at a level until released. */
export interface ChardevOutput {
  /** Drives the held line to `level`; rejects when it could not (the line is then not held). */
  set(level: Level): Promise<void>;
  release(): Promise<void>;
}

export interface ChardevMonitor {
  release(): Promise<void>;
}

/** The operations the backend needs from the character device; see gpiod-tools.ts. */
export interface Chardev {
  describe(): string;
  chips(): Promise<ChardevChip[]>;
  /** The line with this name (gpiofind), or undefined. */
  find(name: string): Promise<ChardevLineRef | undefined>;
  /** Reads a line that nobody holds, requesting it as an input with `bias` for the read. */
  get(line: ChardevLineRef, bias: Bias): Promise<Level>;
  /** Requests `line` as an output at `level`; `onEnd` hears a hold that ended without release() (its holder died). */
  output(line: ChardevLineRef, level: Level, onEnd: (err: Error) => void): Promise<ChardevOutput>;
  /** Watches both edges of `line`; `onEdge` gets the level after each. */
  monitor(
    line: ChardevLineRef,
    bias: Bias,
    onEdge: (level: Level) => void,
    onEnd: (err: Error) => void,
  ): Promise<ChardevMonitor>;
}

export interface ChardevGpioOptions {
  chardev: Chardev;
  timers: Timers;
  logger?: Logger;
  /** Backoff bounds for restarting a line whose holder died. */
  restartMinMs?: number;
  restartMaxMs?: number;
}

const CHIP_STRIDE = 1000;

/** One line this backend holds: what it is, what it should be, and its restart state. */
interface Held {
  ref: ChardevLineRef;
  kind: "output" | "input";
  /** Outputs: the level last asked for, which a restart comes back at. */
  level: Level;
  bias: Bias;
  handle: ChardevOutput | ChardevMonitor | undefined;
  fault: string | undefined;
  released: boolean;
  backoff: IBackoff<unknown> | undefined;
  timer: unknown;
  /** Outputs: levels are applied one at a time, the latest asked for winning. */
  applying: boolean;
  applied: Level;
  onEdge?: (level: Level) => void;
}

export class ChardevGpio extends PinBank {
  readonly kind = "chardev" as const;
  readonly #o: ChardevGpioOptions;
  readonly #backoff: ExponentialBackoff<unknown>;
  readonly #held = new Map<number, Held>();
  readonly #listeners = new Set<(event: { restored: boolean }) => void>();
  readonly #releasing = new Set<Promise<void>>();
  #chips: ChardevChip[] | undefined;

  constructor(o: ChardevGpioOptions) {
    super();
    this.#o = o;
    this.#backoff = new ExponentialBackoff({
      generator: noJitterGenerator,
      initialDelay: o.restartMinMs ?? 100,
      maxDelay: o.restartMaxMs ?? 5000,
    });
  }

  describe(): string {
    return `chardev (${this.#o.chardev.describe()})`;
  }

  override async start(): Promise<void> {
    this.#chips = await this.#o.chardev.chips();
    if (this.#chips.length === 0) throw new Error("no GPIO chips: gpiodetect lists none");
  }

  override async stop(): Promise<void> {
    this.releaseAll();
    // Wait for the holders to let go, so a restart right after finds the lines free.
    await Promise.all([...this.#releasing]);
  }

  async resolve(spec: PinSpec, field: string): Promise<number> {
    const chips = this.#chips ?? (await this.#o.chardev.chips());
    const list = () => chips.map((c) => `${c.name} [${c.label}] (${c.lines} lines)`).join(", ") || "none";
    const number = (chip: ChardevChip, offset: number) => {
      if (offset >= chip.lines) {
        throw new GpioConfigError(
          `${field}: ${describePin(spec)} is outside ${chip.name} [${chip.label}] (offsets 0..${chip.lines - 1})`,
        );
      }
      return chipNumber(chip.name) * CHIP_STRIDE + offset;
    };
    if ("firmata" in spec || "global" in spec) {
      throw new GpioConfigError(
        `${field}: ${describePin(spec)}: the chardev backend takes { bcm: n }, { chip: "<label or gpiochipN>", offset: n } or { name: "<line name>" }`,
      );
    }
    if ("bcm" in spec) {
      const chip = BCM_CHIP_LABELS.map((l) => chips.find((c) => c.label === l)).find((c) => c !== undefined);
      if (!chip) {
        throw new GpioConfigError(
          `${field}: cannot resolve ${describePin(spec)}: no Raspberry Pi GPIO chip (label ${BCM_CHIP_LABELS.join(", ")}) among ${list()}; give { chip, offset } or { name } instead`,
        );
      }
      return number(chip, spec.bcm);
    }
    if ("chip" in spec) {
      const chip = chips.find(
        (c) => c.name === spec.chip || c.label === spec.chip || c.name === `gpiochip${spec.chip}`,
      );
      if (!chip) throw new GpioConfigError(`${field}: ${describePin(spec)}: no such chip among ${list()}`);
      return number(chip, spec.offset);
    }
    const found = await this.#o.chardev.find(spec.name);
    const chip = found && chips.find((c) => c.name === found.chip);
    if (!found || !chip) {
      throw new GpioConfigError(
        `${field}: ${describePin(spec)}: no line has that name (gpioinfo lists each chip's line names)`,
      );
    }
    return number(chip, found.offset);
  }

  describeLine(line: number): string {
    const ref = this.#ref(line);
    return `${ref.chip} ${ref.offset}`;
  }

  lineFault(line: number): string | undefined {
    return this.#held.get(line)?.fault;
  }

  watchState(fn: (event: { restored: boolean }) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  async output(line: number, { initial }: OutputOptions): Promise<OutputLine> {
    const held = this.#claim(line, "output", initial, "as-is");
    try {
      held.handle = await this.#o.chardev.output(held.ref, initial, (err) => this.#ended(line, held, err));
    } catch (err) {
      this.#held.delete(line);
      throw new Error(`cannot hold ${this.describeLine(line)} as an output: ${(err as Error).message}`);
    }
    return {
      write: (level: Level) => {
        if (held.released) throw new Error(`${this.describeLine(line)} was released`);
        // Remembered even while faulted: a restart comes back at the level last asked for.
        held.level = level;
        if (held.fault) throw new Error(held.fault);
        this.#apply(line, held);
      },
      // Once released, the kernel takes the line back: what it does then is the chip driver's choice.
      release: this.hold(() => this.#release(line, held)),
    };
  }

  async input(line: number, edge: Edge, options: InputOptions = {}): Promise<InputLine> {
    const bias: Bias = options.pull === "up" ? "pull-up" : options.pull === "down" ? "pull-down" : "as-is";
    const held = this.#claim(line, "input", 0, bias);
    let watch: EdgeWatch;
    try {
      // The tools cannot read a line they are monitoring, so the level is read first and then followed by edges.
      watch = new EdgeWatch(edge, await this.#o.chardev.get(held.ref, bias));
      held.onEdge = (level) => watch.see(level);
      held.handle = await this.#startMonitor(line, held);
    } catch (err) {
      this.#held.delete(line);
      throw new Error(`cannot watch ${this.describeLine(line)}: ${(err as Error).message}`);
    }
    return {
      read: () => watch.level,
      watch: (cb) => watch.watch(cb),
      release: this.hold(() => {
        watch.unwatch();
        this.#release(line, held);
      }),
    };
  }

  #startMonitor(line: number, held: Held): Promise<ChardevMonitor> {
    return this.#o.chardev.monitor(
      held.ref,
      held.bias,
      (level) => held.onEdge?.(level),
      (err) => this.#ended(line, held, err),
    );
  }

  #claim(line: number, kind: Held["kind"], level: Level, bias: Bias): Held {
    if (this.#held.has(line)) throw new Error(`${this.describeLine(line)} is already in use`);
    const held: Held = {
      ref: this.#ref(line),
      kind,
      level,
      bias,
      handle: undefined,
      fault: undefined,
      released: false,
      backoff: undefined,
      timer: undefined,
      applying: false,
      applied: level,
    };
    this.#held.set(line, held);
    return held;
  }

  /** Applies the latest asked-for level; a failed set is handled like a holder that died. */
  #apply(line: number, held: Held): void {
    if (held.applying || held.applied === held.level) return;
    const output = held.handle as ChardevOutput | undefined;
    if (!output) return;
    held.applying = true;
    const level = held.level;
    output.set(level).then(
      () => {
        held.applying = false;
        held.applied = level;
        if (!held.released && !held.fault) this.#apply(line, held);
      },
      (err: Error) => {
        held.applying = false;
        this.#ended(line, held, err);
      },
    );
  }

  /** The holder died (or a level could not be set): report it and restart with backoff. */
  #ended(line: number, held: Held, err: Error): void {
    if (held.released || held.fault) return;
    held.handle = undefined;
    held.fault = `${this.describeLine(line)}: ${err.message}; restarting`;
    this.#o.logger?.warn({ line: this.describeLine(line), err: err.message }, "GPIO line lost its holder; restarting");
    this.#tell(false);
    this.#scheduleRestart(line, held);
  }

  #scheduleRestart(line: number, held: Held): void {
    held.backoff = held.backoff ? held.backoff.next(undefined) : this.#backoff.next();
    held.timer = this.#o.timers.setTimeout(() => void this.#restart(line, held), held.backoff.duration);
  }

  async #restart(line: number, held: Held): Promise<void> {
    held.timer = undefined;
    if (held.released) return;
    const onEnd = (err: Error) => this.#ended(line, held, err);
    try {
      const handle =
        held.kind === "output"
          ? await this.#o.chardev.output(held.ref, held.level, onEnd)
          : await this.#restartInput(line, held);
      if (held.released) {
        await handle.release();
        return;
      }
      held.handle = handle;
      held.applied = held.level;
    } catch (err) {
      held.fault = `${this.describeLine(line)}: ${(err as Error).message}; restarting`;
      this.#tell(false);
      this.#scheduleRestart(line, held);
      return;
    }
    held.fault = undefined;
    held.backoff = undefined;
    this.#o.logger?.info({ line: this.describeLine(line) }, "GPIO line held again");
    this.#tell(false);
    if (held.kind === "output") this.#apply(line, held);
  }

  async #restartInput(line: number, held: Held): Promise<ChardevMonitor> {
    // Edges missed while nobody watched: the level now is reported as one if it changed.
    const level = await this.#o.chardev.get(held.ref, held.bias);
    const monitor = await this.#startMonitor(line, held);
    held.onEdge?.(level);
    return monitor;
  }

  #release(line: number, held: Held): void {
    held.released = true;
    this.#o.timers.clearTimeout(held.timer);
    const handle = held.handle;
    held.handle = undefined;
    if (this.#held.get(line) === held) this.#held.delete(line);
    if (!handle) return;
    const done = handle
      .release()
      .catch((err: Error) => {
        this.#o.logger?.warn({ line: this.describeLine(line), err: err.message }, "GPIO line release failed");
      })
      .finally(() => this.#releasing.delete(done));
    this.#releasing.add(done);
  }

  #tell(restored: boolean): void {
    for (const fn of [...this.#listeners]) fn({ restored });
  }

  #ref(line: number): ChardevLineRef {
    return { chip: `gpiochip${Math.floor(line / CHIP_STRIDE)}`, offset: line % CHIP_STRIDE };
  }
}

function chipNumber(name: string): number {
  const n = /^gpiochip(\d+)$/.exec(name)?.[1];
  if (n === undefined) throw new Error(`unexpected chip name "${name}" (expected gpiochipN)`);
  return Number(n);
}
