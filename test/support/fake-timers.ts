/**
 * A fake clock implementing protocol's `Timers`: tests advance time by hand,
 * so nothing sleeps on the wall clock. `now()` follows the same clock.
 *
 * The clock is @sinonjs/fake-timers' own (`createClock`, installed on no
 * global): only the code a test hands this object to sees fake time.
 */
import type { Timers } from "@paylane/protocol";
import { type Clock, createClock, type TimerId } from "@sinonjs/fake-timers";
import type { Signal } from "./signal.ts";

export class FakeTimers implements Timers {
  readonly #clock: Clock;

  constructor(start: Date | number = Date.UTC(2024, 4, 1, 9, 0, 0)) {
    this.#clock = createClock(typeof start === "number" ? start : start.getTime());
  }

  /** The fake time; pass as the `now` option. */
  now = (): Date => new Date(this.#clock.now);

  setTimeout(fn: () => void, ms: number): unknown {
    // A negative delay is due now, as with Node's timers.
    return this.#clock.setTimeout(fn, Math.max(0, ms));
  }

  clearTimeout(handle: unknown): void {
    // Only handles this clock gave out come here (Timers is one clock's pair).
    this.#clock.clearTimeout(handle as TimerId | undefined);
  }

  /** Timers not yet fired or cleared. */
  get pending(): number {
    return this.#clock.countTimers();
  }

  /**
   * Moves the clock forward by `ms`, firing due timers in time order (ties in
   * the order they were set), each with `now()` at its due time; a timer set
   * by a firing timer fires in the same advance when it is due by its end.
   * Synchronous: callbacks run, the promises they start do not settle until
   * the test awaits.
   */
  advance(ms: number): void {
    this.#clock.tick(ms);
  }

  /** Sets the clock to `at` without firing anything earlier than advance() would. */
  set(at: Date): void {
    const ms = at.getTime() - this.#clock.now;
    if (ms < 0) throw new Error("the fake clock only moves forward");
    this.advance(ms);
  }
}

/**
 * Waits for `check` while driving `timers`: every 20 ms of real time (replies from real peers come
 * in between) the fake clock moves `stepMs` (0: not at all) and `signal` re-checks.
 */
export async function untilDriven(
  timers: FakeTimers,
  signal: Signal,
  check: () => boolean | Promise<boolean>,
  what: string,
  { stepMs, limitMs = 15_000 }: { stepMs: number; limitMs?: number },
): Promise<void> {
  const poll = setInterval(() => {
    if (stepMs > 0) timers.advance(stepMs);
    signal.notify();
  }, 20);
  try {
    await signal.until(check, what, limitMs);
  } finally {
    clearInterval(poll);
  }
}
