/**
 * Test helpers for the printer: a socat pty pair (a real device path, exactly
 * as a kiosk opens /dev/ttyUSB0 or /dev/usb/lp0), a printer-side peer on it
 * that survives the pair being torn down and rebuilt, and bounded waits on
 * real I/O events (the wall-clock limit only ever fails a test).
 */
import { EventEmitter } from "node:events";
import { join } from "node:path";
import { SerialPort } from "serialport";
import { within } from "../../../test/support/within.ts";
import type { PrinterEnd } from "../../src/hardware/printer/transport.ts";
import { type PtyPair as OpenPtyPair, openPtyPair } from "../../src/hardware/serial/pty-pair.ts";

/** The next `n` bytes `peer` receives. */
export function received(peer: PrinterEnd, n: number, ms = 3000): Promise<Uint8Array> {
  const got: number[] = [];
  let off: (() => void) | undefined;
  const done = new Promise<Uint8Array>((resolve) => {
    off = peer.onData((c) => {
      got.push(...c);
      if (got.length >= n) resolve(Uint8Array.from(got));
    });
  });
  return within(done, ms, `${n} bytes at the printer end (got ${got.length})`).finally(() => off?.());
}

/**
 * A socat pty pair at fixed paths (../../src/hardware/serial/pty-pair.ts)
 * that can be torn down and rebuilt at the same paths, like a USB printer
 * unplugged and plugged back in.
 */
export class PtyPair {
  readonly a: string;
  readonly b: string;
  #pair: OpenPtyPair | undefined;

  constructor(dir: string, name: string) {
    this.a = join(dir, `${name}-host`);
    this.b = join(dir, `${name}-printer`);
  }

  get running(): boolean {
    return this.#pair !== undefined;
  }

  async start(): Promise<void> {
    this.#pair = await openPtyPair({ devicePath: this.a, peerPath: this.b });
  }

  /** Tears the pair down: both device paths vanish, open ends see a hang-up. */
  async stop(): Promise<void> {
    const pair = this.#pair;
    this.#pair = undefined;
    await pair?.close();
  }
}

/**
 * The printer end of a pty pair, through serialport. Listeners stay attached
 * across reopen(), so a simulator attached once keeps working after a replug.
 */
export class PtyPeer implements PrinterEnd {
  readonly #events = new EventEmitter();
  #port: SerialPort | undefined;

  constructor(private readonly path: string) {}

  async open(): Promise<void> {
    const port = new SerialPort({ path: this.path, baudRate: 115200, autoOpen: false });
    port.on("data", (c: Buffer) => this.#events.emit("data", new Uint8Array(c)));
    // Tests tear the pair down under it on purpose (an unplug): the errors that follow are expected.
    port.on("error", () => {});
    await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
    this.#port = port;
  }

  async close(): Promise<void> {
    const port = this.#port;
    this.#port = undefined;
    if (port?.isOpen) await new Promise<void>((resolve) => port.close(() => resolve()));
  }

  onData(listener: (chunk: Uint8Array) => void): () => void {
    this.#events.on("data", listener);
    return () => this.#events.off("data", listener);
  }

  /** Bytes to the host; lost while the pair is down (as on a wire), never an error. */
  async write(chunk: Uint8Array): Promise<void> {
    this.#port?.write(Buffer.from(chunk));
  }
}
