/** A printer on a serial port (RS-232 or a USB-serial adapter), via serialport. */
import { SerialPort } from "serialport";
import type { Timers } from "../../timers.ts";
import { type PrinterTransport, ReadBuffer, TransportError } from "./transport.ts";

export interface SerialTransportOptions {
  path: string;
  /** Epson TM printers ship at 38400 or 19200 (DIP switches); must match the printer. */
  baudRate: number;
  timers: Timers;
}

export class SerialTransport implements PrinterTransport {
  readonly description: string;
  readonly #o: SerialTransportOptions;
  readonly #buf: ReadBuffer;
  #port: SerialPort | undefined;
  #detach: (() => void) | undefined;

  constructor(opts: SerialTransportOptions) {
    if (!opts.path) throw new RangeError("serial path must be a device path like /dev/ttyUSB0");
    if (!Number.isInteger(opts.baudRate) || opts.baudRate <= 0) {
      throw new RangeError(`serial baudRate must be a positive integer, got ${opts.baudRate}`);
    }
    this.#o = opts;
    this.#buf = new ReadBuffer(opts.timers);
    this.description = `serial ${opts.path}@${opts.baudRate}`;
  }

  get isOpen(): boolean {
    return this.#port?.isOpen === true;
  }

  async open(): Promise<void> {
    if (this.#port?.isOpen) return;
    // A port serialport is still closing after a failure: start afresh.
    if (this.#port) this.#teardown();
    const { path, baudRate } = this.#o;
    const port = new SerialPort({ path, baudRate, autoOpen: false });
    const onData = (chunk: Buffer) => this.#buf.push(chunk);
    const onClose = (err: (Error & { disconnected?: boolean }) | null) => {
      // serialport closes the stream itself when the device goes away (DisconnectedError).
      if (this.#port !== port) return;
      this.#teardown();
      this.#buf.fail(
        err?.disconnected
          ? new TransportError("lost", `serial port ${path} went away: ${err.message}`, { cause: err })
          : new TransportError("closed", `serial port ${path} closed`),
      );
    };
    port.on("data", onData);
    port.on("close", onClose);
    // Errors also arrive through write callbacks and "close"; this listener (left on, even after
    // teardown) keeps a late one on a dead port from crashing the process.
    port.on("error", () => {});
    this.#detach = () => {
      port.off("data", onData);
      port.off("close", onClose);
    };
    this.#port = port;
    try {
      await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
    } catch (err) {
      this.#teardown();
      throw new TransportError("open-failed", `cannot open serial port ${path}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  async close(): Promise<void> {
    const port = this.#port;
    if (!port) return;
    this.#teardown();
    this.#buf.fail(new TransportError("closed", `serial port ${this.#o.path} closed`));
    if (port.isOpen) await new Promise<void>((resolve) => port.close(() => resolve()));
  }

  async write(data: Uint8Array): Promise<void> {
    const port = this.#port;
    // A SerialPortStream that is not open queues writes until it opens: never let that happen.
    if (!port?.isOpen) throw new TransportError("not-open", `serial port ${this.#o.path} is not open`);
    await new Promise<void>((resolve, reject) => {
      port.write(Buffer.from(data), (err: Error | null | undefined) => {
        if (!err) return resolve();
        // serialport closes the port after a failed write; drop it now so open() starts afresh.
        const e = new TransportError("lost", `write to serial port ${this.#o.path} failed: ${err.message}`, {
          cause: err,
        });
        if (this.#port === port) {
          this.#teardown();
          this.#buf.fail(e);
        }
        reject(e);
      });
    });
  }

  read(max: number, timeoutMs: number): Promise<Uint8Array> {
    if (!this.#port?.isOpen) {
      return Promise.reject(new TransportError("not-open", `serial port ${this.#o.path} is not open`));
    }
    return this.#buf.read(max, timeoutMs);
  }

  async discardInput(): Promise<void> {
    this.#buf.clear();
  }

  #teardown(): void {
    this.#detach?.();
    this.#detach = undefined;
    this.#port = undefined;
    this.#buf.clear();
  }
}
