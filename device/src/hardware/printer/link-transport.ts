/**
 * A printer transport over the serial link every driver speaks through
 * (../serial/serial-link.ts): the link moves the bytes and says when it is
 * lost; this adds what the printer's query/answer needs on top, reads with a
 * timeout from a bounded buffer.
 */
import type { Timers } from "../../timers.ts";
import type { OpenLink, SerialLink } from "../serial/serial-link.ts";
import { type PrinterTransport, ReadBuffer, TransportError } from "./transport.ts";

type LostListener = (err: TransportError) => void;

export interface LinkTransportOptions {
  /** Opens a fresh link on each open() (first start and every reconnect); rejects with a message naming the path. */
  openLink: OpenLink;
  /** What the link is in error messages, e.g. "serial port /dev/ttyUSB0". */
  name: string;
  /** For logs, e.g. "serial /dev/ttyUSB0@19200". */
  description: string;
  /** Read timeouts. */
  timers: Timers;
  /** Whether the link's device node is there (see PrinterTransport.present). */
  present?: () => Promise<boolean>;
}

export class LinkTransport implements PrinterTransport {
  readonly description: string;
  readonly #o: LinkTransportOptions;
  readonly #buf: ReadBuffer;
  #link: SerialLink | undefined;
  #opening: Promise<void> | undefined;
  #unsubscribe: (() => void)[] = [];
  readonly #lostListeners = new Set<LostListener>();
  readonly present?: () => Promise<boolean>;

  constructor(opts: LinkTransportOptions) {
    this.#o = opts;
    this.#buf = new ReadBuffer(opts.timers);
    this.description = opts.description;
    if (opts.present) this.present = opts.present;
  }

  onLost(listener: LostListener): () => void {
    this.#lostListeners.add(listener);
    return () => this.#lostListeners.delete(listener);
  }

  get isOpen(): boolean {
    return this.#link?.isOpen === true;
  }

  open(): Promise<void> {
    if (this.#link?.isOpen) return Promise.resolve();
    this.#opening ??= this.#open().finally(() => {
      this.#opening = undefined;
    });
    return this.#opening;
  }

  async close(): Promise<void> {
    const link = this.#link;
    if (!link) return;
    this.#teardown();
    this.#buf.fail(new TransportError("closed", `${this.#o.name} closed`));
    await link.close();
  }

  async write(data: Uint8Array): Promise<void> {
    const link = this.#link;
    if (!link?.isOpen) throw this.#notOpen();
    try {
      await link.write(data);
    } catch (err) {
      const e = new TransportError("lost", (err as Error).message, { cause: err });
      // The link is over (it reports the failure as lost too): drop it now so open() starts afresh.
      if (this.#link === link) {
        this.#teardown();
        this.#buf.fail(e);
      }
      throw e;
    }
  }

  read(max: number, timeoutMs: number): Promise<Uint8Array> {
    if (!this.#link?.isOpen) return Promise.reject(this.#notOpen());
    return this.#buf.read(max, timeoutMs);
  }

  async discardInput(): Promise<void> {
    this.#buf.clear();
  }

  async #open(): Promise<void> {
    // A link that was lost under us: start afresh.
    if (this.#link) this.#teardown();
    let link: SerialLink;
    try {
      link = await this.#o.openLink();
    } catch (err) {
      throw new TransportError("open-failed", (err as Error).message, { cause: err });
    }
    this.#link = link;
    this.#unsubscribe = [
      link.onData((chunk) => this.#buf.push(chunk)),
      link.onClose((err) => {
        if (this.#link !== link) return;
        this.#teardown();
        const e = err
          ? new TransportError("lost", `${this.#o.name} went away: ${err.message}`, { cause: err })
          : new TransportError("closed", `${this.#o.name} closed`);
        this.#buf.fail(e);
        // Closed under us (the device vanished), not by close(): that one tears down first.
        for (const l of [...this.#lostListeners]) l(e);
      }),
    ];
  }

  #notOpen(): TransportError {
    return new TransportError("not-open", `${this.#o.name} is not open`);
  }

  #teardown(): void {
    for (const u of this.#unsubscribe.splice(0)) u();
    this.#link = undefined;
    this.#buf.clear();
  }
}
