/**
 * GPIO with no hardware: in-memory lines that the kiosk drives and that a test
 * or the `npm start` site drives back (press the call-staff button), with a
 * history of every level change stamped by the injected clock.
 */
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

export interface LevelChange {
  at: Date;
  line: number;
  level: Level;
  /** "kiosk" when the daemon wrote an output, "outside" when drive() moved an input. */
  by: "kiosk" | "outside";
}

export interface SimulatedGpioOptions {
  now?: () => Date;
  /** Where `{ bcm: n }` lands: 512 + n by default, as on Raspberry Pi OS kernels 6.6+. */
  bcmBase?: number;
  /** Why the simulated backend is in use, shown by describe() (e.g. "no GPIO on this machine"). */
  reason?: string;
  /** The history keeps this many latest changes, so a long-running site does not grow without bound. */
  historyLimit?: number;
}

interface SimLine {
  level: Level;
  direction: "in" | "out";
  inUse: boolean;
  /** While held as an input: who hears its edges. */
  input?: EdgeWatch;
}

export class SimulatedGpio extends PinBank {
  readonly kind = "simulated" as const;
  readonly #now: () => Date;
  readonly #bcmBase: number;
  readonly #reason: string | undefined;
  readonly #lines = new Map<number, SimLine>();
  readonly #history: LevelChange[] = [];
  readonly #historyLimit: number;
  readonly #recorded = new Set<number>();
  readonly #listeners = new Set<(change: LevelChange) => void>();
  readonly #keyed = new Map<string, number>();

  constructor(o: SimulatedGpioOptions = {}) {
    super();
    this.#now = o.now ?? (() => new Date());
    this.#bcmBase = o.bcmBase ?? 512;
    this.#reason = o.reason;
    this.#historyLimit = o.historyLimit ?? 1000;
  }

  describe(): string {
    return this.#reason ? `simulated (${this.#reason})` : "simulated";
  }

  async resolve(spec: PinSpec, field: string): Promise<number> {
    if ("bcm" in spec) return this.#bcmBase + spec.bcm;
    if ("global" in spec) return spec.global;
    if ("name" in spec || "chip" in spec) return this.#byKey(describePin(spec), spec);
    if (spec.firmata < 0) throw new GpioConfigError(`${field}: ${describePin(spec)} is not a pin`);
    return spec.firmata;
  }

  async output(line: number, { initial }: OutputOptions): Promise<OutputLine> {
    const l = this.#claim(line, "out", initial);
    this.#set(line, l, initial, "kiosk");
    return {
      write: (level) => {
        if (!l.inUse) throw new Error(`simulated line ${line} was released`);
        this.#set(line, l, level, "kiosk");
      },
      read: () => l.level,
      release: this.hold(() => {
        l.inUse = false;
      }),
    };
  }

  async input(line: number, edge: Edge, options: InputOptions = {}): Promise<InputLine> {
    const known = this.#lines.has(line);
    const l = this.#claim(line, "in", options.pull === "up" ? 1 : 0);
    // An input nobody has driven yet idles at its pull, like a button that is not pressed.
    if (!known && options.pull === "up") l.level = 1;
    const input = new EdgeWatch(edge, l.level);
    l.input = input;
    return {
      read: () => l.level,
      watch: (cb) => input.watch(cb),
      release: this.hold(() => {
        l.input = undefined;
        l.inUse = false;
      }),
    };
  }

  /** The outside world sets an input line (a button to ground reads 0 while pressed). */
  drive(line: number, level: Level): void {
    let l = this.#lines.get(line);
    if (l?.direction === "out") throw new Error(`simulated line ${line} is an output; drive() moves inputs`);
    if (!l) {
      l = { level, direction: "in", inUse: false };
      this.#lines.set(line, l);
    }
    // The history decides what a change is (a line's first recorded level counts as one).
    if (this.#set(line, l, level, "outside")) l.input?.tell(level);
  }

  /** The line's current level; undefined for a line never touched. */
  level(line: number): Level | undefined {
    return this.#lines.get(line)?.level;
  }

  /** Level changes, oldest first, of one line or all of them. */
  history(line?: number): LevelChange[] {
    return this.#history.filter((c) => line === undefined || c.line === line).map((c) => ({ ...c }));
  }

  /**
   * Character-device lines: `{ name: "GPIO17" }` and a Pi chip's `{ chip, offset }` land where `{ bcm: 17 }`
   * would, any other a line of its own from 100000 up (in the order first asked).
   */
  #byKey(key: string, spec: { name: string } | { chip: string; offset: number }): number {
    const bcm = "name" in spec ? /^GPIO(\d+)$/.exec(spec.name)?.[1] : undefined;
    if (bcm !== undefined) return this.#bcmBase + Number(bcm);
    if ("chip" in spec && (BCM_CHIP_LABELS as readonly string[]).includes(spec.chip))
      return this.#bcmBase + spec.offset;
    let line = this.#keyed.get(key);
    if (line === undefined) {
      line = 100_000 + this.#keyed.size;
      this.#keyed.set(key, line);
    }
    return line;
  }

  #claim(line: number, direction: "in" | "out", level: Level): SimLine {
    const existing = this.#lines.get(line);
    if (existing?.inUse) throw new Error(`simulated line ${line} is already in use`);
    const l = existing ?? { level, direction, inUse: true };
    l.direction = direction;
    l.inUse = true;
    this.#lines.set(line, l);
    return l;
  }

  /** Calls `fn` on every level change (after it is recorded); returns the unsubscribe. */
  onChange(fn: (change: LevelChange) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Returns whether the level changed; only changes go to the history. */
  #set(line: number, l: SimLine, level: Level, by: LevelChange["by"]): boolean {
    if (l.level === level && this.#recorded.has(line)) return false;
    l.level = level;
    this.#recorded.add(line);
    const change: LevelChange = { at: this.#now(), line, level, by };
    this.#history.push(change);
    if (this.#history.length > this.#historyLimit) this.#history.shift();
    for (const fn of [...this.#listeners]) fn(change);
    return true;
  }
}
