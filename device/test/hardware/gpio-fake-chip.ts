/**
 * An in-memory GPIO character device behind the `Chardev` interface: chips
 * with labels and line names, one holder per line (a second request is
 * "Device or resource busy", as the kernel answers), inputs the test drives,
 * and holders the test can kill as if their process died.
 */
import type { Level } from "../../src/hardware/gpio/backend.ts";
import type {
  Bias,
  Chardev,
  ChardevChip,
  ChardevLineRef,
  ChardevMonitor,
  ChardevOutput,
} from "../../src/hardware/gpio/chardev.ts";

export interface FakeChipSpec {
  label: string;
  lines: number;
  /** Line names by offset, e.g. { 17: "GPIO17" }. */
  names?: Record<number, string>;
}

/** A Pi 4's header chip and its firmware expander, as gpiodetect lists them. */
export const PI4_CHIPS: FakeChipSpec[] = [
  {
    label: "pinctrl-bcm2711",
    lines: 58,
    names: Object.fromEntries(Array.from({ length: 28 }, (_, i) => [i, `GPIO${i}`])),
  },
  { label: "raspberrypi-exp-gpio", lines: 8, names: { 0: "BT_ON", 2: "STATUS_LED_G_CLK" } },
];

interface FakeLine {
  level: Level;
  holder?: { kind: "output" | "monitor"; onEnd: (err: Error) => void; onEdge?: (level: Level) => void };
}

export class FakeChip implements Chardev {
  readonly chipList: ChardevChip[];
  readonly #names: Array<Record<number, string>>;
  readonly #lines = new Map<string, FakeLine>();
  /** Every output level a holder applied, as "gpiochip0 17=1". */
  readonly log: string[] = [];

  constructor(chips: FakeChipSpec[] = PI4_CHIPS) {
    this.chipList = chips.map((c, i) => ({ name: `gpiochip${i}`, label: c.label, lines: c.lines }));
    this.#names = chips.map((c) => c.names ?? {});
  }

  describe(): string {
    return "fake chip";
  }

  async chips(): Promise<ChardevChip[]> {
    return this.chipList.map((c) => ({ ...c }));
  }

  async find(name: string): Promise<ChardevLineRef | undefined> {
    for (const [i, names] of this.#names.entries()) {
      for (const [offset, n] of Object.entries(names)) if (n === name) return { chip: `gpiochip${i}`, offset: +offset };
    }
    return undefined;
  }

  async get(ref: ChardevLineRef, bias: Bias): Promise<Level> {
    const known = this.#lines.has(key(ref));
    const line = this.#line(ref);
    if (line.holder) throw new Error("gpioget: error reading GPIO values: Device or resource busy");
    // A line nobody drove yet reads its pull, like a button that is not pressed.
    if (bias !== "as-is" && !known) line.level = bias === "pull-up" ? 1 : 0;
    return line.level;
  }

  async output(ref: ChardevLineRef, level: Level, onEnd: (err: Error) => void): Promise<ChardevOutput> {
    const line = this.#claim(ref);
    const holder = { kind: "output" as const, onEnd };
    line.holder = holder;
    this.#set(ref, line, level);
    return {
      set: async (next) => {
        if (line.holder !== holder) throw new Error("gpioset: line no longer held");
        this.#set(ref, line, next);
      },
      release: async () => {
        if (line.holder === holder) line.holder = undefined;
      },
    };
  }

  async monitor(
    ref: ChardevLineRef,
    _bias: Bias,
    onEdge: (level: Level) => void,
    onEnd: (err: Error) => void,
  ): Promise<ChardevMonitor> {
    const line = this.#claim(ref);
    const holder = { kind: "monitor" as const, onEnd, onEdge };
    line.holder = holder;
    return {
      release: async () => {
        if (line.holder === holder) line.holder = undefined;
      },
    };
  }

  /** The outside world moves an input (a button to ground reads 0 while pressed). */
  drive(ref: ChardevLineRef, level: Level): void {
    const line = this.#line(ref);
    if (line.holder?.kind === "output") throw new Error(`${key(ref)} is an output`);
    if (line.level === level) return;
    line.level = level;
    this.#lines.set(key(ref), line);
    line.holder?.onEdge?.(level);
  }

  level(ref: ChardevLineRef): Level | undefined {
    return this.#lines.get(key(ref))?.level;
  }

  /** Who holds the line now: "output", "monitor" or undefined. */
  holder(ref: ChardevLineRef): "output" | "monitor" | undefined {
    return this.#lines.get(key(ref))?.holder?.kind;
  }

  /** The holder's process died: the kernel frees the line and the backend hears it. */
  kill(ref: ChardevLineRef, why = "gpioset exited (killed by SIGKILL)"): void {
    const line = this.#line(ref);
    const holder = line.holder;
    if (!holder) throw new Error(`nobody holds ${key(ref)}`);
    line.holder = undefined;
    holder.onEnd(new Error(why));
  }

  /** Someone else takes the line (another program), so a restart finds it busy until `free()`. */
  takeByOther(ref: ChardevLineRef): void {
    this.#line(ref).holder = { kind: "output", onEnd: () => {} };
  }

  free(ref: ChardevLineRef): void {
    const line = this.#line(ref);
    line.holder = undefined;
  }

  #line(ref: ChardevLineRef): FakeLine {
    const chip = this.chipList.find((c) => c.name === ref.chip);
    if (!chip) throw new Error(`gpioset: error setting the GPIO line values: No such file or directory`);
    if (ref.offset >= chip.lines) throw new Error("gpioset: error setting the GPIO line values: Invalid argument");
    let line = this.#lines.get(key(ref));
    if (!line) {
      line = { level: 0 };
      this.#lines.set(key(ref), line);
    }
    return line;
  }

  #claim(ref: ChardevLineRef): FakeLine {
    const line = this.#line(ref);
    if (line.holder) throw new Error("gpioset: error setting the GPIO line values: Device or resource busy");
    return line;
  }

  #set(ref: ChardevLineRef, line: FakeLine, level: Level): void {
    line.level = level;
    this.log.push(`${key(ref)}=${level}`);
  }
}

function key(ref: ChardevLineRef): string {
  return `${ref.chip} ${ref.offset}`;
}
