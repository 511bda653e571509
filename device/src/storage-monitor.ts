/**
 * Whether the journal can make writes durable. A failed write (disk full,
 * I/O error; the journal reports each one itself) marks storage "failing":
 * what needs a write is refused and the UI says why. A probe write on a
 * timer finds out when writes work again.
 */
import type { Logger } from "pino";
import type { Journal } from "./journal.ts";
import type { Timers } from "./timers.ts";

export interface StorageStatus {
  state: "ok" | "failing";
  lastError?: string;
}

export interface StorageMonitorOptions {
  journal: Journal;
  timers: Timers;
  logger: Logger;
  /** How often a probe write is tried while failing. */
  probeMs: number;
  /** Storage went from ok to failing, or back. */
  onChange: (status: StorageStatus) => void;
}

export class StorageMonitor {
  readonly name = "storage monitor";
  readonly #o: StorageMonitorOptions;
  #status: StorageStatus = { state: "ok" };
  #probeTimer: unknown;
  #stopped = false;

  constructor(o: StorageMonitorOptions) {
    this.#o = o;
  }

  get status(): StorageStatus {
    return this.#status;
  }

  start(): void {
    this.#stopped = false;
    this.#o.journal.events.on("write-failed", this.#onWriteFailed);
  }

  readonly #onWriteFailed = (err: Error) => this.failed(err);

  /** A write failed: the caller already answered "cannot record"; probing starts unless it runs already. */
  failed(err: Error): void {
    const wasOk = this.#status.state === "ok";
    this.#status = { state: "failing", lastError: err.message };
    if (!wasOk || this.#stopped) return;
    this.#o.logger.error({ err: err.message }, "journal cannot write: refusing check-ins until storage recovers");
    this.#o.onChange(this.#status);
    this.#scheduleProbe();
  }

  stop(): void {
    this.#stopped = true;
    this.#o.journal.events.off("write-failed", this.#onWriteFailed);
    this.#o.timers.clearTimeout(this.#probeTimer);
    this.#probeTimer = undefined;
  }

  #scheduleProbe(): void {
    this.#probeTimer = this.#o.timers.setTimeout(() => {
      this.#probeTimer = undefined;
      void this.#o.journal.probeWritable().then((ok) => {
        if (this.#stopped) return;
        if (!ok) return this.#scheduleProbe();
        this.#status = { state: "ok" };
        this.#o.logger.info("journal writes again: check-ins resume");
        this.#o.onChange(this.#status);
      });
    }, this.#o.probeMs);
  }
}
