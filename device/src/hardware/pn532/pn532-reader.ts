/**
 * The kiosk's NFC reader: a PN532 on a UART (HSU), driven through the host
 * protocol of NXP UM0701-02 §6.2.
 *
 * One loop on injected timers does everything: open the port if it is not
 * open (exponential backoff while it is missing), initialise the chip if it
 * is not (wake-up, SAMConfiguration, RFConfiguration, GetFirmwareVersion),
 * otherwise poll InListPassiveTarget. A card triggers the handler once; it
 * must leave the field (a poll answering NbTg = 0) before the same UID
 * triggers again. Each command waits for the ACK, then the response; a
 * corrupted response gets a NACK (§6.2.1.4), a timeout an ACK to abort
 * (§6.2.2) and a resend; N timeouts in a row re-initialise the chip; a port
 * that closes or fails makes the reader "disconnected" until it reopens.
 */
import { ExponentialBackoff, type IBackoff, noJitterGenerator } from "cockatiel";
import type { Logger } from "pino";
import { realTimers, type Timers } from "../../timers.ts";
import { runTap } from "../card-reader.ts";
import { type OpenLink, type SerialLink, send } from "../serial/serial-link.ts";
import {
  abbreviateUid,
  type FirmwareVersion,
  getFirmwareVersion,
  HSU_WAKEUP,
  hex,
  inListPassiveTarget,
  inRelease,
  Pn532ProtocolError,
  parseFirmwareVersion,
  parseInListPassiveTarget,
  parseInRelease,
  parseRfConfiguration,
  parseSamConfiguration,
  responseCode,
  rfConfigurationMaxRetries,
  samConfiguration,
  toHex,
} from "./commands.ts";
import {
  ACK_FRAME,
  type DecodeEvent,
  type DiscardReason,
  encodeCommand,
  FrameDecoder,
  IdleFlush,
  NACK_FRAME,
  TFI_PN532_TO_HOST,
} from "./frame.ts";

export interface Pn532ReaderOptions {
  /** Opens the serial link; called at start and on every reconnect. */
  openLink: OpenLink;
  logger: Logger;
  timers?: Timers;
  /** Pause between polls. Detection latency is at most this plus one exchange. */
  pollIntervalMs?: number;
  /** The PN532 ACKs a command within a few ms; silence longer than this is a timeout. */
  ackTimeoutMs?: number;
  /** From ACK to response. With MxRtyPassiveActivation = 1 a poll answers in a few ms. */
  responseTimeoutMs?: number;
  /** Silence after which a partial frame is dropped (and NACKed) instead of waiting for the response timeout. */
  idleMs?: number;
  /** Resends of one command after a timeout. */
  retries?: number;
  /** NACKs sent for one command before giving up on it. */
  maxNacks?: number;
  /** Consecutive timeouts after which the chip is re-initialised. */
  reinitAfterTimeouts?: number;
  /** Backoff bounds for reopening a missing port and re-initialising a mute chip. */
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  /** Told of every state change (for telemetry and the UI's "tap" vs "enter code" choice). */
  onStateChange?: (state: ReaderState, reason: string) => void;
}

export interface Pn532Counters {
  /** Decoder discards: garbage in bytes, the rest in frames. */
  discarded: Record<DiscardReason, number>;
  nacksSent: number;
  timeouts: number;
  errorFrames: number;
  reinits: number;
  reconnects: number;
  /** Cards that triggered the handler. */
  reads: number;
}

export type ReaderState = "ok" | "degraded" | "disconnected";

/**
 * Told each card's UID (upper-case hex) once per tap; the reader waits for it
 * before it triggers again and ignores what it resolves to (the daemon decides and answers).
 */
export type CardHandler = (uid: string) => Promise<unknown>;

export class Pn532TimeoutError extends Error {
  override name = "Pn532TimeoutError";
}

export class LinkClosedError extends Error {
  override name = "LinkClosedError";
}

interface Exchange {
  code: number;
  frame: Uint8Array;
  phase: "ack" | "response";
  attempt: number;
  nacks: number;
  timer: unknown;
  resolve(pd: Uint8Array): void;
  reject(err: Error): void;
}

type Options = Required<Omit<Pn532ReaderOptions, "onStateChange">> & Pick<Pn532ReaderOptions, "onStateChange">;

export class Pn532Reader {
  readonly kind = "pn532" as const;
  readonly #o: Options;
  readonly #decoder = new FrameDecoder();
  readonly #idle: IdleFlush;
  readonly #backoffFactory: ExponentialBackoff<number>;
  #backoff: IBackoff<unknown> | undefined;
  #state: ReaderState = "disconnected";
  #handler: CardHandler | undefined;
  #stopped = true;
  #timer: unknown;
  #running: Promise<void> | undefined;
  #link: SerialLink | undefined;
  #unsubscribe: (() => void)[] = [];
  #everOpened = false;
  #ready = false;
  #firmware: FirmwareVersion | undefined;
  #pending: Exchange | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #consecutiveTimeouts = 0;
  /** UID last seen in the field; cleared only by a poll that finds the field empty. */
  #present: string | undefined;
  #tap: Promise<void> | undefined;
  readonly #counters = { nacksSent: 0, timeouts: 0, errorFrames: 0, reinits: 0, reconnects: 0, reads: 0 };

  constructor(opts: Pn532ReaderOptions) {
    this.#o = {
      timers: realTimers,
      pollIntervalMs: 50,
      ackTimeoutMs: 100,
      responseTimeoutMs: 300,
      idleMs: 50,
      retries: 1,
      maxNacks: 2,
      reinitAfterTimeouts: 3,
      reconnectMinMs: 100,
      // A replugged reader must be back within 2 s (issue 17), however long it was gone; an open is cheap.
      reconnectMaxMs: 1000,
      ...opts,
    };
    for (const key of [
      "pollIntervalMs",
      "ackTimeoutMs",
      "responseTimeoutMs",
      "idleMs",
      "reconnectMinMs",
      "reconnectMaxMs",
    ] as const) {
      const v = this.#o[key];
      if (!Number.isFinite(v) || v <= 0)
        throw new RangeError(`Pn532Reader option ${key} must be a positive number of ms, got ${v}`);
    }
    for (const key of ["retries", "maxNacks", "reinitAfterTimeouts"] as const) {
      const v = this.#o[key];
      if (!Number.isInteger(v) || v < 0)
        throw new RangeError(`Pn532Reader option ${key} must be a whole number ≥ 0, got ${v}`);
    }
    this.#idle = new IdleFlush(this.#decoder, {
      timers: this.#o.timers,
      idleMs: this.#o.idleMs,
      onEvents: (events) => this.#handle(events),
    });
    this.#backoffFactory = new ExponentialBackoff({
      generator: noJitterGenerator,
      initialDelay: this.#o.reconnectMinMs,
      maxDelay: this.#o.reconnectMaxMs,
    });
  }

  get state(): ReaderState {
    return this.#state;
  }

  /** The chip's answer to GetFirmwareVersion at the last initialisation. */
  get firmware(): FirmwareVersion | undefined {
    return this.#firmware;
  }

  get counters(): Pn532Counters {
    return { discarded: { ...this.#decoder.discarded }, ...this.#counters };
  }

  /** Resolves after the first attempt to open and initialise; a missing reader is retried in the background. */
  async start(handler: CardHandler): Promise<void> {
    if (!this.#stopped) throw new Error("Pn532Reader is already started");
    this.#stopped = false;
    this.#handler = handler;
    await this.#cycle();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#o.timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#dropLink("reader stopped");
    await this.#running;
    this.#handler = undefined;
    this.#setState("disconnected", "stopped");
  }

  /** Reads the firmware version through the live link: proves port, wiring and chip. */
  async selfTest(): Promise<{ ok: boolean; detail: string }> {
    if (!this.#link) return { ok: false, detail: `PN532 ${this.#state}: serial port not open` };
    try {
      const fw = parseFirmwareVersion(await this.#command(getFirmwareVersion()));
      return { ok: fw.ic === 0x32, detail: `PN532 ${describe(fw)}, reader ${this.#state}` };
    } catch (err) {
      return { ok: false, detail: `PN532 did not answer GetFirmwareVersion: ${(err as Error).message}` };
    }
  }

  // ---- the loop --------------------------------------------------------------

  async #cycle(): Promise<void> {
    this.#timer = undefined;
    if (this.#stopped) return;
    const run = this.#step();
    this.#running = run.then(() => {});
    const delay = await run;
    this.#running = undefined;
    if (this.#stopped) return;
    this.#timer = this.#o.timers.setTimeout(() => {
      this.#cycle().catch((err: unknown) => this.#o.logger.error({ err: (err as Error).message }, "PN532 loop failed"));
    }, delay);
  }

  /** One turn of the loop; never rejects; returns the delay until the next turn. */
  async #step(): Promise<number> {
    if (!this.#link) {
      try {
        await this.#open();
      } catch (err) {
        this.#setState("disconnected", (err as Error).message);
        return this.#nextBackoff();
      }
    }
    if (!this.#ready) {
      try {
        await this.#initialise();
        this.#backoff = undefined;
      } catch (err) {
        if (this.#stopped) return 0;
        if (this.#link) {
          this.#setState("degraded", `initialisation failed: ${(err as Error).message}`);
          // A port that opens but never answers may be a stale handle (an adapter that re-enumerated,
          // a pty whose far side is gone — serialport then reads 0 bytes forever instead of reporting
          // a disconnect): reopen it, so a vanished device shows up as "disconnected".
          await this.#dropLink("serial port closed for reopening");
        }
        return this.#nextBackoff();
      }
    }
    try {
      await this.#poll();
    } catch (err) {
      if (this.#stopped) return 0;
      if (!this.#link) return this.#nextBackoff();
      this.#setState("degraded", (err as Error).message);
      if (this.#consecutiveTimeouts >= this.#o.reinitAfterTimeouts) {
        this.#counters.reinits++;
        this.#ready = false;
        this.#o.logger.warn({ timeouts: this.#consecutiveTimeouts }, "PN532 stopped answering; re-initialising");
      }
    }
    return this.#o.pollIntervalMs;
  }

  #nextBackoff(): number {
    this.#backoff = this.#backoff ? this.#backoff.next(undefined) : this.#backoffFactory.next();
    return this.#backoff.duration;
  }

  async #open(): Promise<void> {
    const link = await this.#o.openLink();
    if (this.#stopped) {
      await link.close();
      throw new LinkClosedError("reader stopped while the port was opening");
    }
    if (this.#everOpened) this.#counters.reconnects++;
    this.#everOpened = true;
    this.#link = link;
    this.#ready = false;
    this.#decoder.reset();
    this.#unsubscribe = [
      link.onData((chunk) => this.#onData(chunk)),
      link.onClose((err) => this.#onLinkClosed(link, err)),
    ];
    this.#o.logger.info({ path: link.path }, "PN532 serial port open");
  }

  #onLinkClosed(link: SerialLink, err: Error | undefined): void {
    if (link !== this.#link) return;
    this.#detach();
    this.#failPending(new LinkClosedError(`serial port ${link.path} closed${err ? `: ${err.message}` : ""}`));
    if (!this.#stopped) this.#setState("disconnected", err?.message ?? "serial port closed");
  }

  /** Closes the link on purpose, without the "disconnected" a lost link reports. */
  async #dropLink(reason: string): Promise<void> {
    const link = this.#link;
    this.#detach();
    this.#failPending(new LinkClosedError(reason));
    await link?.close().catch(() => {});
  }

  #detach(): void {
    for (const u of this.#unsubscribe.splice(0)) u();
    this.#idle.stop();
    this.#link = undefined;
    this.#ready = false;
  }

  async #initialise(): Promise<void> {
    send(this.#link, HSU_WAKEUP);
    parseSamConfiguration(await this.#command(samConfiguration()));
    parseRfConfiguration(await this.#command(rfConfigurationMaxRetries()));
    const fw = parseFirmwareVersion(await this.#command(getFirmwareVersion()));
    if (fw.ic !== 0x32)
      throw new Pn532ProtocolError(`not a PN532: GetFirmwareVersion reports IC 0x${fw.ic.toString(16)}`);
    this.#firmware = fw;
    this.#ready = true;
    this.#consecutiveTimeouts = 0;
    this.#o.logger.info({ firmware: describe(fw) }, "PN532 initialised");
    this.#setState("ok", "initialised");
  }

  async #poll(): Promise<void> {
    const target = parseInListPassiveTarget(await this.#command(inListPassiveTarget()));
    this.#setState("ok", "polling");
    if (!target) {
      if (this.#present) this.#o.logger.debug({ uid: abbreviateUid(this.#present) }, "card left the field");
      this.#present = undefined;
      return;
    }
    const uid = toHex(target.uid);
    // One tap at a time: a card arriving during a tap triggers once the tap is done, if still held.
    if (uid !== this.#present && !this.#tap) {
      this.#present = uid;
      this.#trigger(uid);
    }
    const status = parseInRelease(await this.#command(inRelease(target.tg)));
    if (status !== 0) this.#o.logger.warn({ status }, "PN532 InRelease reported an error");
  }

  #trigger(uid: string): void {
    const handler = this.#handler;
    if (!handler) return;
    this.#counters.reads++;
    this.#tap = runTap(handler, uid, this.#o.logger).then(() => {
      this.#tap = undefined;
    });
  }

  #setState(state: ReaderState, reason: string): void {
    if (state === this.#state) return;
    const from = this.#state;
    this.#state = state;
    // A reader lost is news; one found again, or closed by a stop, is not.
    const log = state === "ok" || reason === "stopped" ? this.#o.logger.info : this.#o.logger.warn;
    log.call(this.#o.logger, { from, to: state, reason }, "PN532 reader state");
    try {
      this.#o.onStateChange?.(state, reason);
    } catch (err) {
      this.#o.logger.error({ err: (err as Error).message }, "PN532 state listener failed");
    }
  }

  // ---- one command: frame out, ACK in, response in ---------------------------

  /** Commands are strictly one at a time (half duplex, §6.2). */
  #command(pd: Uint8Array): Promise<Uint8Array> {
    const run = this.#queue.then(() => this.#exchange(pd));
    this.#queue = run.catch(() => {});
    return run;
  }

  #exchange(pd: Uint8Array): Promise<Uint8Array> {
    const link = this.#link;
    if (!link) return Promise.reject(new LinkClosedError("serial port not open"));
    return new Promise<Uint8Array>((resolve, reject) => {
      const ex: Exchange = {
        code: pd[0] ?? 0,
        frame: encodeCommand(pd),
        phase: "ack",
        attempt: 0,
        nacks: 0,
        timer: undefined,
        resolve,
        reject,
      };
      this.#pending = ex;
      this.#send(ex);
    });
  }

  #send(ex: Exchange): void {
    ex.phase = "ack";
    send(this.#link, ex.frame);
    this.#arm(ex, this.#o.ackTimeoutMs);
  }

  #arm(ex: Exchange, ms: number): void {
    this.#o.timers.clearTimeout(ex.timer);
    ex.timer = this.#o.timers.setTimeout(() => this.#onTimeout(ex), ms);
  }

  #onTimeout(ex: Exchange): void {
    if (this.#pending !== ex) return;
    // The line went quiet: a frame held back to rule out an overlapping one is complete after all,
    // and a partial one is truncated — which earns a NACK rather than an abort.
    const nacks = this.#counters.nacksSent;
    this.#handle(this.#decoder.flush());
    if (this.#pending !== ex || this.#counters.nacksSent !== nacks) return;
    this.#counters.timeouts++;
    this.#consecutiveTimeouts++;
    // An ACK from the host aborts whatever the PN532 is still doing (§6.2.2).
    send(this.#link, ACK_FRAME);
    if (ex.attempt < this.#o.retries) {
      ex.attempt++;
      ex.nacks = 0;
      this.#send(ex);
      return;
    }
    const what = ex.phase === "ack" ? "ACK" : "response";
    this.#settle(
      ex,
      new Pn532TimeoutError(`no ${what} to command 0x${hex(ex.code)} after ${ex.attempt + 1} attempt(s)`),
    );
  }

  #onData(chunk: Uint8Array): void {
    this.#idle.push(chunk);
  }

  #handle(events: DecodeEvent[]): void {
    for (const e of events) {
      const ex = this.#pending;
      if (e.type === "discard") {
        this.#o.logger.debug({ reason: e.reason, bytes: e.bytes }, "PN532 bytes discarded");
        // A damaged frame longer than an ACK is a response: ask for it again (§6.2.1.4).
        const damagedResponse = e.reason !== "garbage" && (ex?.phase === "response" || e.bytes > ACK_FRAME.length);
        if (ex && damagedResponse && ex.nacks < this.#o.maxNacks) {
          ex.nacks++;
          this.#counters.nacksSent++;
          send(this.#link, NACK_FRAME);
          this.#arm(ex, this.#o.responseTimeoutMs);
        }
        continue;
      }
      const f = e.frame;
      if (!ex) {
        this.#o.logger.debug({ kind: f.kind }, "PN532 frame with no command pending ignored");
        continue;
      }
      if (f.kind === "ack") {
        if (ex.phase === "ack") {
          ex.phase = "response";
          this.#arm(ex, this.#o.responseTimeoutMs);
        }
      } else if (f.kind === "error") {
        this.#counters.errorFrames++;
        this.#consecutiveTimeouts = 0;
        this.#settle(
          ex,
          new Pn532ProtocolError(`PN532 answered command 0x${hex(ex.code)} with an error frame (syntax error)`),
        );
      } else if (f.kind === "info" && f.tfi === TFI_PN532_TO_HOST && f.data[0] === responseCode(ex.code)) {
        // A response also stands for a lost ACK.
        this.#consecutiveTimeouts = 0;
        this.#settle(ex, f.data);
      } else {
        this.#o.logger.debug({ kind: f.kind }, "PN532 frame not for the pending command ignored");
      }
    }
  }

  #settle(ex: Exchange, result: Uint8Array | Error): void {
    this.#o.timers.clearTimeout(ex.timer);
    if (this.#pending === ex) this.#pending = undefined;
    if (result instanceof Error) ex.reject(result);
    else ex.resolve(result);
  }

  #failPending(err: Error): void {
    const ex = this.#pending;
    if (ex) this.#settle(ex, err);
  }
}

function describe(fw: FirmwareVersion): string {
  return `IC 0x${hex(fw.ic)} firmware ${fw.ver}.${fw.rev} support 0x${hex(fw.support)}`;
}
