/**
 * An in-process link: the printer unit holds the transport, a simulator (or a
 * test) holds `peer`. `unplug()` / `replug()` play a cable pulled and put back.
 */
import { EventEmitter } from "node:events";
import type { Timers } from "../../timers.ts";
import { type ByteStream, type PrinterTransport, ReadBuffer, TransportError } from "./transport.ts";

class MemoryPeer implements ByteStream {
  readonly #events = new EventEmitter();

  constructor(private readonly deliver: (chunk: Uint8Array) => void) {}

  on(event: "data", listener: (chunk: Uint8Array) => void): this {
    this.#events.on(event, listener);
    return this;
  }

  off(event: "data", listener: (chunk: Uint8Array) => void): this {
    this.#events.off(event, listener);
    return this;
  }

  /** Bytes from the printer to the host; lost if the host side is not open (as on a wire). */
  write(chunk: Uint8Array): boolean {
    this.deliver(Uint8Array.from(chunk));
    return true;
  }

  /** @internal bytes from the host */
  emitData(chunk: Uint8Array): void {
    this.#events.emit("data", chunk);
  }
}

export class MemoryTransport implements PrinterTransport {
  readonly description = "memory";
  readonly peer: ByteStream;
  readonly #peer: MemoryPeer;
  readonly #buf: ReadBuffer;
  #open = false;
  #unplugged = false;

  constructor(opts: { timers: Timers }) {
    this.#buf = new ReadBuffer(opts.timers);
    this.#peer = new MemoryPeer((chunk) => {
      if (this.#open) this.#buf.push(chunk);
    });
    this.peer = this.#peer;
  }

  get isOpen(): boolean {
    return this.#open;
  }

  get unplugged(): boolean {
    return this.#unplugged;
  }

  async open(): Promise<void> {
    if (this.#unplugged) throw new TransportError("open-failed", "cannot open memory link: unplugged");
    this.#open = true;
  }

  async close(): Promise<void> {
    this.#shut(new TransportError("closed", "memory link closed"));
  }

  async write(data: Uint8Array): Promise<void> {
    if (!this.#open) throw new TransportError("not-open", "memory link is not open");
    this.#peer.emitData(Uint8Array.from(data));
  }

  read(max: number, timeoutMs: number): Promise<Uint8Array> {
    if (!this.#open) return Promise.reject(new TransportError("not-open", "memory link is not open"));
    return this.#buf.read(max, timeoutMs);
  }

  async discardInput(): Promise<void> {
    this.#buf.clear();
  }

  /** The cable is pulled: the link drops and cannot be reopened until replug(). */
  unplug(): void {
    this.#unplugged = true;
    this.#shut(new TransportError("lost", "memory link unplugged"));
  }

  replug(): void {
    this.#unplugged = false;
  }

  #shut(reason: TransportError): void {
    this.#open = false;
    this.#buf.clear();
    this.#buf.fail(reason);
  }
}
