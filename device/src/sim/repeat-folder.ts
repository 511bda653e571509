/**
 * Folds a conversation that repeats itself into one line: a tool polling in a
 * tight loop (libnfc's nfc_initiator_target_is_present sends the same frame
 * thousands of times a second while a card is held) would otherwise bury
 * everything else. A run of the same request and answer prints once, then
 * `  … the same 2 lines 1534 more times` when something else happens or the
 * line goes quiet.
 */
import { realTimers, type Timers } from "../timers.ts";

/** Lines per repeating cycle: a request and its answer. */
const CYCLE = 2;
/** A run still going is counted out after this much quiet, so the count shows while the tool waits. */
const QUIET_MS = 500;

export class RepeatFolder {
  readonly #out: (line: string) => void;
  readonly #timers: Timers;
  /** The last CYCLE lines printed. */
  #recent: string[] = [];
  #folded = 0;
  #quiet: unknown;

  constructor(out: (line: string) => void, timers: Timers = realTimers) {
    this.#out = out;
    this.#timers = timers;
  }

  /** A line that may repeat the last cycle. */
  line(text: string): void {
    if (this.#recent.length === CYCLE && text === this.#recent[this.#folded % CYCLE]) {
      this.#folded++;
      this.#timers.clearTimeout(this.#quiet);
      this.#quiet = this.#timers.setTimeout(() => this.flush(), QUIET_MS);
      return;
    }
    this.flush();
    this.#out(text);
    this.#recent = [...this.#recent, text].slice(-CYCLE);
  }

  /** Prints the count of what was folded, if anything; the next line starts afresh. */
  flush(): void {
    this.#timers.clearTimeout(this.#quiet);
    this.#quiet = undefined;
    if (this.#folded === 0) return;
    const cycles = Math.floor(this.#folded / CYCLE);
    if (cycles > 0) this.#out(`  … the same ${CYCLE} lines ${cycles} more time${cycles === 1 ? "" : "s"}`);
    // A cycle cut short: its lines as they came.
    for (const line of this.#recent.slice(0, this.#folded % CYCLE)) this.#out(line);
    // After a count, a repeat of the cycle is news again.
    this.#recent = [];
    this.#folded = 0;
  }
}
