/**
 * The receipt printer as the daemon sees it: print a receipt without ever
 * holding up a check-in or payment, know whether there is paper, and come
 * back by itself after the cable is pulled.
 *
 * - print() always resolves (never rejects) with a PrintResult, and has its
 *   own timeout; a caller may ignore it. Before printing it asks the paper
 *   sensor (DLE EOT 4, real-time, answered even while the printer is offline
 *   for paper end); on "out" it resolves { printed: false, reason: "paper-out" }
 *   at once, so the UI can show the receipt as an on-screen QR instead.
 * - Paper is also polled every `statusIntervalMs`, so near-end / out reach
 *   telemetry (onPaperStatus) while the kiosk is idle.
 * - A printer that stops answering goes degraded, then after `missedLimit`
 *   unanswered queries disconnected; a lost link (write/read failure, a print
 *   that timed out) is closed and reopened with exponential backoff.
 * - Hot-plug: where the transport has a device node, it is looked at every
 *   `presenceIntervalMs` (a stat, nothing on the wire). The node vanishing
 *   (USB printer or adapter pulled) disconnects at once, even while idle; its
 *   return reconnects at once rather than at the next backoff step. A link the
 *   transport reports lost by itself disconnects at once too.
 * - All traffic on the link is serialised: a status query never lands in the
 *   middle of a receipt.
 */
import type { Logger } from "pino";
import type { Timers } from "../../timers.ts";
import { decodeRealtimePaperStatus, type PaperStatus, requestPaperStatus } from "./escpos.ts";
import { type Receipt, type RenderOptions, renderReceipt } from "./receipt.ts";
import { type PrinterTransport, TransportError } from "./transport.ts";

export type PrinterState = "ok" | "degraded" | "disconnected";
export type PaperState = PaperStatus | "unknown";

export interface PrinterHealth {
  state: PrinterState;
  paper: PaperState;
  lastError: string | undefined;
}

export type PrintFailure = "paper-out" | "disconnected" | "not-responding" | "timeout" | "busy" | "stopped" | "error";

export type PrintResult = { printed: true } | { printed: false; reason: PrintFailure; detail?: string };

export interface SelfTestResult {
  ok: boolean;
  detail: string;
}

export interface ReceiptPrinterOptions {
  transport: PrinterTransport;
  logger: Logger;
  timers: Timers;
  render?: RenderOptions;
  /** How long the printer has to answer a status query. */
  statusTimeoutMs?: number;
  /** A print() that has not finished by then resolves "timeout" and the link is reset. */
  printTimeoutMs?: number;
  statusIntervalMs?: number;
  /** Consecutive unanswered status queries before the printer counts as disconnected. */
  missedLimit?: number;
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  /** How often the device node is looked for (transports with one only). */
  presenceIntervalMs?: number;
  /** print() calls waiting at once; more resolve "busy". */
  maxQueued?: number;
  /** Health changed (state, paper or lastError). */
  onChange?: (health: PrinterHealth) => void;
  /** Paper sensor changed: tell ops (telemetry). */
  onPaperStatus?: (paper: PaperStatus, previous: PaperState) => void;
}

type Options = Required<Omit<ReceiptPrinterOptions, "onChange" | "onPaperStatus" | "render">> &
  Pick<ReceiptPrinterOptions, "onChange" | "onPaperStatus" | "render">;

/** A transport failure: the link is gone and must be reopened. */
function isLinkError(err: unknown): err is TransportError {
  return err instanceof TransportError;
}

export class ReceiptPrinter {
  readonly #o: Options;
  #stopped = true;
  #state: PrinterState = "disconnected";
  #paper: PaperState = "unknown";
  #lastError: string | undefined;
  #missed = 0;
  #attempt = 0;
  #queued = 0;
  #tail: Promise<unknown> = Promise.resolve();
  #pollTimer: unknown;
  #reconnectTimer: unknown;
  #presenceTimer: unknown;
  /** The device node was seen missing since the link was last lost: its return is a replug. */
  #absent = false;
  #connecting = false;
  #offLost: (() => void) | undefined;
  readonly #printTimers = new Set<unknown>();

  constructor(opts: ReceiptPrinterOptions) {
    this.#o = {
      statusTimeoutMs: 500,
      printTimeoutMs: 10_000,
      statusIntervalMs: 30_000,
      missedLimit: 3,
      reconnectMinMs: 1_000,
      // A printer whose device node never goes away (the Pi's UART, an adapter left plugged in) is only found
      // by trying: capped so a replug is seen within 2 s however long it was gone; an open is cheap.
      reconnectMaxMs: 1_500,
      presenceIntervalMs: 500,
      maxQueued: 3,
      ...opts,
    };
    for (const k of [
      "statusTimeoutMs",
      "printTimeoutMs",
      "statusIntervalMs",
      "reconnectMinMs",
      "reconnectMaxMs",
      "presenceIntervalMs",
    ] as const) {
      if (!(this.#o[k] > 0)) throw new RangeError(`printer ${k} must be > 0, got ${this.#o[k]}`);
    }
    if (!Number.isInteger(this.#o.missedLimit) || this.#o.missedLimit < 1) {
      throw new RangeError(`printer missedLimit must be an integer >= 1, got ${this.#o.missedLimit}`);
    }
  }

  get health(): PrinterHealth {
    return { state: this.#state, paper: this.#paper, lastError: this.#lastError };
  }

  /** Opens the link and reads the paper sensor. A missing printer is not an error: it is retried. */
  async start(): Promise<void> {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#attempt = 0;
    this.#absent = false;
    const t = this.#o.transport;
    this.#offLost = t.onLost?.((err) => void this.#linkLost(err));
    if (t.present) this.#watchPresence(t.present.bind(t));
    await this.#connect();
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#o.timers.clearTimeout(this.#pollTimer);
    this.#o.timers.clearTimeout(this.#reconnectTimer);
    this.#o.timers.clearTimeout(this.#presenceTimer);
    this.#pollTimer = undefined;
    this.#reconnectTimer = undefined;
    this.#presenceTimer = undefined;
    this.#offLost?.();
    this.#offLost = undefined;
    // Closing first aborts a write stuck on flow control, so waiting for the queue is bounded.
    await this.#o.transport.close().catch(() => {});
    await this.#tail;
    for (const t of this.#printTimers) this.#o.timers.clearTimeout(t);
    this.#printTimers.clear();
    this.#update({ state: "disconnected", paper: "unknown" });
  }

  /**
   * Prints `receipt`. Never rejects and never waits longer than printTimeoutMs:
   * the caller's check-in or payment must not depend on paper.
   */
  print(receipt: Receipt): Promise<PrintResult> {
    if (this.#stopped) return Promise.resolve({ printed: false, reason: "stopped" });
    if (this.#state === "disconnected") {
      return Promise.resolve({ printed: false, reason: "disconnected", detail: this.#lastError });
    }
    if (this.#queued >= this.#o.maxQueued) {
      return Promise.resolve({ printed: false, reason: "busy", detail: `${this.#queued} receipts already waiting` });
    }
    let bytes: Uint8Array;
    try {
      bytes = renderReceipt(receipt, this.#o.render);
    } catch (err) {
      this.#o.logger.error({ err: (err as Error).message }, "receipt could not be rendered");
      return Promise.resolve({ printed: false, reason: "error", detail: (err as Error).message });
    }
    this.#queued++;
    return new Promise<PrintResult>((resolve) => {
      let settled = false;
      const finish = (r: PrintResult) => {
        if (settled) return;
        settled = true;
        this.#o.timers.clearTimeout(timer);
        this.#printTimers.delete(timer);
        resolve(r);
      };
      const timer = this.#o.timers.setTimeout(() => {
        this.#printTimers.delete(timer);
        finish({ printed: false, reason: "timeout", detail: `not printed within ${this.#o.printTimeoutMs} ms` });
        // A job this late is stuck on the link (flow control, dead USB): reset it.
        void this.#linkLost(new Error(`print timed out after ${this.#o.printTimeoutMs} ms`));
      }, this.#o.printTimeoutMs);
      this.#printTimers.add(timer);
      void this.#exclusive(() => this.#printJob(bytes))
        .then(finish, (err: unknown) => finish({ printed: false, reason: "error", detail: (err as Error).message }))
        .finally(() => {
          this.#queued--;
        });
    });
  }

  /** Asks the printer for its paper sensor; for the remote self-test command. */
  async selfTest(): Promise<SelfTestResult> {
    const where = this.#o.transport.description;
    if (this.#stopped) return { ok: false, detail: "printer unit is not started" };
    if (this.#state === "disconnected") {
      return { ok: false, detail: `printer on ${where} is disconnected: ${this.#lastError ?? "not open"}` };
    }
    let paper: PaperStatus | undefined;
    try {
      paper = await this.#exclusive(() => this.#queryPaper());
    } catch (err) {
      await this.#linkLost(err);
      return { ok: false, detail: `printer on ${where} lost: ${(err as Error).message}` };
    }
    if (paper === undefined) {
      return { ok: false, detail: `printer on ${where} did not answer DLE EOT 4 within ${this.#o.statusTimeoutMs} ms` };
    }
    if (paper === "out") return { ok: false, detail: `printer on ${where} is out of paper` };
    if (paper === "near-end")
      return { ok: true, detail: `printer on ${where} answers; paper near end, replace the roll soon` };
    return { ok: true, detail: `printer on ${where} answers; paper ok` };
  }

  async #printJob(bytes: Uint8Array): Promise<PrintResult> {
    if (this.#stopped) return { printed: false, reason: "stopped" };
    if (this.#state === "disconnected") return { printed: false, reason: "disconnected", detail: this.#lastError };
    try {
      const before = await this.#queryPaper();
      if (before === undefined) return { printed: false, reason: "not-responding", detail: this.#lastError };
      if (before === "out") return { printed: false, reason: "paper-out" };
      await this.#o.transport.write(bytes);
      // DLE EOT is real-time: this reads the sensor while the receipt is still printing.
      const after = await this.#queryPaper();
      if (after === "out") return { printed: false, reason: "paper-out", detail: "paper ran out while printing" };
      return { printed: true };
    } catch (err) {
      if (!isLinkError(err)) throw err;
      await this.#linkLost(err);
      return { printed: false, reason: "disconnected", detail: err.message };
    }
  }

  /** DLE EOT 4 → the paper sensor, or undefined when the printer did not answer in time. */
  async #queryPaper(): Promise<PaperStatus | undefined> {
    const t = this.#o.transport;
    await t.discardInput();
    await t.write(requestPaperStatus());
    // Skip stray bytes (a late answer, line noise) until a byte with the fixed bits of a status byte.
    for (let i = 0; i < 4; i++) {
      const got = await t.read(1, this.#o.statusTimeoutMs);
      if (got.length === 0) break;
      const paper = decodeRealtimePaperStatus(got[0] as number);
      if (paper === undefined) continue;
      this.#missed = 0;
      this.#attempt = 0;
      this.#update({
        state: paper === "out" ? "degraded" : "ok",
        paper,
        lastError: paper === "out" ? "paper out" : undefined,
      });
      return paper;
    }
    this.#missed++;
    const msg = `no answer to DLE EOT 4 within ${this.#o.statusTimeoutMs} ms (${this.#missed} in a row)`;
    this.#o.logger.warn({ printer: t.description, missed: this.#missed }, "printer did not answer status");
    if (this.#missed >= this.#o.missedLimit) throw new TransportError("lost", `printer stopped answering: ${msg}`);
    this.#update({ state: "degraded", lastError: msg });
    return undefined;
  }

  /** Looks for the device node every presenceIntervalMs until stop(). */
  #watchPresence(present: () => Promise<boolean>): void {
    const tick = async () => {
      try {
        const here = await present().catch(() => false);
        if (this.#stopped) return;
        if (!here) {
          this.#absent = true;
          if (this.#state !== "disconnected") {
            await this.#linkLost(new TransportError("lost", `${this.#o.transport.description} is gone (unplugged)`));
          }
        } else if (this.#absent && this.#state === "disconnected" && !this.#connecting) {
          // Plugged back in: now, not at the next backoff step.
          this.#absent = false;
          this.#o.timers.clearTimeout(this.#reconnectTimer);
          this.#reconnectTimer = undefined;
          this.#attempt = 0;
          await this.#connect();
        }
      } catch (err) {
        // The watch must outlive one bad look: logged, and it looks again.
        this.#o.logger.warn({ err: (err as Error).message }, "printer presence check failed");
      } finally {
        if (!this.#stopped)
          this.#presenceTimer = this.#o.timers.setTimeout(() => void tick(), this.#o.presenceIntervalMs);
      }
    };
    this.#presenceTimer = this.#o.timers.setTimeout(() => void tick(), this.#o.presenceIntervalMs);
  }

  async #connect(): Promise<void> {
    if (this.#stopped || this.#connecting) return;
    this.#connecting = true;
    try {
      await this.#connectOnce();
    } finally {
      this.#connecting = false;
    }
  }

  async #connectOnce(): Promise<void> {
    const t = this.#o.transport;
    try {
      await t.open();
    } catch (err) {
      this.#o.logger.warn({ printer: t.description, err: (err as Error).message }, "printer link not available");
      this.#update({ state: "disconnected", paper: "unknown", lastError: (err as Error).message });
      this.#scheduleReconnect();
      return;
    }
    if (this.#stopped) {
      await t.close().catch(() => {});
      return;
    }
    this.#missed = 0;
    this.#o.logger.info({ printer: t.description }, "printer link open");
    // Not "ok" until the printer itself answers.
    this.#update({ state: "degraded", lastError: undefined });
    await this.#pollNow();
  }

  async #pollNow(): Promise<void> {
    this.#o.timers.clearTimeout(this.#pollTimer);
    this.#pollTimer = undefined;
    try {
      await this.#exclusive(() => this.#queryPaper());
    } catch (err) {
      await this.#linkLost(err);
      return;
    }
    if (this.#stopped || this.#state === "disconnected") return;
    this.#pollTimer = this.#o.timers.setTimeout(() => {
      this.#pollTimer = undefined;
      void this.#pollNow();
    }, this.#o.statusIntervalMs);
  }

  async #linkLost(err: unknown): Promise<void> {
    if (this.#stopped || this.#reconnectTimer !== undefined) return;
    const message = (err as Error).message;
    this.#o.logger.warn({ printer: this.#o.transport.description, err: message }, "printer link lost");
    this.#o.timers.clearTimeout(this.#pollTimer);
    this.#pollTimer = undefined;
    this.#update({ state: "disconnected", paper: "unknown", lastError: message });
    this.#scheduleReconnect();
    await this.#o.transport.close().catch(() => {});
  }

  #scheduleReconnect(): void {
    if (this.#stopped || this.#reconnectTimer !== undefined) return;
    const delay = Math.min(this.#o.reconnectMaxMs, this.#o.reconnectMinMs * 2 ** this.#attempt);
    this.#attempt = Math.min(this.#attempt + 1, 30);
    this.#reconnectTimer = this.#o.timers.setTimeout(() => {
      this.#reconnectTimer = undefined;
      void this.#connect();
    }, delay);
  }

  /** Runs `fn` when the link is free; nothing else talks to the printer meanwhile. */
  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(fn, fn);
    this.#tail = run.catch(() => {});
    return run;
  }

  #update(next: Partial<PrinterHealth>): void {
    const prev = this.health;
    if (next.state !== undefined) this.#state = next.state;
    if (next.paper !== undefined) this.#paper = next.paper;
    if ("lastError" in next) this.#lastError = next.lastError;
    const now = this.health;
    if (now.paper !== prev.paper && now.paper !== "unknown") {
      const level = now.paper === "ok" ? "info" : "warn";
      this.#o.logger[level]({ printer: this.#o.transport.description, paper: now.paper }, "printer paper status");
      this.#safe(() => this.#o.onPaperStatus?.(now.paper as PaperStatus, prev.paper));
    }
    if (now.state !== prev.state || now.paper !== prev.paper || now.lastError !== prev.lastError) {
      this.#safe(() => this.#o.onChange?.(now));
    }
  }

  #safe(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#o.logger.error({ err: (err as Error).message }, "printer status listener failed");
    }
  }
}
