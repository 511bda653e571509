/**
 * The kiosk's NFC reader when it is a USB PC/SC reader (ACR122U, ACR1252U
 * and the like) served by pcscd.
 *
 * pcscd does the polling; the binding turns its answers into events: a
 * reader appears or ends (plugged, unplugged, pcscd gone), a card is present
 * or the reader is empty again. On each arrival the UID is read with GET DATA
 * (apdu.ts) and handed to the same CardHandler the PN532 uses, once per
 * presence: the card must leave before it triggers again.
 *
 * State: "disconnected" while pcscd is not running or no matching reader is
 * attached, "ok" with one, "degraded" while the card on it cannot be read.
 * pcscd away is retried with exponential backoff, never thrown.
 */
import { ExponentialBackoff, type IBackoff, noJitterGenerator } from "cockatiel";
import type { Logger } from "pino";
import { realTimers, type Timers } from "../../timers.ts";
import { type CardHandler, type ReaderState, runTap } from "../card-reader.ts";
import { ApduError, GET_DATA_UID, parseGetDataUid } from "./apdu.ts";
import {
  type PcscBinding,
  type PcscCardReader,
  type PcscContext,
  type PcscStatus,
  pcscliteBinding,
  SCARD_LEAVE_CARD,
  SCARD_PROTOCOL_T0_T1,
  SCARD_SHARE_SHARED,
  SCARD_STATE,
} from "./binding.ts";

/** The one line a technician needs when the kiosk finds no pcscd. */
export const PCSCD_MISSING = "pcscd is not running: apt-get install pcscd; systemctl enable --now pcscd";

const READ_ATTEMPTS = 3;
const RETRY_MS = 100;

export interface PcscReaderOptions {
  logger: Logger;
  timers?: Timers;
  /** Part of the reader's PC/SC name (as `pcsc_scan -r` lists it); absent: the first reader that appears. */
  reader?: string;
  binding?: PcscBinding;
  /** Backoff bounds for finding pcscd again. */
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  /** Bound on connect + GET DATA + disconnect for one card. */
  readTimeoutMs?: number;
  onStateChange?: (state: ReaderState, reason: string) => void;
}

export interface PcscCounters {
  /** Cards that triggered the handler. */
  reads: number;
  /** Cards present whose UID could not be read. */
  readErrors: number;
  /** Times pcscd or the reader came back after being away. */
  reconnects: number;
}

type Options = Required<Omit<PcscReaderOptions, "reader" | "onStateChange">> &
  Pick<PcscReaderOptions, "reader" | "onStateChange">;

export class PcscReader {
  readonly kind = "pcsc" as const;
  readonly #o: Options;
  readonly #backoffFactory: ExponentialBackoff<number>;
  #backoff: IBackoff<unknown> | undefined;
  #state: ReaderState = "disconnected";
  #reason = "not started";
  #handler: CardHandler | undefined;
  #stopped = true;
  #timer: unknown;
  #context: PcscContext | undefined;
  /** Readers pcscd lists under the current context, by name, in the order they appeared. */
  readonly #known = new Map<string, PcscCardReader>();
  /** Settles once a reader's native thread is watching it (see watching()). */
  readonly #watching = new WeakMap<PcscCardReader, Promise<void>>();
  #reader: PcscCardReader | undefined;
  #everAttached = false;
  #outage = false;
  /** Bumped on each card arrival and removal: a read that finishes after its card left is dropped. */
  #presence = 0;
  #cardPresent = false;
  #tap: Promise<void> | undefined;
  /** A card read while a tap was in progress: it triggers when that tap is done, if still held. */
  #queued: { uid: string; presence: number } | undefined;
  readonly #counters: PcscCounters = { reads: 0, readErrors: 0, reconnects: 0 };

  constructor(opts: PcscReaderOptions) {
    this.#o = {
      timers: realTimers,
      binding: pcscliteBinding(),
      // A probe is one connect to a local socket: cheap enough to keep "back within 2 s" after any outage.
      reconnectMinMs: 100,
      reconnectMaxMs: 1000,
      readTimeoutMs: 2000,
      ...opts,
    };
    for (const key of ["reconnectMinMs", "reconnectMaxMs", "readTimeoutMs"] as const) {
      const v = this.#o[key];
      if (!Number.isFinite(v) || v <= 0)
        throw new RangeError(`PcscReader option ${key} must be a positive number of ms, got ${v}`);
    }
    this.#backoffFactory = new ExponentialBackoff({
      generator: noJitterGenerator,
      initialDelay: this.#o.reconnectMinMs,
      maxDelay: this.#o.reconnectMaxMs,
    });
  }

  get state(): ReaderState {
    return this.#state;
  }

  /** Why the reader is in its state, e.g. the PCSCD_MISSING line. */
  get reason(): string {
    return this.#reason;
  }

  /** The PC/SC name of the reader in use, e.g. "ACS ACR122U PICC Interface 00 00". */
  get readerName(): string | undefined {
    return this.#reader?.name;
  }

  /** A card is on the reader (read or not). */
  get cardPresent(): boolean {
    return this.#cardPresent;
  }

  get counters(): PcscCounters {
    return { ...this.#counters };
  }

  /** Resolves after the first attempt to reach pcscd; a missing pcscd or reader is waited for in the background. */
  async start(handler: CardHandler): Promise<void> {
    if (!this.#stopped) throw new Error("PcscReader is already started");
    this.#stopped = false;
    this.#handler = handler;
    await this.#connect();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#o.timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#dropContext();
    await this.#tap;
    this.#handler = undefined;
    this.#setState("disconnected", "stopped");
  }

  async selfTest(): Promise<{ ok: boolean; detail: string }> {
    const r = this.#reader;
    if (!r) return { ok: false, detail: `PC/SC reader ${this.#state}: ${this.#reason}` };
    const card = this.#cardPresent ? "a card on it" : "no card on it";
    return { ok: this.#state !== "disconnected", detail: `PC/SC reader "${r.name}" ${this.#state}, ${card}` };
  }

  // ---- pcscd ----------------------------------------------------------------

  async #connect(): Promise<void> {
    this.#timer = undefined;
    if (this.#stopped) return;
    const { binding, logger } = this.#o;
    let context: PcscContext;
    try {
      if (!(await binding.serviceRunning())) throw new Error(PCSCD_MISSING);
      if (this.#stopped) return;
      context = await binding.open();
    } catch (err) {
      const reason = (err as Error).message;
      // Said once per outage; the retries stay quiet.
      if (!this.#outage) logger.warn({ socket: binding.socketPath }, reason);
      this.#outage = true;
      this.#setState("disconnected", reason);
      this.#schedule(this.#nextBackoff());
      return;
    }
    if (this.#stopped) {
      await this.#close([context]);
      return;
    }
    if (this.#outage) logger.info({ socket: binding.socketPath }, "pcscd answers again");
    this.#outage = false;
    this.#context = context;
    // Every listener checks it is still the current context: the binding's threads report late.
    context.on("reader", (r) => {
      if (context === this.#context) return this.#onReader(r);
      r.on("error", () => {});
      this.#watching.set(r, watching(r));
      void this.#close([r]);
    });
    context.on(
      "error",
      outsideBinding((err) => {
        if (context === this.#context) this.#reopen(`pcscd went away (${err.message})`);
      }),
    );
    this.#setState(
      "disconnected",
      this.#o.reader ? `no PC/SC reader named like "${this.#o.reader}"` : "no PC/SC reader attached",
    );
    // While no reader is attached, look after pcscd ourselves: the binding may not say it went away.
    this.#schedule(this.#o.reconnectMaxMs);
  }

  /** One timer: the next connect attempt, or with a context and no reader, a check that pcscd still answers. */
  #schedule(ms: number): void {
    if (this.#stopped) return;
    this.#o.timers.clearTimeout(this.#timer);
    this.#timer = this.#o.timers.setTimeout(() => {
      this.#tick().catch((err: unknown) =>
        this.#o.logger.error({ err: (err as Error).message }, "PC/SC reconnect failed"),
      );
    }, ms);
  }

  async #tick(): Promise<void> {
    this.#timer = undefined;
    if (!this.#context) return this.#connect();
    if (this.#reader) return;
    if (await this.#o.binding.serviceRunning()) this.#schedule(this.#o.reconnectMaxMs);
    else if (this.#context && !this.#reader) this.#reopen(PCSCD_MISSING);
  }

  #nextBackoff(): number {
    this.#backoff = this.#backoff ? this.#backoff.next(undefined) : this.#backoffFactory.next();
    return this.#backoff.duration;
  }

  /**
   * pcscd went away or our reader did: start over with a fresh context, which
   * lists what is there now (the binding's own recovery is not to be trusted
   * across a pcscd restart). The first attempt waits reconnectMinMs: a pcscd
   * on its way out still has its socket, and the binding would spin on it.
   */
  #reopen(reason: string): void {
    this.#o.logger.warn({ reason }, "PC/SC reader lost; reconnecting");
    void this.#dropContext();
    this.#setState("disconnected", reason);
    this.#backoff = undefined;
    this.#schedule(this.#o.reconnectMinMs);
  }

  /**
   * Forgets the context and closes it and its readers (each holds a native
   * thread and a handle that keeps Node alive). Their late events are
   * ignored, never unhandled.
   */
  #dropContext(): Promise<void> {
    const context = this.#context;
    const readers = [...this.#known.values()];
    this.#context = undefined;
    this.#known.clear();
    this.#reader = undefined;
    this.#cardLeft();
    return context ? this.#close([...readers, context]) : Promise.resolve();
  }

  /**
   * Closes on the next turn, never at once: the binding starts a context's
   * thread on process.nextTick, and a context closed before that starts it
   * anyway, never to stop (its handle then keeps the process alive); and a
   * lost context's threads are still on their way out.
   */
  async #close(closables: (PcscContext | PcscCardReader)[]): Promise<void> {
    await Promise.all(closables.map((c) => this.#watching.get(c as PcscCardReader)));
    return new Promise((resolve) => {
      setImmediate(() => {
        for (const c of closables) {
          try {
            c.close();
          } catch (err) {
            this.#o.logger.debug({ err: (err as Error).message }, "PC/SC close failed");
          }
        }
        resolve();
      });
    });
  }

  // ---- readers --------------------------------------------------------------

  #onReader(r: PcscCardReader): void {
    this.#known.set(r.name, r);
    this.#watching.set(r, watching(r));
    r.on("error", (err) => {
      if (this.#known.get(r.name) === r)
        this.#o.logger.debug({ reader: r.name, err: err.message }, "PC/SC reader error");
    });
    r.on(
      "end",
      outsideBinding(() => {
        if (this.#known.get(r.name) === r) this.#known.delete(r.name);
        if (r !== this.#reader) return;
        this.#o.logger.warn({ reader: r.name }, "PC/SC reader detached");
        this.#reopen(`reader "${r.name}" detached`);
      }),
    );
    r.on(
      "status",
      outsideBinding((s: PcscStatus) => {
        if (r === this.#reader) this.#onStatus(r, s);
      }),
    );
    if (!this.#reader && this.#matches(r.name)) this.#attach(r);
    else this.#o.logger.debug({ reader: r.name }, "PC/SC reader not used");
  }

  #matches(name: string): boolean {
    const want = this.#o.reader;
    return !want || name.toLowerCase().includes(want.toLowerCase());
  }

  #attach(r: PcscCardReader): void {
    this.#reader = r;
    this.#backoff = undefined;
    this.#o.timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#everAttached) this.#counters.reconnects++;
    this.#everAttached = true;
    this.#o.logger.info({ reader: r.name }, "PC/SC reader attached");
    this.#setState("ok", `reader "${r.name}" attached`);
  }

  // ---- cards ----------------------------------------------------------------

  #onStatus(r: PcscCardReader, s: PcscStatus): void {
    const present = (s.state & SCARD_STATE.PRESENT) !== 0;
    if (!present) {
      const was = this.#cardPresent;
      this.#cardLeft();
      if (was) this.#o.logger.debug({ reader: r.name }, "card left the reader");
      if (this.#state === "degraded") this.#setState("ok", "card removed");
      return;
    }
    // Later events for the same card (our own connect marks it in use) are not a new arrival.
    if (this.#cardPresent) return;
    this.#cardPresent = true;
    const presence = ++this.#presence;
    if (s.state & SCARD_STATE.MUTE) {
      this.#readFailed(r, "the card on the reader does not answer (mute): hold it flat on the reader");
      return;
    }
    this.#readWithRetries(r, presence).then(
      (uid) => {
        if (presence !== this.#presence || r !== this.#reader) return;
        if (this.#state === "degraded") this.#setState("ok", "card read");
        this.#offer(uid, presence);
      },
      (err: unknown) => {
        if (presence === this.#presence && r === this.#reader) this.#readFailed(r, (err as Error).message);
      },
    );
  }

  /**
   * A card on its way in or out of the field can fail a transmission
   * (SCARD_E_NOT_TRANSACTED): tried again while it is still there. A status
   * word from the card is its answer and is not retried.
   */
  async #readWithRetries(r: PcscCardReader, presence: number): Promise<string> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#readUid(r);
      } catch (err) {
        const still = presence === this.#presence && r === this.#reader;
        if (err instanceof ApduError || attempt >= READ_ATTEMPTS || !still) throw err;
        this.#o.logger.debug({ err: (err as Error).message, attempt }, "card read failed; trying again");
        await new Promise<void>((resolve) => this.#o.timers.setTimeout(() => resolve(), RETRY_MS));
      }
    }
  }

  #cardLeft(): void {
    if (this.#cardPresent) this.#presence++;
    this.#cardPresent = false;
    this.#queued = undefined;
  }

  #readFailed(r: PcscCardReader, message: string): void {
    this.#counters.readErrors++;
    this.#o.logger.warn({ reader: r.name, err: message }, "card on the PC/SC reader could not be read");
    this.#setState("degraded", message);
  }

  /** Connect (shared, so pcsc_scan and others may watch too), GET DATA, leave the card as it was. */
  #readUid(r: PcscCardReader): Promise<string> {
    return this.#bounded(
      new Promise<string>((resolve, reject) => {
        r.connect({ share_mode: SCARD_SHARE_SHARED, protocol: SCARD_PROTOCOL_T0_T1 }, (err, protocol) => {
          if (err) return reject(new Error(`PC/SC connect to the card failed: ${(err as Error).message}`));
          r.transmit(Buffer.from(GET_DATA_UID), 256 + 2, protocol, (err, answer) => {
            r.disconnect(SCARD_LEAVE_CARD, (dErr) => {
              if (dErr) this.#o.logger.debug({ err: (dErr as Error).message }, "PC/SC disconnect failed");
            });
            if (err) return reject(new Error(`GET DATA could not be sent: ${(err as Error).message}`));
            try {
              resolve(parseGetDataUid(answer));
            } catch (e) {
              reject(e);
            }
          });
        });
      }),
    );
  }

  #bounded<T>(p: Promise<T>): Promise<T> {
    const { timers, readTimeoutMs } = this.#o;
    let timer: unknown;
    const timeout = new Promise<never>((_, reject) => {
      timer = timers.setTimeout(
        () => reject(new Error(`no answer from the card within ${readTimeoutMs} ms`)),
        readTimeoutMs,
      );
    });
    return Promise.race([p, timeout]).finally(() => timers.clearTimeout(timer));
  }

  /** One tap at a time, as with the PN532: a card read during a tap waits for it, if still held. */
  #offer(uid: string, presence: number): void {
    if (this.#tap) {
      this.#queued = { uid, presence };
      return;
    }
    const handler = this.#handler;
    if (!handler) return;
    this.#counters.reads++;
    this.#tap = runTap(handler, uid, this.#o.logger).then(() => this.#tapDone());
  }

  #tapDone(): void {
    this.#tap = undefined;
    const q = this.#queued;
    this.#queued = undefined;
    if (q && q.presence === this.#presence && this.#cardPresent && !this.#stopped) this.#offer(q.uid, q.presence);
  }

  #setState(state: ReaderState, reason: string): void {
    this.#reason = reason;
    if (state === this.#state) return;
    const from = this.#state;
    this.#state = state;
    const log = state === "ok" || reason === "stopped" ? this.#o.logger.info : this.#o.logger.warn;
    log.call(this.#o.logger, { from, to: state, reason }, "PC/SC reader state");
    try {
      this.#o.onStateChange?.(state, reason);
    } catch (err) {
      this.#o.logger.error({ err: (err as Error).message }, "PC/SC state listener failed");
    }
  }
}

/**
 * Runs a binding event's handler on the next turn of the event loop. The
 * binding calls JS while it holds the reader's mutex, and Node runs the
 * microtasks queued by that call before it returns: anything awaiting our
 * state (a test, the kiosk) would run there, and a close() from it locks the
 * same mutex again and hangs the process.
 */
function outsideBinding<A extends unknown[]>(handler: (...args: A) => void): (...args: A) => void {
  return (...args) => {
    setImmediate(() => handler(...args));
  };
}

/**
 * Settles shortly after the binding's thread for this reader has reported
 * once (or when the reader ended, or after 1 s). Closing a reader before its thread has
 * entered its loop leaves the thread's handle open for good (the binding
 * sets its exit flag only inside the loop), and Node never exits.
 */
function watching(r: PcscCardReader): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 1000);
    const done = (settleMs: number) => () => {
      clearTimeout(timer);
      setTimeout(resolve, settleMs);
    };
    // Right after a report the thread is on its way back into SCardGetStatusChange: a close in
    // that gap is missed too, so give it a moment to get there.
    // once: a reader reports on every card change for as long as it lives; this only waits for the first.
    // (error stays on: an EventEmitter with no error listener throws.)
    r.once("status", done(50));
    r.once("end", done(0));
    r.on("error", done(0));
  });
}
