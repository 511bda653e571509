/**
 * The buzzer: an active buzzer (its own oscillator, sounds while the line is
 * on), so sounds differ by rhythm, not pitch. A new sound cuts the one
 * playing; every sound ends off, and stop() leaves it off.
 */
import type { Logger } from "pino";
import type { Timers } from "../../timers.ts";
import type { GpioBackend } from "./backend.ts";
import { type RoleHealth, RoleOutput, RoleStatus, type Step, StepPlayer } from "./role.ts";

export type BuzzerSound = "beep" | "refuse" | "chirp";

export const BUZZER_SOUNDS: Readonly<Record<BuzzerSound, readonly Step[]>> = {
  /** One short beep, on 80 ms: a card was read. */
  beep: [[true, 80]],
  /** Two long tones, on 400 / off 150 / on 400: refused. Long enough to tell apart from a read without looking. */
  refuse: [
    [true, 400],
    [false, 150],
    [true, 400],
  ],
  /** A 30 ms tick: self-test. */
  chirp: [[true, 30]],
};

export interface BuzzerOptions {
  backend: GpioBackend;
  line: number;
  timers: Timers;
  logger: Logger;
  /** Default false: sounds while the line is high. */
  activeLow?: boolean;
}

export class Buzzer {
  readonly #o: BuzzerOptions;
  readonly #status = new RoleStatus();
  readonly #out: RoleOutput;
  readonly #player: StepPlayer;

  constructor(o: BuzzerOptions) {
    this.#o = o;
    this.#out = new RoleOutput(o.activeLow ?? false, this.#status, o.logger.child({ role: "buzzer", line: o.line }));
    this.#player = new StepPlayer(o.timers, (on) => this.#out.set(on));
  }

  get health(): RoleHealth {
    return this.#status.health;
  }

  get sounding(): boolean {
    return this.#player.playing;
  }

  async start(): Promise<void> {
    if (!this.#out.line) await this.#out.open(this.#o.backend, this.#o.line);
  }

  async stop(): Promise<void> {
    this.#player.cancel();
    this.#out.set(false);
    this.#out.close();
  }

  /** The line was set up again (a reopened board): silent, as it came back. */
  reassert(): void {
    this.#player.cancel();
    this.#out.set(false);
  }

  /** A card was read. */
  beep(): void {
    this.#sound("beep");
  }

  /** The tap was refused. */
  refuse(): void {
    this.#sound("refuse");
  }

  /** Plays a sound; resolves true when it played to the end, false when cut short or not started. */
  play(sound: BuzzerSound): Promise<boolean> {
    return new Promise((resolve) => this.#sound(sound, resolve));
  }

  #sound(sound: BuzzerSound, done?: (completed: boolean) => void): void {
    // Not started (or GPIO failed to start): a tap still completes, just silently.
    if (!this.#out.line) {
      done?.(false);
      return;
    }
    this.#player.play(BUZZER_SOUNDS[sound], false, done);
  }
}
