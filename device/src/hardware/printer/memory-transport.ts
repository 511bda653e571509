/**
 * An in-process printer cable: the printer unit holds the transport (an
 * in-memory SerialLink pair, the same pipe the reader's simulator uses), a
 * simulator (or a test) holds `peer`. `unplug()` / `replug()` play a cable
 * pulled and put back.
 */
import { EventEmitter } from "node:events";
import type { Timers } from "../../timers.ts";
import { createLinkPair, type LinkPair } from "../serial/link-pair.ts";
import { type SerialLink, send } from "../serial/serial-link.ts";
import { LinkTransport } from "./link-transport.ts";
import type { ByteStream } from "./transport.ts";

/** The cable: its printer end outlives each open(), so a simulator attaches once. */
class MemoryCable implements ByteStream {
  readonly #events = new EventEmitter();
  #pair: LinkPair | undefined;
  unplugged = false;

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
    send(this.#pair?.device, chunk);
    return true;
  }

  /** A fresh pair for each open(): the host gets one end, what it writes comes out of this one. */
  async open(): Promise<SerialLink> {
    if (this.unplugged) throw new Error("cannot open memory link: unplugged");
    const pair = createLinkPair("memory link");
    pair.device.onData((chunk) => this.#events.emit("data", chunk));
    this.#pair = pair;
    return pair.host;
  }

  unplug(): void {
    this.unplugged = true;
    this.#pair?.unplug();
  }
}

export class MemoryTransport extends LinkTransport {
  readonly peer: ByteStream;
  readonly #cable: MemoryCable;

  constructor(opts: { timers: Timers }) {
    const cable = new MemoryCable();
    super({ name: "memory link", description: "memory", timers: opts.timers, openLink: () => cable.open() });
    this.peer = cable;
    this.#cable = cable;
  }

  get unplugged(): boolean {
    return this.#cable.unplugged;
  }

  /** The cable is pulled: the link drops and cannot be reopened until replug(). */
  unplug(): void {
    this.#cable.unplug();
  }

  replug(): void {
    this.#cable.unplugged = false;
  }
}
