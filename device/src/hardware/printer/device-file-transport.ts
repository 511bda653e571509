/**
 * A USB printer through the kernel's usblp device file (/dev/usb/lp0), with
 * node:fs FileHandle read/write.
 *
 * The file is opened O_NONBLOCK: a blocking read on usblp waits for the printer
 * to send something, which it only does when asked, and would pin a libuv pool
 * thread (and FileHandle.close() waits for it). So a read polls: it tries at
 * once, then every `pollIntervalMs` until the answer or the timeout. Polling
 * happens only while a read is waiting. Writes that meet EAGAIN (printer busy)
 * are retried the same way. That is why this one is not a SerialLink: a link
 * pushes bytes as they come, and usblp has bytes only when read.
 */
import { constants as fsConstants } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import type { Timers } from "../../timers.ts";
import { type PrinterTransport, pathPresent, ReadBuffer, TransportError } from "./transport.ts";

export interface DeviceFileTransportOptions {
  /** e.g. /dev/usb/lp0 */
  path: string;
  /** Read timeouts. */
  timers: Timers;
  pollIntervalMs?: number;
  /** Clock for the polling cadence only; defaults to `timers`. */
  pollTimers?: Timers;
}

const RETRY = new Set(["EAGAIN", "EWOULDBLOCK", "EINTR"]);

function errCode(err: unknown): string {
  return (err as NodeJS.ErrnoException | undefined)?.code ?? "";
}

export class DeviceFileTransport implements PrinterTransport {
  readonly description: string;
  readonly #o: Required<DeviceFileTransportOptions>;
  readonly #buf: ReadBuffer;
  readonly #chunk = Buffer.alloc(256);
  #fh: FileHandle | undefined;
  #polling = false;
  #pollTimer: unknown;
  #writeWaiters = new Set<() => void>();

  constructor(opts: DeviceFileTransportOptions) {
    if (!opts.path) throw new RangeError("printer device path must be a path like /dev/usb/lp0");
    this.#o = { pollIntervalMs: 10, pollTimers: opts.timers, ...opts };
    if (!(this.#o.pollIntervalMs > 0))
      throw new RangeError(`pollIntervalMs must be > 0, got ${this.#o.pollIntervalMs}`);
    this.#buf = new ReadBuffer(opts.timers);
    this.description = `device ${opts.path}`;
  }

  get isOpen(): boolean {
    return this.#fh !== undefined;
  }

  /** usblp's node goes with the printer: udev removes /dev/usb/lpN on unplug and makes it again on replug. */
  present(): Promise<boolean> {
    return pathPresent(this.#o.path);
  }

  async open(): Promise<void> {
    if (this.#fh) return;
    try {
      this.#fh = await open(this.#o.path, fsConstants.O_RDWR | fsConstants.O_NONBLOCK | fsConstants.O_NOCTTY);
    } catch (err) {
      throw new TransportError("open-failed", `cannot open printer device ${this.#o.path}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  async close(): Promise<void> {
    await this.#shut(new TransportError("closed", `printer device ${this.#o.path} closed`));
  }

  async write(data: Uint8Array): Promise<void> {
    let at = 0;
    while (at < data.length) {
      const fh = this.#fh;
      if (!fh) throw new TransportError("not-open", `printer device ${this.#o.path} is not open`);
      try {
        const { bytesWritten } = await fh.write(data, at, data.length - at, null);
        at += bytesWritten;
      } catch (err) {
        if (!RETRY.has(errCode(err))) throw await this.#lost(err, "write");
        await this.#pause();
      }
    }
  }

  read(max: number, timeoutMs: number): Promise<Uint8Array> {
    if (!this.#fh) return Promise.reject(new TransportError("not-open", `printer device ${this.#o.path} is not open`));
    const p = this.#buf.read(max, timeoutMs);
    if (this.#buf.waiting) this.#poll();
    return p;
  }

  /** Also drains what the kernel holds: nothing reads the device between queries. */
  async discardInput(): Promise<void> {
    if (this.#buf.waiting) return;
    for (let i = 0; i < 64; i++) if (!(await this.#readNow())) break;
    this.#buf.clear();
  }

  /** Reads what the device has now; false when the device has nothing more. */
  async #readNow(): Promise<boolean> {
    const fh = this.#fh;
    if (!fh) return false;
    try {
      const { bytesRead } = await fh.read(this.#chunk, 0, this.#chunk.length, null);
      if (bytesRead > 0) this.#buf.push(this.#chunk.subarray(0, bytesRead));
      return bytesRead > 0;
    } catch (err) {
      if (!RETRY.has(errCode(err))) await this.#lost(err, "read");
      return false;
    }
  }

  #poll(): void {
    if (this.#polling) return;
    this.#polling = true;
    const again = () => {
      this.#polling = false;
      if (this.#fh && this.#buf.waiting) {
        this.#pollTimer = this.#o.pollTimers.setTimeout(() => this.#poll(), this.#o.pollIntervalMs);
      }
    };
    // #readNow handles its own errors; the second handler only keeps the loop alive if that ever changes.
    void this.#readNow().then(again, again);
  }

  /** Waits one poll interval before a write retry; close() cuts it short. */
  #pause(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.#writeWaiters.delete(done);
        this.#o.pollTimers.clearTimeout(timer);
        resolve();
      };
      const timer = this.#o.pollTimers.setTimeout(done, this.#o.pollIntervalMs);
      this.#writeWaiters.add(done);
    });
  }

  async #lost(err: unknown, op: string): Promise<TransportError> {
    const e = new TransportError("lost", `printer device ${this.#o.path} failed on ${op}: ${(err as Error).message}`, {
      cause: err,
    });
    await this.#shut(e);
    return e;
  }

  async #shut(reason: TransportError): Promise<void> {
    const fh = this.#fh;
    this.#fh = undefined;
    this.#o.pollTimers.clearTimeout(this.#pollTimer);
    this.#pollTimer = undefined;
    for (const w of [...this.#writeWaiters]) w();
    this.#buf.clear();
    this.#buf.fail(reason);
    if (fh) await fh.close().catch(() => {});
  }
}
