/**
 * Test helpers for the printer: a socat pty pair (a real device path, exactly
 * as a kiosk opens /dev/ttyUSB0 or /dev/usb/lp0), a printer-side peer on it
 * that survives the pair being torn down and rebuilt, and bounded waits on
 * real I/O events (the wall-clock limit only ever fails a test).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { EventEmitter } from "node:events";
import { join } from "node:path";
import { SerialPort } from "serialport";
import type { ByteStream } from "../../src/hardware/printer/transport.ts";

/** Rejects with `what` if `p` has not settled within `ms` of real time. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, guard]).finally(() => clearTimeout(timer));
}

/** The next `n` bytes `peer` receives. */
export function received(peer: ByteStream, n: number, ms = 3000): Promise<Uint8Array> {
  const got: number[] = [];
  let listener: ((c: Uint8Array) => void) | undefined;
  const done = new Promise<Uint8Array>((resolve) => {
    listener = (c: Uint8Array) => {
      got.push(...c);
      if (got.length >= n) resolve(Uint8Array.from(got));
    };
    peer.on("data", listener);
  });
  return within(done, ms, `${n} bytes at the printer end (got ${got.length})`).finally(() => {
    if (listener) peer.off("data", listener);
  });
}

/** `socat -d -d pty,raw,echo=0,link=A pty,raw,echo=0,link=B`: bytes written to A come out of B and back. */
export class PtyPair {
  readonly a: string;
  readonly b: string;
  #proc: ChildProcess | undefined;

  constructor(dir: string, name: string) {
    this.a = join(dir, `${name}-host`);
    this.b = join(dir, `${name}-printer`);
  }

  get running(): boolean {
    return this.#proc !== undefined;
  }

  async start(): Promise<void> {
    const proc = spawn("socat", ["-d", "-d", `pty,raw,echo=0,link=${this.a}`, `pty,raw,echo=0,link=${this.b}`], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    this.#proc = proc;
    let log = "";
    await within(
      new Promise<void>((resolve, reject) => {
        proc.stderr?.on("data", (d: Buffer) => {
          log += d.toString();
          if (log.includes("starting data transfer loop")) resolve();
        });
        proc.once("exit", (code) => reject(new Error(`socat exited (${code}) before the ptys were ready: ${log}`)));
        proc.once("error", reject);
      }),
      5000,
      "socat to create the pty pair",
    );
  }

  /** Tears the pair down: both device paths vanish, open ends see a hang-up. */
  async stop(): Promise<void> {
    const proc = this.#proc;
    this.#proc = undefined;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
    proc.kill("SIGTERM");
    await within(exited, 5000, "socat to exit");
  }
}

/**
 * The printer end of a pty pair, through serialport. Listeners stay attached
 * across reopen(), so a simulator attached once keeps working after a replug.
 */
export class PtyPeer implements ByteStream {
  readonly #events = new EventEmitter();
  #port: SerialPort | undefined;

  constructor(private readonly path: string) {}

  async open(): Promise<void> {
    const port = new SerialPort({ path: this.path, baudRate: 115200, autoOpen: false });
    port.on("data", (c: Buffer) => this.#events.emit("data", new Uint8Array(c)));
    port.on("error", () => {});
    await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
    this.#port = port;
  }

  async close(): Promise<void> {
    const port = this.#port;
    this.#port = undefined;
    if (port?.isOpen) await new Promise<void>((resolve) => port.close(() => resolve()));
  }

  on(event: "data", listener: (chunk: Uint8Array) => void): this {
    this.#events.on(event, listener);
    return this;
  }

  off(event: "data", listener: (chunk: Uint8Array) => void): this {
    this.#events.off(event, listener);
    return this;
  }

  write(chunk: Uint8Array): boolean {
    return this.#port?.write(Buffer.from(chunk)) ?? false;
  }
}
