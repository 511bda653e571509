/**
 * What the printer unit needs of its link: bytes out, and reads with a
 * timeout for status answers. A serial printer and the simulator's cable are
 * the drivers' one byte pipe (SerialLink) with reads on top (LinkTransport);
 * a USB printer's device file is read only when asked (device-file-transport.ts).
 * Every transport passes the same contract suite, so the printer unit never
 * knows which one it has.
 */
import { stat } from "node:fs/promises";
import type { Timers } from "../../timers.ts";
import type { SerialLink } from "../serial/serial-link.ts";

export interface PrinterTransport {
  /** For logs, e.g. "serial /dev/ttyUSB0@19200". */
  readonly description: string;
  readonly isOpen: boolean;
  /** Opens the link; rejects with a TransportError naming the path when it cannot. */
  open(): Promise<void>;
  /** Idempotent; a pending read rejects with a TransportError (closed). */
  close(): Promise<void>;
  /** Resolves once the bytes are handed to the OS/peer; rejects when the link is closed or lost. */
  write(data: Uint8Array): Promise<void>;
  /**
   * Up to `max` bytes from the printer: those already received, else the first
   * to arrive within `timeoutMs`; an empty array when none came in time.
   * Rejects when the link is closed or lost.
   */
  read(max: number, timeoutMs: number): Promise<Uint8Array>;
  /** Drops bytes received but not yet read (a late answer to an earlier query). */
  discardInput(): Promise<void>;
  /**
   * Whether the device node is there now: unplugging a USB printer or adapter
   * takes it away, plugging it back makes it again. Lets the printer notice
   * both at once, while idle, instead of at its next poll or backoff step.
   * Absent when the link has no node (the in-memory cable).
   */
  present?(): Promise<boolean>;
  /** Calls `listener` when an open link is lost by itself (not by close()); returns the unsubscribe. */
  onLost?(listener: (err: TransportError) => void): () => void;
}

/** Whether `path` exists (a symlink counts only if its target does: a pty link left dangling is gone). */
export async function pathPresent(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    // Only a missing node is an unplug; anything else (no permission, a symlink loop) is the open's to report.
    return (err as NodeJS.ErrnoException).code !== "ENOENT";
  }
}

export type TransportErrorCode = "not-open" | "closed" | "lost" | "open-failed" | "io";

export class TransportError extends Error {
  override readonly name = "TransportError";
  constructor(
    readonly code: TransportErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

interface PendingRead {
  max: number;
  resolve: (b: Uint8Array) => void;
  reject: (e: Error) => void;
  timer: unknown;
}

/**
 * Received bytes waiting for a read, bounded (oldest dropped: status answers
 * are tiny, anything more is noise), and at most one read waiting for them.
 */
export class ReadBuffer {
  #chunks: Uint8Array[] = [];
  #size = 0;
  #pending: PendingRead | undefined;
  /** Bytes dropped because nobody read them in time. */
  dropped = 0;

  constructor(
    private readonly timers: Timers,
    private readonly limit = 4096,
  ) {}

  get size(): number {
    return this.#size;
  }

  get waiting(): boolean {
    return this.#pending !== undefined;
  }

  push(data: Uint8Array): void {
    if (data.length === 0) return;
    this.#chunks.push(Uint8Array.from(data));
    this.#size += data.length;
    while (this.#size > this.limit) {
      const first = this.#chunks[0] as Uint8Array;
      const over = this.#size - this.limit;
      if (first.length <= over) {
        this.#chunks.shift();
        this.#size -= first.length;
        this.dropped += first.length;
      } else {
        this.#chunks[0] = first.subarray(over);
        this.#size -= over;
        this.dropped += over;
      }
    }
    const p = this.#pending;
    if (p) {
      this.#pending = undefined;
      this.timers.clearTimeout(p.timer);
      p.resolve(this.#take(p.max));
    }
  }

  read(max: number, timeoutMs: number): Promise<Uint8Array> {
    if (!Number.isInteger(max) || max < 1) return Promise.reject(new RangeError(`read max must be >= 1, got ${max}`));
    if (this.#pending) return Promise.reject(new Error("a read is already pending on this transport"));
    if (this.#size > 0) return Promise.resolve(this.#take(max));
    return new Promise((resolve, reject) => {
      const timer = this.timers.setTimeout(() => {
        this.#pending = undefined;
        resolve(new Uint8Array(0));
      }, timeoutMs);
      this.#pending = { max, resolve, reject, timer };
    });
  }

  /** Settles a waiting read with `err` (link closed or lost). */
  fail(err: Error): void {
    const p = this.#pending;
    if (!p) return;
    this.#pending = undefined;
    this.timers.clearTimeout(p.timer);
    p.reject(err);
  }

  clear(): void {
    this.#chunks = [];
    this.#size = 0;
  }

  #take(max: number): Uint8Array {
    const n = Math.min(max, this.#size);
    const out = new Uint8Array(n);
    let at = 0;
    while (at < n) {
      const first = this.#chunks[0] as Uint8Array;
      const k = Math.min(first.length, n - at);
      out.set(first.subarray(0, k), at);
      at += k;
      if (k === first.length) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(k);
    }
    this.#size -= n;
    return out;
  }
}

/** The printer's end of a link, as a simulator or a test holds it: any SerialLink will do. */
export type PrinterEnd = Pick<SerialLink, "onData" | "write">;
