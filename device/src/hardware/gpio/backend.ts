/**
 * The GPIO backend interface: the roles (button, LED, buzzer, relay) see
 * numbered lines that can be driven or watched, never onoff, sysfs files or
 * Firmata. Writes and reads are synchronous (a sysfs value write or a Firmata
 * message is queued at once), so a timer that ends a relay pulse de-energises
 * it in the same tick; acquiring a line is async (export, udev permissions,
 * board readiness).
 */

/** A physical line level: 1 = high, 0 = low. Roles map on/off to it via their activeLow option. */
export type Level = 0 | 1;

/** Which input transitions a watcher is told about. */
export type Edge = "rising" | "falling" | "both";

/**
 * Where a role's line is, as written in the config:
 * - `{ bcm: 17 }`: the Broadcom line number printed on Raspberry Pi pinouts, resolved to the kernel's global number;
 * - `{ global: 529 }`: the kernel's sysfs GPIO number as is (`/sys/class/gpio/gpio529`);
 * - `{ firmata: 13 }`: a pin on a johnny-five (Firmata) board;
 * - `{ chip: "pinctrl-bcm2711", offset: 17 }`: a character-device line by its chip's label or name (gpiochipN) and offset;
 * - `{ name: "GPIO17" }`: a character-device line by the name the kernel gives it (`gpioinfo` lists them).
 */
export type PinSpec =
  | { bcm: number }
  | { global: number }
  | { firmata: number }
  | { chip: string; offset: number }
  | { name: string };

export interface OutputLine {
  write(level: Level): void;
  /** Reads the level back, where the backend can (used by self-test). */
  read?(): Level;
  /**
   * Gives the line back. It stays an output at the level last written, as hardware latches it;
   * it is never handed back as an input, which could float a relay on.
   */
  release(): void;
}

export interface InputLine {
  read(): Level;
  /** One watcher per line; `onError` hears read failures the backend reports asynchronously. */
  watch(cb: (level: Level) => void, onError?: (err: Error) => void): void;
  release(): void;
}

export interface OutputOptions {
  /** The level the line must come up at: exported as an output at this level with no glitch where the backend allows. */
  initial: Level;
}

export interface InputOptions {
  /**
   * The pull resistor the input needs. johnny-five sets it (Firmata PULLUP mode) and the
   * simulated backend idles the line at it; sysfs cannot set pulls, so on a Pi they come
   * from config.txt (`gpio=17=ip,pu`) or an external resistor.
   */
  pull?: "up" | "down";
}

export type GpioBackendKind = "onoff" | "sysfs" | "simulated" | "johnny-five" | "chardev";
export type BackendState = "ok" | "disconnected";

/** A Firmata board's link: "reconnecting" while it is gone and being reopened with backoff. */
export interface BoardLink {
  state: "connected" | "reconnecting" | "disconnected";
  /** Reopen attempts since it was lost (0 while connected). */
  attempts: number;
  lastError?: string;
}

export interface GpioBackend {
  readonly kind: GpioBackendKind;
  /** "disconnected" when the board behind it went away (johnny-five); always "ok" once started for the others. */
  readonly state: BackendState;
  readonly lastError: string | undefined;
  /** One line for logs and telemetry, e.g. `simulated (no GPIO on this machine: Gpio.accessible is false)`. */
  describe(): string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Turns a config pin into this backend's line number; `field` names the config field in errors. */
  resolve(spec: PinSpec, field: string): Promise<number>;
  output(line: number, options: OutputOptions): Promise<OutputLine>;
  input(line: number, edge: Edge, options?: InputOptions): Promise<InputLine>;
  /** Why a held line does not work right now (its tool process died and is being restarted); undefined when it does. */
  lineFault?(line: number): string | undefined;
  /** How a line is written for people, e.g. `gpiochip0 17`; the number itself where absent. */
  describeLine?(line: number): string;
  /** The board link of a backend that has one (johnny-five). */
  readonly board?: BoardLink;
  /**
   * Calls `fn` after every change of state, board link or line fault (health pushes), and with
   * `restored: true` once lines were re-acquired after the board came back (roles re-apply their state).
   */
  watchState?(fn: (event: { restored: boolean }) => void): () => void;
}

/** A configuration that cannot work on this machine: a human has to fix the config file. */
export class GpioConfigError extends Error {
  override name = "GpioConfigError";
}

export function describePin(spec: PinSpec): string {
  if ("bcm" in spec) return `{ bcm: ${spec.bcm} }`;
  if ("global" in spec) return `{ global: ${spec.global} }`;
  if ("chip" in spec) return `{ chip: "${spec.chip}", offset: ${spec.offset} }`;
  if ("name" in spec) return `{ name: "${spec.name}" }`;
  return `{ firmata: ${spec.firmata} }`;
}

/** Whether a change to `level` is one `edge` reports. */
export function edgeMatches(edge: Edge, level: Level): boolean {
  return edge === "both" || (edge === "rising" ? level === 1 : level === 0);
}
