/**
 * The status LED. Each pattern is an on/off sequence in ms that repeats
 * (Infinity = steady); plain GPIO has no PWM, so "idle" is steady on rather
 * than a breathe.
 */
import type { Logger } from "pino";
import type { Timers } from "../../timers.ts";
import type { GpioBackend } from "./backend.ts";
import { type RoleHealth, RoleOutput, RoleStatus, type Step, StepPlayer } from "./role.ts";

export type LedPattern = "off" | "idle" | "busy" | "offline" | "fault";

const SOS_S: Step[] = [
  [true, 150],
  [false, 150],
  [true, 150],
  [false, 150],
  [true, 150],
];
const SOS_O: Step[] = [
  [true, 450],
  [false, 150],
  [true, 450],
  [false, 150],
  [true, 450],
];

export const LED_PATTERNS: Readonly<Record<LedPattern, readonly Step[]>> = {
  /** Steady off. */
  off: [[false, Number.POSITIVE_INFINITY]],
  /** Steady on: ready for a tap. */
  idle: [[true, Number.POSITIVE_INFINITY]],
  /** Fast blink, on 100 / off 100 (5 Hz): working on a tap. */
  busy: [
    [true, 100],
    [false, 100],
  ],
  /** Double blink every 1.5 s: on 150 / off 150 / on 150 / off 1050; no uplink, check-ins are journaled. */
  offline: [
    [true, 150],
    [false, 150],
    [true, 150],
    [false, 1050],
  ],
  /**
   * SOS, 5.1 s: three 150 ms dots, three 450 ms dashes, three dots; 150 ms between
   * flashes, 450 ms between letters, 1050 ms before it repeats. Needs a person.
   */
  fault: [...SOS_S, [false, 450], ...SOS_O, [false, 450], ...SOS_S, [false, 1050]],
};

/** The self-test blink: on 150 / off 150, twice. */
export const LED_SELF_TEST: readonly Step[] = [
  [true, 150],
  [false, 150],
  [true, 150],
  [false, 150],
];

export interface StatusLedOptions {
  backend: GpioBackend;
  line: number;
  timers: Timers;
  logger: Logger;
  /** Default false: the LED lights when the line is high. */
  activeLow?: boolean;
}

export class StatusLed {
  readonly #o: StatusLedOptions;
  readonly #status = new RoleStatus();
  readonly #out: RoleOutput;
  readonly #player: StepPlayer;
  /** Runs the self-test blink; while it plays, set() only records the pattern to resume. */
  #testPlayer: StepPlayer | undefined;
  #pattern: LedPattern = "off";

  constructor(o: StatusLedOptions) {
    this.#o = o;
    this.#out = new RoleOutput(o.activeLow ?? false, this.#status, o.logger.child({ role: "led", line: o.line }));
    this.#player = new StepPlayer(o.timers, (on) => this.#out.set(on));
  }

  get health(): RoleHealth {
    return this.#status.health;
  }

  get pattern(): LedPattern {
    return this.#pattern;
  }

  /** Shows `pattern`; setting the one already showing does not restart it. Before start, it is shown at start. */
  set(pattern: LedPattern): void {
    if (pattern === this.#pattern && this.#player.playing) return;
    this.#pattern = pattern;
    if (this.#out.line && !this.#testPlayer) this.#player.play(LED_PATTERNS[pattern], true);
  }

  /** The line was set up again (a reopened board): shows the current pattern from its start. */
  reassert(): void {
    if (this.#out.line && !this.#testPlayer) this.#player.play(LED_PATTERNS[this.#pattern], true);
  }

  async start(): Promise<void> {
    if (this.#out.line) return;
    await this.#out.open(this.#o.backend, this.#o.line);
    this.#player.play(LED_PATTERNS[this.#pattern], true);
  }

  async stop(): Promise<void> {
    this.#testPlayer?.cancel();
    this.#player.cancel();
    this.#out.set(false);
    this.#out.close();
  }

  /**
   * Self-test: blinks LED_SELF_TEST, then resumes the pattern. Resolves whether every
   * write succeeded and, where the backend reads outputs back, the line followed.
   */
  blinkTest(): Promise<{ ok: boolean; detail: string }> {
    if (!this.#out.line) return Promise.resolve({ ok: false, detail: "not started" });
    if (this.#testPlayer) return Promise.resolve({ ok: false, detail: "a blink test is already running" });
    let wrote = true;
    let followed: boolean | undefined;
    const player = new StepPlayer(this.#o.timers, (on) => {
      wrote = this.#out.set(on) && wrote;
      const back = this.#out.isOn();
      if (back !== undefined) followed = (followed ?? true) && back === on;
    });
    this.#player.cancel();
    this.#testPlayer = player;
    return new Promise((resolve) => {
      player.play(LED_SELF_TEST, false, (completed) => {
        this.#testPlayer = undefined;
        if (this.#out.line) this.#player.play(LED_PATTERNS[this.#pattern], true);
        if (!completed) return resolve({ ok: false, detail: "interrupted" });
        if (!wrote) return resolve({ ok: false, detail: `write failed: ${this.health.lastError ?? ""}` });
        if (followed === false) return resolve({ ok: false, detail: "blinked, but the line did not read back" });
        resolve({ ok: true, detail: followed ? "blinked, read back" : "blinked" });
      });
    });
  }
}
