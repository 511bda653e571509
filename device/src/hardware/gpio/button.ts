/**
 * The "call staff" button: debounced, one press reported per press. A press
 * counts once the line has stayed at the pressed level for `debounceMs` after
 * its last change, so a bounce train is one press and holding the button
 * down never repeats; it must be released (stably) before it can fire again.
 */
import type { Logger } from "pino";
import type { Timers } from "../../timers.ts";
import type { GpioBackend, InputLine, Level } from "./backend.ts";
import { physical, type RoleHealth, RoleStatus } from "./role.ts";

export const DEBOUNCE_MS_DEFAULT = 50;

export interface CallStaffButtonOptions {
  backend: GpioBackend;
  /** The backend's line number (already resolved from the config). */
  line: number;
  timers: Timers;
  logger: Logger;
  /** Default true: a button to ground on a pulled-up input reads 0 while pressed. */
  activeLow?: boolean;
  debounceMs?: number;
  /** Called once per press; the daemon raises an alert to ops. */
  onPress: () => void;
}

export class CallStaffButton {
  readonly #o: CallStaffButtonOptions;
  readonly #activeLow: boolean;
  readonly #debounceMs: number;
  readonly #status = new RoleStatus();
  readonly #log: Logger;
  #input: InputLine | undefined;
  #timer: unknown;
  #latest: Level = 0;
  #pressed = false;
  #presses = 0;

  constructor(o: CallStaffButtonOptions) {
    this.#o = o;
    this.#activeLow = o.activeLow ?? true;
    this.#debounceMs = o.debounceMs ?? DEBOUNCE_MS_DEFAULT;
    this.#log = o.logger.child({ role: "button", line: o.line });
  }

  get health(): RoleHealth {
    return this.#status.health;
  }

  /** The debounced state. */
  get pressed(): boolean {
    return this.#pressed;
  }

  /** Presses reported since start. */
  get presses(): number {
    return this.#presses;
  }

  async start(): Promise<void> {
    if (this.#input) return;
    let input: InputLine;
    try {
      input = await this.#o.backend.input(this.#o.line, "both", { pull: this.#activeLow ? "up" : "down" });
      this.#latest = input.read();
    } catch (err) {
      this.#status.failed(err, "disconnected");
      throw err;
    }
    this.#input = input;
    // Held down at start is not a press: only a transition to pressed counts.
    this.#pressed = this.#isPressed(this.#latest);
    input.watch(
      (level) => {
        // a report arriving means reads work again after a failure
        this.#status.ok();
        this.#latest = level;
        this.#timers.clearTimeout(this.#timer);
        this.#timer = this.#timers.setTimeout(() => this.#settle(), this.#debounceMs);
      },
      (err) => {
        if (this.#status.failed(err)) this.#log.warn({ err }, "call-staff button read failed");
      },
    );
    this.#status.ok();
  }

  async stop(): Promise<void> {
    this.#timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#input?.release();
    this.#input = undefined;
    this.#status.stopped();
  }

  /** Reads the line now (self-test): whether it is pressed. */
  readPressed(): boolean {
    if (!this.#input) throw new Error("call-staff button is not started");
    return this.#isPressed(this.#input.read());
  }

  get #timers(): Timers {
    return this.#o.timers;
  }

  #isPressed(level: Level): boolean {
    return level === physical(true, this.#activeLow);
  }

  #settle(): void {
    this.#timer = undefined;
    const pressed = this.#isPressed(this.#latest);
    if (pressed === this.#pressed) return;
    this.#pressed = pressed;
    if (!pressed) return;
    this.#presses++;
    this.#log.info("call-staff button pressed");
    try {
      this.#o.onPress();
    } catch (err) {
      // a failing handler must not take the button (or the daemon) down
      this.#log.error({ err }, "call-staff handler failed");
    }
  }
}
