/**
 * Work that runs every `everyMs` (telemetry, compaction) as a part: each run
 * is tracked, so stopping waits for one in progress; the next is scheduled
 * only after the previous one ended, so a slow run never piles up.
 */
import type { KioskKit } from "./kit.ts";
import type { Part } from "./lifecycle.ts";

export class Every implements Part {
  readonly name: string;
  readonly #k: Pick<KioskKit, "timers" | "work">;
  #everyMs: number;
  readonly #run: () => Promise<void>;
  #timer: unknown;
  #running = false;

  constructor(kit: Pick<KioskKit, "timers" | "work">, name: string, everyMs: number, run: () => Promise<void>) {
    this.name = name;
    this.#k = kit;
    this.#everyMs = everyMs;
    this.#run = run;
  }

  start(): void {
    this.#running = true;
    this.#schedule();
  }

  stop(): void {
    this.#running = false;
    this.#k.timers.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  get everyMs(): number {
    return this.#everyMs;
  }

  /** A new period, from now on: a tick already waiting is rescheduled (ops change telemetry's live). */
  setEveryMs(ms: number): void {
    this.#everyMs = ms;
    if (this.#timer === undefined || !this.#running) return;
    this.#k.timers.clearTimeout(this.#timer);
    this.#schedule();
  }

  /** Runs now instead of at the next tick; stopping waits for it. */
  runNow(): Promise<void> {
    return this.#k.work.track(this.#run());
  }

  #schedule(): void {
    this.#timer = this.#k.timers.setTimeout(() => {
      this.#timer = undefined; // running: a new period applies when it ends
      void this.runNow().finally(() => {
        if (this.#running) this.#schedule();
      });
    }, this.#everyMs);
  }
}
