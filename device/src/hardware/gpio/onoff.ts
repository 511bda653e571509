/**
 * GPIO through `onoff` (sysfs plus epoll for input edges). The module is
 * passed in, so tests hand a fake and a machine without the epoll addon never
 * loads it; `loadOnoff()` is the real one.
 */
import type { Direction, Edge as OnoffEdge, Options } from "onoff";
import type { Edge, InputLine, Level, OutputLine, OutputOptions } from "./backend.ts";
import { SysfsPinBank } from "./pin-bank.ts";

/** The part of an onoff `Gpio` this backend uses. */
export interface OnoffLine {
  readSync(): Level;
  writeSync(value: Level): void;
  watch(cb: (err: Error | null | undefined, value: Level) => void): void;
  unwatchAll(): void;
  unexport(): void;
}

export interface OnoffModule {
  Gpio: {
    new (gpio: number, direction: Direction, edge?: OnoffEdge, options?: Options): OnoffLine;
    /** False when /sys/class/gpio/export cannot be opened for writing: no GPIO here, or no permission. */
    readonly accessible: boolean;
  };
}

/** Loads the real onoff (and with it the epoll addon). */
export async function loadOnoff(): Promise<OnoffModule> {
  return import("onoff");
}

export interface OnoffGpioOptions {
  onoff: OnoffModule;
  /** Where chips are read to resolve `{ bcm }`; onoff itself always uses /sys/class/gpio. */
  sysfsRoot?: string;
}

export class OnoffGpio extends SysfsPinBank {
  readonly kind = "onoff" as const;
  readonly #onoff: OnoffModule;

  constructor(o: OnoffGpioOptions) {
    super(o.sysfsRoot);
    this.#onoff = o.onoff;
  }

  describe(): string {
    return "onoff (/sys/class/gpio)";
  }

  async output(line: number, { initial }: OutputOptions): Promise<OutputLine> {
    // Direction "high"/"low" exports it as an output already at the initial level (no glitch);
    // activeLow false keeps `value` physical whatever a previous program left in active_low.
    const gpio = this.#open(line, initial === 1 ? "high" : "low", undefined);
    return {
      write: (level) => gpio.writeSync(level),
      read: () => gpio.readSync(),
      // Not unexported: on a Pi that hands the pin back as an input (see sysfs.ts).
      release: () => {},
    };
  }

  async input(line: number, edge: Edge): Promise<InputLine> {
    const gpio = this.#open(line, "in", edge);
    return {
      read: () => gpio.readSync(),
      // The kernel reports only `edge` transitions (epoll), so each value is passed on as is.
      watch: (cb, onError) => {
        gpio.unwatchAll();
        gpio.watch((err, value) => {
          if (err) onError?.(err);
          else cb(value);
        });
      },
      release: this.hold(() => gpio.unexport()),
    };
  }

  #open(line: number, direction: Direction, edge: OnoffEdge | undefined): OnoffLine {
    try {
      // onoff writes the edge file only for inputs, so "none" on an output touches nothing
      return new this.#onoff.Gpio(line, direction, edge ?? "none", { activeLow: false });
    } catch (err) {
      throw new Error(`onoff cannot open GPIO ${line} as "${direction}": ${(err as Error).message}`);
    }
  }
}
