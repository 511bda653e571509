/**
 * An in-process printer cable: the printer unit holds the transport (an
 * in-memory SerialLink pair, the same pipe the reader's simulator uses), a
 * simulator (or a test) holds `peer`. `unplug()` / `replug()` play a cable
 * pulled and put back.
 */
import type { Timers } from "../../timers.ts";
import { createLinkPair, type LinkPair } from "../serial/link-pair.ts";
import { type SerialLink, send } from "../serial/serial-link.ts";
import { LinkTransport } from "./link-transport.ts";
import type { PrinterEnd } from "./transport.ts";

/** The cable: its printer end outlives each open(), so a simulator attaches once. */
class MemoryCable implements PrinterEnd {
  readonly #listeners = new Set<(chunk: Uint8Array) => void>();
  #pair: LinkPair | undefined;
  unplugged = false;

  onData(listener: (chunk: Uint8Array) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Bytes from the printer to the host; lost if the host side is not open (as on a wire), never an error. */
  async write(chunk: Uint8Array): Promise<void> {
    send(this.#pair?.device, chunk);
  }

  /** A fresh pair for each open(): the host gets one end, what it writes comes out of this one. */
  async open(): Promise<SerialLink> {
    if (this.unplugged) throw new Error("cannot open memory link: unplugged");
    const pair = createLinkPair("memory link");
    pair.device.onData((chunk) => {
      for (const l of [...this.#listeners]) l(chunk);
    });
    this.#pair = pair;
    return pair.host;
  }

  unplug(): void {
    this.unplugged = true;
    this.#pair?.unplug();
  }
}

export class MemoryTransport extends LinkTransport {
  readonly peer: PrinterEnd;
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
