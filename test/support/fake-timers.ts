/**
 * A fake clock implementing protocol's `Timers`: tests advance time
 * by hand, so nothing sleeps on the wall clock. `now()` follows the same clock.
 */
import type { Timers } from "@paylane/protocol";

interface Pending {
  id: number;
  at: number;
  fn: () => void;
}

export class FakeTimers implements Timers {
  #now: number;
  #nextId = 1;
  readonly #pending = new Map<number, Pending>();

  constructor(start: Date | number = Date.UTC(2024, 4, 1, 9, 0, 0)) {
    this.#now = typeof start === "number" ? start : start.getTime();
  }

  /** The fake time; pass as the `now` option. */
  now = (): Date => new Date(this.#now);

  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.#nextId++;
    this.#pending.set(id, { id, at: this.#now + Math.max(0, ms), fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    if (typeof handle === "number") this.#pending.delete(handle);
  }

  /** Timers not yet fired or cleared. */
  get pending(): number {
    return this.#pending.size;
  }

  /** Moves the clock forward by `ms`, firing due timers in time order (ties in the order they were set). */
  advance(ms: number): void {
    const until = this.#now + ms;
    for (;;) {
      let next: Pending | undefined;
      for (const p of this.#pending.values()) {
        if (p.at <= until && (!next || p.at < next.at || (p.at === next.at && p.id < next.id))) next = p;
      }
      if (!next) break;
      this.#pending.delete(next.id);
      this.#now = next.at;
      next.fn();
    }
    this.#now = until;
  }

  /** Sets the clock to `at` without firing anything earlier than advance() would. */
  set(at: Date): void {
    const ms = at.getTime() - this.#now;
    if (ms < 0) throw new Error("the fake clock only moves forward");
    this.advance(ms);
  }
}
