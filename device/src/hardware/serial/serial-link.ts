/**
 * The byte pipe every driver speaks through (the PN532 reader, the receipt
 * printer, the payment terminal), and its adapter onto `serialport`. A driver
 * is written against `SerialLink` and given an `OpenLink` factory, so the same
 * code runs on a real UART, a pty, serialport's mock binding, an in-memory
 * pair (./link-pair.ts) or a TCP connection (./tcp-link.ts).
 */

import { SerialPortStream } from "@serialport/stream";
import { hangUpAwareBinding } from "./hangup-binding.ts";

export interface SerialLink {
  /** Where the link goes, for logs ("/dev/ttyS0", "memory"). */
  readonly path: string;
  readonly isOpen: boolean;
  /**
   * Resolves once the bytes are handed to the OS (or the peer); rejects when
   * the link is not open or the write fails, which also ends the link
   * (onClose). A driver that learns of failures through onClose alone may
   * ignore the promise's rejection: see `send`.
   */
  write(bytes: Uint8Array): Promise<void>;
  /** Closes the link; resolves once closed. Safe to call twice. */
  close(): Promise<void>;
  /** Bytes as they arrive; returns the unsubscribe function. */
  onData(listener: (chunk: Uint8Array) => void): () => void;
  /** Called once when the link closes: `err` set when it was lost (unplugged, I/O error), unset when closed on purpose. */
  onClose(listener: (err: Error | undefined) => void): () => void;
}

/** Opens a fresh link each time it is called (first start, and every reconnect). */
export type OpenLink = () => Promise<SerialLink>;

export class SerialLinkError extends Error {
  override name = "SerialLinkError";
}

/** Writes without waiting: for drivers that hear a failed write as the link closing (onClose). */
export function send(link: Pick<SerialLink, "write"> | undefined, bytes: Uint8Array): void {
  link?.write(bytes).catch(() => {});
}

/** The rejection of a write on a link that is not open. */
export function notOpen(path: string): Promise<never> {
  return Promise.reject(new SerialLinkError(`${path} is not open`));
}

/** Listener bookkeeping shared by the adapters. */
export class LinkListeners {
  readonly #data = new Set<(chunk: Uint8Array) => void>();
  readonly #close = new Set<(err: Error | undefined) => void>();
  #closed = false;

  onData(listener: (chunk: Uint8Array) => void): () => void {
    this.#data.add(listener);
    return () => this.#data.delete(listener);
  }

  onClose(listener: (err: Error | undefined) => void): () => void {
    this.#close.add(listener);
    return () => this.#close.delete(listener);
  }

  get closed(): boolean {
    return this.#closed;
  }

  emitData(chunk: Uint8Array): void {
    if (this.#closed) return;
    for (const l of [...this.#data]) l(chunk);
  }

  /** Fires the close listeners once, then forgets every listener. */
  emitClose(err: Error | undefined): void {
    if (this.#closed) return;
    this.#closed = true;
    const listeners = [...this.#close];
    this.#data.clear();
    this.#close.clear();
    for (const l of listeners) l(err);
  }
}

/**
 * Wraps an open serialport stream (`SerialPort`, `SerialPortMock`). Any
 * 'error' is treated as the end of the link: the port is closed and onClose
 * reports the error, so a driver has one place to handle a lost device.
 */
function serialPortLink(port: SerialPortStream, path: string): SerialLink {
  const listeners = new LinkListeners();
  let closing: Promise<void> | undefined;
  const onData = (chunk: Buffer) => listeners.emitData(chunk);
  const detach = () => {
    port.off("data", onData);
    port.off("close", onClose);
    port.off("error", onError);
  };
  const onClose = (err: Error | null | undefined) => {
    detach();
    listeners.emitClose(err ?? undefined);
  };
  const onError = (err: Error) => {
    detach();
    listeners.emitClose(new SerialLinkError(`serial port ${path} failed: ${err.message}`));
    if (port.isOpen) port.close(() => {});
  };
  port.on("data", onData);
  port.on("close", onClose);
  port.on("error", onError);
  // Left on after the link is over: a late error on a dead port (a write that was in flight) must not crash the process.
  port.on("error", () => {});
  return {
    path,
    get isOpen() {
      return port.isOpen && !listeners.closed;
    },
    write(bytes) {
      // A SerialPortStream that is not open queues writes until it opens: never let that happen.
      if (!port.isOpen || listeners.closed) return notOpen(path);
      return new Promise<void>((resolve, reject) => {
        port.write(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), (err) => {
          // A failed write also reaches 'error', which ends the link.
          if (err) reject(new SerialLinkError(`write to serial port ${path} failed: ${err.message}`, { cause: err }));
          else resolve();
        });
      });
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        if (!port.isOpen) {
          detach();
          listeners.emitClose(undefined);
          resolve();
          return;
        }
        port.close(() => {
          // 'close' has fired by now unless the binding failed; either way the link is over.
          detach();
          listeners.emitClose(undefined);
          resolve();
        });
      });
      return closing;
    },
    onData: (l) => listeners.onData(l),
    onClose: (l) => listeners.onClose(l),
  };
}

/** Opens a serialport stream created with `autoOpen: false` and wraps it. */
export function openSerialLink(port: SerialPortStream, path: string): Promise<SerialLink> {
  return new Promise((resolve, reject) => {
    port.open((err) => {
      if (err) reject(new SerialLinkError(`cannot open serial port ${path}: ${err.message}`));
      else resolve(serialPortLink(port, path));
    });
  });
}

export interface SerialPortOptions {
  /** Defaults to 115200, the PN532 HSU rate out of reset. */
  baudRate?: number;
}

/** Opens a real serial device (a UART such as /dev/ttyS0, a USB adapter, or a pty). */
export function openSerialPort(path: string, opts: SerialPortOptions = {}): Promise<SerialLink> {
  if (!path) return Promise.reject(new SerialLinkError("serial port path is empty"));
  const baudRate = opts.baudRate ?? 115200;
  if (!Number.isInteger(baudRate) || baudRate <= 0) {
    return Promise.reject(new SerialLinkError(`baud rate must be a positive integer, got ${baudRate}`));
  }
  return openSerialLink(new SerialPortStream({ binding: hangUpAwareBinding, path, baudRate, autoOpen: false }), path);
}
