/**
 * What the four GPIO roles share: health for telemetry, on/off mapped to a
 * physical level, and a player that runs on/off step sequences on chained
 * timeouts (so stop() has exactly one timer to clear).
 */
import type { Logger } from "pino";
import type { Timers } from "../../timers.ts";
import type { GpioBackend, Level, OutputLine } from "./backend.ts";

export type RoleName = "button" | "led" | "buzzer" | "relay";
export type RoleState = "ok" | "degraded" | "disconnected";

export interface RoleHealth {
  state: RoleState;
  lastError?: string;
}

/** The physical level that means `on` for a line wired active-high or active-low. */
export function physical(on: boolean, activeLow: boolean): Level {
  return on !== activeLow ? 1 : 0;
}

/** A role's health: disconnected until started, degraded after a failed read or write. */
export class RoleStatus {
  #state: RoleState = "disconnected";
  #lastError: string | undefined;

  get health(): RoleHealth {
    return this.#lastError === undefined ? { state: this.#state } : { state: this.#state, lastError: this.#lastError };
  }

  ok(): void {
    this.#state = "ok";
  }

  /** Records a failure; returns true when this changed the state, so callers log once, not every blink. */
  failed(err: unknown, state: RoleState = "degraded"): boolean {
    this.#lastError = err instanceof Error ? err.message : String(err);
    const changed = this.#state !== state;
    this.#state = state;
    return changed;
  }

  stopped(): void {
    this.#state = "disconnected";
  }
}

/** An output line driven by on/off, recording failures in the role's status. */
export class RoleOutput {
  line: OutputLine | undefined;

  constructor(
    readonly activeLow: boolean,
    private readonly status: RoleStatus,
    private readonly log: Logger,
  ) {}

  /** Acquires `line` already off; a failure leaves the role disconnected and is rethrown. */
  async open(backend: GpioBackend, line: number): Promise<OutputLine> {
    try {
      this.line = await backend.output(line, { initial: physical(false, this.activeLow) });
    } catch (err) {
      this.status.failed(err, "disconnected");
      throw err;
    }
    this.status.ok();
    return this.line;
  }

  /** Gives the line back at the level last written (callers drive it off first). */
  close(): void {
    this.line?.release();
    this.line = undefined;
    this.status.stopped();
  }

  /** Returns false when the write did not happen (not started, or the backend failed). */
  set(on: boolean): boolean {
    if (!this.line) return false;
    try {
      this.line.write(physical(on, this.activeLow));
      this.status.ok();
      return true;
    } catch (err) {
      if (this.status.failed(err)) this.log.warn({ err }, "GPIO write failed");
      return false;
    }
  }

  /** Reads back whether the line is on; undefined where the backend cannot read outputs. */
  isOn(): boolean | undefined {
    if (!this.line?.read) return undefined;
    return this.line.read() === physical(true, this.activeLow);
  }
}

/** One step of a sequence: on or off for `ms` (Infinity = stay). */
export type Step = readonly [on: boolean, ms: number];

/** Plays step sequences on an output, once or repeating; a new play() replaces the current one. */
export class StepPlayer {
  #timer: unknown;
  #playing = false;
  #done: ((completed: boolean) => void) | undefined;

  constructor(
    private readonly timers: Timers,
    private readonly set: (on: boolean) => void,
  ) {}

  get playing(): boolean {
    return this.#playing;
  }

  /**
   * Plays `steps`. A sequence that does not repeat ends off and calls `done(true)`;
   * one replaced or cancelled first calls `done(false)`, so nobody waits forever.
   */
  play(steps: readonly Step[], repeat: boolean, done?: (completed: boolean) => void): void {
    this.cancel();
    this.#playing = true;
    this.#done = done;
    const run = (i: number) => {
      const step = steps[i];
      if (!step) {
        if (repeat && steps.length > 0) return run(0);
        this.#playing = false;
        this.set(false);
        const finished = this.#done;
        this.#done = undefined;
        finished?.(true);
        return;
      }
      this.set(step[0]);
      if (Number.isFinite(step[1])) this.#timer = this.timers.setTimeout(() => run(i + 1), step[1]);
    };
    run(0);
  }

  cancel(): void {
    this.timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#playing = false;
    const cancelled = this.#done;
    this.#done = undefined;
    cancelled?.(false);
  }
}
