/**
 * A payment terminal driven over ZVT (PA00P015), the ECR interface of German
 * and Austrian terminals: on TCP (they listen on port 20007;
 * ../serial/tcp-link.ts) or on a serial line (RS-232, ./zvt-serial.ts, which
 * adds ZVT's DLE/STX framing, CRC and ACK/NAK under the same APDUs). Either
 * way the link is the byte pipe every driver uses (SerialLink).
 *
 * With `reconnectMs` set (the daemon sets it) the driver keeps the link up on
 * its own: connects at once, and after a lost link (cable, terminal restart,
 * a USB adapter gone and back) tries again every `reconnectMs` until the
 * terminal answers Registration, so `state` tells the truth between charges.
 * A charge is never sent again on a new link: a lost link ends it (see below).
 *
 * One charge is one exchange: connect and register if there is no link
 * (lazily, so a terminal that was off is picked up on the next charge), send
 * Authorization, acknowledge every message the terminal sends, and settle on
 * the first final answer: Completion after a Status information with result
 * 00 is approved, Abort (06 1E) is declined. The terminal's Status
 * information is the commit point: once it says 00 and we have acknowledged
 * it, the money has moved, whatever happens to the link afterwards.
 *
 * Nothing unacknowledged is confirmed: after a timeout the driver sends Abort
 * (06 B0) and drops the link, so a late approval is never acknowledged and the
 * terminal reverses it itself; messages outside a charge are not
 * acknowledged either. The PAN never leaves zvt-messages.ts, and neither the
 * password nor raw frames are logged.
 *
 * End-of-Day (06 50, with the password) closes the terminal's batch: the
 * terminal answers with Status information carrying the batch total (BMP 04)
 * and the single totals per card group (BMP 60), then Completion. Like a
 * charge, its Status information with result 00 is the commit point: the batch
 * is closed on the terminal once it says so.
 */
import type { Logger } from "pino";
import { realTimers, type Timers } from "../../timers.ts";
import { openSerialPort, type SerialLink, send } from "../serial/serial-link.ts";
import { openTcpLink } from "../serial/tcp-link.ts";
import {
  cardLabel,
  type PaymentTerminal,
  type TerminalCharge,
  type TerminalOutcome,
  type TerminalSettlement,
  type TerminalState,
} from "./terminal.ts";
import { ACK, type Apdu, ApduDecoder, apduName, isAck, isNegativeAck } from "./zvt-frame.ts";
import {
  authorization,
  CARD_TYPES,
  Cmd,
  currencyAlpha,
  currencyNumber,
  ECR_ABORT,
  endOfDay,
  isCmd,
  MAX_AMOUNT,
  parseStatusInformation,
  REGISTRATION_CONFIG,
  registration,
  resultText,
  type StatusInformation,
} from "./zvt-messages.ts";
import { ZVT_SERIAL_BAUD, type ZvtSerialOptions, zvtSerialLink } from "./zvt-serial.ts";

export const ZVT_PORT = 20007;

export interface ZvtTerminalOptions {
  /** TCP: the terminal's host (with `port`); give this or `serial`. */
  host?: string;
  port?: number;
  /** A serial line instead of TCP: the device path (a UART, a USB adapter, a pty) and its baud rate (9600). */
  serial?: { path: string; baudRate?: number } & Pick<ZvtSerialOptions, "ackTimeoutMs">;
  /** Keep the link up between charges, trying again this often after it is lost; unset: link at the first charge. */
  reconnectMs?: number;
  /** The terminal's 6-digit ECR password; sent in Registration only, never logged. */
  password?: string;
  /** The kiosk's currency (ISO 4217), announced in Registration; each charge still names its own. */
  currency?: string;
  /** From Authorization to the final answer (card, PIN and the issuer's answer included). */
  timeoutMs?: number;
  /** For the TCP connection and Registration together. */
  connectTimeoutMs?: number;
  /** After we ask the terminal to abort, how long its answer is waited for. */
  abortGraceMs?: number;
  timers?: Timers;
  logger: Logger;
  /** Told of every state change (for the kiosk's "pay by card" button). */
  onStateChange?: (state: TerminalState) => void;
}

export interface ZvtCounters {
  charges: number;
  approved: number;
  declined: number;
  timeout: number;
  disconnected: number;
  cancelled: number;
  /** Link attempts after the first (TCP connections, serial port opens). */
  reconnects: number;
  /** Bytes from the terminal that were not ZVT APDUs. */
  garbageBytes: number;
  /** Terminal messages that arrived outside a charge (not acknowledged). */
  unsolicited: number;
}

/** What a step towards a charge ended with, when it did not end well. */
type Step = { ok: true } | { ok: false; outcome: TerminalOutcome };

/** The conversation in progress: incoming APDUs and a lost link go to it. */
interface Exchange {
  onApdu(a: Apdu): void;
  onClose(reason: string): void;
}

type Options = Required<Omit<ZvtTerminalOptions, "onStateChange" | "host" | "serial" | "reconnectMs">> &
  Pick<ZvtTerminalOptions, "onStateChange" | "reconnectMs">;

export class ZvtTerminal implements PaymentTerminal {
  readonly #o: Options;
  /** Opens one link to the terminal (TCP or serial); the signal gives the attempt up. */
  readonly #open: (signal: AbortSignal) => Promise<SerialLink>;
  /** "10.0.0.5:20007" or "/dev/ttyUSB0", for logs and reasons. */
  readonly #where: string;
  readonly #decoder = new ApduDecoder();
  /** The next background link attempt (reconnectMs), while one is waiting. */
  #relink: unknown;
  /** The last background failure logged, so a terminal that stays away is logged once, not every try. */
  #lastFailure: string | undefined;
  #link: SerialLink | undefined;
  /** Gives up the connection attempt in progress (its timeout, or close()). */
  #connecting: AbortController | undefined;
  #registered = false;
  #everConnected = false;
  #exchange: Exchange | undefined;
  /** The connect-and-register attempt in progress, shared by whoever needs the link. */
  #linking: Promise<Step> | undefined;
  #busy = false;
  #closed = false;
  #state: TerminalState = "disconnected";
  readonly #counters: ZvtCounters = {
    charges: 0,
    approved: 0,
    declined: 0,
    timeout: 0,
    disconnected: 0,
    cancelled: 0,
    reconnects: 0,
    garbageBytes: 0,
    unsolicited: 0,
  };

  constructor(opts: ZvtTerminalOptions) {
    this.#o = {
      port: ZVT_PORT,
      password: "000000",
      currency: "EUR",
      timeoutMs: 60_000,
      connectTimeoutMs: 10_000,
      abortGraceMs: 5000,
      timers: realTimers,
      ...opts,
    };
    const { host, serial } = opts;
    if ((host === undefined) === (serial === undefined)) {
      throw new RangeError("ZvtTerminal needs either host (TCP) or serial (a serial line), not both or neither");
    }
    if (serial) {
      if (!serial.path) throw new RangeError("ZvtTerminal option serial.path is empty");
      const baudRate = serial.baudRate ?? ZVT_SERIAL_BAUD;
      const { timers } = this.#o;
      this.#where = serial.path;
      this.#open = async (signal) => {
        const raw = await openSerialPort(serial.path, { baudRate });
        // Opening a port is quick; an attempt given up meanwhile still closes what it opened.
        if (signal.aborted) {
          await raw.close();
          throw new Error("opening the serial port was given up");
        }
        return zvtSerialLink(raw, { timers, ackTimeoutMs: serial.ackTimeoutMs });
      };
    } else {
      const port = this.#o.port;
      if (!Number.isInteger(port) || port < 1 || port > 65_535) {
        throw new RangeError(`ZvtTerminal option port must be a TCP port 1..65535, got ${port}`);
      }
      this.#where = `${host}:${port}`;
      this.#open = (signal) => openTcpLink({ host: host ?? "", port, signal });
    }
    const { reconnectMs } = this.#o;
    if (reconnectMs !== undefined && (!Number.isFinite(reconnectMs) || reconnectMs <= 0)) {
      throw new RangeError(`ZvtTerminal option reconnectMs must be a positive number of ms, got ${reconnectMs}`);
    }
    if (!/^\d{6}$/.test(this.#o.password)) throw new RangeError("ZvtTerminal option password must be 6 digits");
    if (currencyNumber(this.#o.currency) === undefined) {
      throw new RangeError(`ZvtTerminal option currency: unknown ISO 4217 code ${JSON.stringify(this.#o.currency)}`);
    }
    for (const key of ["timeoutMs", "connectTimeoutMs", "abortGraceMs"] as const) {
      const v = this.#o[key];
      if (!Number.isFinite(v) || v <= 0)
        throw new RangeError(`ZvtTerminal option ${key} must be a positive number of ms, got ${v}`);
    }
  }

  /** "disconnected" until a link is up; charge() connects from any state. */
  get state(): TerminalState {
    return this.#state;
  }

  get counters(): ZvtCounters {
    return { ...this.#counters, garbageBytes: this.#decoder.discarded };
  }

  /** Where the terminal is reached: "host:port" or the serial device path. */
  get where(): string {
    return this.#where;
  }

  /** Connects and registers now rather than at the first charge (so `state` shows "ready"). */
  async connect(): Promise<void> {
    if (this.#closed) throw new Error("the ZVT terminal driver is closed");
    if (this.#busy) return;
    const step = await this.#ensureLink(undefined);
    if (!step.ok) throw new Error(step.outcome.status === "disconnected" ? step.outcome.reason : step.outcome.status);
  }

  async charge(req: TerminalCharge, opts: { signal?: AbortSignal } = {}): Promise<TerminalOutcome> {
    if (this.#closed) throw new Error("the ZVT terminal driver is closed");
    if (this.#busy) throw new Error("the payment terminal is busy with another charge; charges run one at a time");
    const currency = checkCharge(req);
    this.#busy = true;
    this.#counters.charges++;
    this.#setState("busy");
    const log = this.#o.logger.child({ reference: req.reference });
    log.info({ amount: req.amount, currency: req.currency, terminal: this.#where }, "card payment started");
    try {
      const outcome = await this.#charge(req, currency, opts.signal, log);
      this.#counters[outcome.status]++;
      // An outcome carries no card data beyond a label, so it is logged whole.
      log.info({ outcome }, `card payment ${outcome.status}`);
      return outcome;
    } finally {
      this.#busy = false;
      this.#setState(this.#linkUp ? "ready" : "disconnected");
      if (!this.#linkUp) this.#scheduleRelink();
    }
  }

  /** ZVT End-of-Day: closes the terminal's batch and resolves with its totals (see the module comment). */
  async endOfDay(): Promise<TerminalSettlement> {
    if (this.#closed) throw new Error("the ZVT terminal driver is closed");
    if (this.#busy) throw new Error("the payment terminal is busy; end-of-day runs between charges");
    this.#busy = true;
    this.#setState("busy");
    const log = this.#o.logger;
    log.info({ terminal: this.#where }, "terminal end-of-day started");
    try {
      const link = await this.#ensureLink(undefined);
      if (!link.ok) {
        const why = link.outcome.status === "disconnected" ? link.outcome.reason : link.outcome.status;
        throw new Error(`terminal end-of-day not possible: ${why}`);
      }
      const totals = await this.#endOfDay();
      log.info({ totals }, "terminal end-of-day done");
      return totals;
    } finally {
      this.#busy = false;
      this.#setState(this.#linkUp ? "ready" : "disconnected");
      if (!this.#linkUp) this.#scheduleRelink();
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#o.timers.clearTimeout(this.#relink);
    this.#relink = undefined;
    this.#connecting?.abort();
    const link = this.#link;
    if (link) {
      if (this.#busy) this.#write(ECR_ABORT);
      await link.close();
    }
    this.#setState("disconnected");
  }

  get #linkUp(): boolean {
    return this.#link !== undefined && this.#registered;
  }

  /**
   * With reconnectMs: one more link attempt after reconnectMs, unless one is
   * waiting already. A charge in progress links (or fails) on its own, and
   * schedules the next attempt when it ends.
   */
  #scheduleRelink(): void {
    const { reconnectMs, timers } = this.#o;
    if (reconnectMs === undefined || this.#closed || this.#relink !== undefined) return;
    this.#relink = timers.setTimeout(() => {
      this.#relink = undefined;
      if (this.#closed || this.#busy || this.#linkUp) return;
      void this.#ensureLink(undefined).then((step) => {
        if (step.ok) {
          if (this.#lastFailure !== undefined) this.#o.logger.info({ terminal: this.#where }, "payment terminal back");
          this.#lastFailure = undefined;
          return;
        }
        const why = step.outcome.status === "disconnected" ? step.outcome.reason : step.outcome.status;
        // A terminal that stays away is logged once, then quietly retried.
        if (why !== this.#lastFailure)
          this.#o.logger.warn({ terminal: this.#where, why }, "payment terminal unreachable");
        this.#lastFailure = why;
        this.#scheduleRelink();
      });
    }, reconnectMs);
  }

  async #charge(
    req: TerminalCharge,
    currency: number,
    signal: AbortSignal | undefined,
    log: Logger,
  ): Promise<TerminalOutcome> {
    if (signal?.aborted) return { status: "cancelled" };
    const link = await this.#ensureLink(signal);
    if (!link.ok) return link.outcome;
    if (signal?.aborted) return { status: "cancelled" };
    return this.#authorise(req, currency, signal, log);
  }

  // ---- the link -----------------------------------------------------------------

  /**
   * Connects and registers unless the link is up; callers share an attempt in
   * progress. An abort only stops the caller's wait: the attempt runs on, and a
   * link it sets up serves the next charge.
   */
  async #ensureLink(signal: AbortSignal | undefined): Promise<Step> {
    if (this.#linkUp) return { ok: true };
    if (!this.#linking) {
      this.#linking = this.#openLink().finally(() => {
        this.#linking = undefined;
      });
    }
    if (!signal) return this.#linking;
    let onAbort = () => {};
    const aborted = new Promise<Step>((resolve) => {
      onAbort = () => resolve({ ok: false, outcome: { status: "cancelled" } });
      signal.addEventListener("abort", onAbort, { once: true });
    });
    try {
      return await Promise.race([this.#linking, aborted]);
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }

  /** One attempt: TCP connection, Registration, the terminal's Completion. */
  #openLink(): Promise<Step> {
    this.#dropLink();
    const { timers, connectTimeoutMs, password } = this.#o;
    if (this.#everConnected) this.#counters.reconnects++;
    this.#everConnected = true;
    return new Promise<Step>((resolve) => {
      let phase: "connect" | "register" = "connect";
      let settled = false;
      let link: SerialLink | undefined;
      const connecting = new AbortController();
      this.#connecting = connecting;
      const finish = (step: Step) => {
        if (settled) return;
        settled = true;
        timers.clearTimeout(timer);
        connecting.abort();
        if (this.#connecting === connecting) this.#connecting = undefined;
        if (this.#exchange === exchange) this.#exchange = undefined;
        if (step.ok) {
          this.#registered = true;
          if (!this.#busy) this.#setState("ready");
        } else {
          if (link && this.#link === link) this.#dropLink();
          if (!this.#busy) this.#scheduleRelink();
        }
        resolve(step);
      };
      const unreachable = (why: string): Step => ({
        ok: false,
        outcome: { status: "disconnected", reason: `${why} (no payment was started)` },
      });
      const timer = timers.setTimeout(() => {
        const what = phase === "connect" ? "accept the connection" : "answer Registration";
        finish(unreachable(`terminal at ${this.#where} did not ${what} within ${connectTimeoutMs} ms`));
      }, connectTimeoutMs);
      const exchange: Exchange = {
        onApdu: (a) => {
          if (isNegativeAck(a)) finish(unreachable(`terminal refused Registration: ${resultText(a.ins)}`));
          else if (isCmd(a, Cmd.abort)) finish(unreachable(`terminal refused Registration: ${resultText(a.data[0])}`));
          else if (isCmd(a, Cmd.completion)) finish({ ok: true });
        },
        onClose: (reason) => finish(unreachable(`cannot reach the terminal at ${this.#where}: ${reason}`)),
      };
      this.#exchange = exchange;
      this.#open(connecting.signal).then(
        (opened) => {
          link = opened;
          this.#attach(opened);
          phase = "register";
          this.#o.logger.info({ terminal: this.#where }, "connected to the payment terminal; registering");
          this.#write(registration(password, REGISTRATION_CONFIG, currencyNumber(this.#o.currency) ?? 978));
        },
        (err: Error) => {
          const why = this.#closed ? "the terminal driver was closed" : err.message;
          finish(unreachable(`cannot reach the terminal at ${this.#where}: ${why}`));
        },
      );
    });
  }

  #attach(link: SerialLink): void {
    this.#link = link;
    this.#registered = false;
    this.#decoder.reset();
    link.onData((chunk) => this.#onData(link, chunk));
    link.onClose((err) => this.#onClose(link, err?.message ?? "the terminal closed the connection"));
  }

  /**
   * Lets go of the link on purpose: whatever the terminal still says is not
   * acknowledged. Bytes just written (an Abort) still go out first.
   */
  #dropLink(): void {
    const link = this.#link;
    this.#link = undefined;
    this.#registered = false;
    this.#decoder.reset();
    void link?.close();
  }

  #onClose(link: SerialLink, reason: string): void {
    if (link !== this.#link) return;
    this.#link = undefined;
    this.#registered = false;
    this.#decoder.reset();
    const exchange = this.#exchange;
    this.#exchange = undefined;
    if (exchange) exchange.onClose(this.#closed ? "the terminal driver was closed" : reason);
    else if (!this.#closed) this.#o.logger.warn({ terminal: this.#where, reason }, "payment terminal link lost");
    if (!this.#busy) {
      this.#setState("disconnected");
      this.#scheduleRelink();
    }
  }

  #onData(link: SerialLink, chunk: Uint8Array): void {
    if (link !== this.#link) return;
    for (const e of this.#decoder.push(chunk)) {
      if (e.type === "discard") {
        this.#o.logger.warn({ bytes: e.bytes }, "ignored bytes from the payment terminal that are not ZVT");
        continue;
      }
      const a = e.apdu;
      const exchange = this.#exchange;
      if (!exchange) {
        this.#counters.unsolicited++;
        this.#o.logger.warn({ apdu: apduName(a) }, "payment terminal message outside a charge; not acknowledged");
        continue;
      }
      if (a.cls === 0x04 || a.cls === 0x06) this.#write(ACK);
      try {
        exchange.onApdu(a);
      } catch (err) {
        // The handlers do not throw; if one ever did, a link event must not take the daemon down.
        this.#o.logger.error({ err: (err as Error).message, apdu: apduName(a) }, "ZVT message handling failed");
      }
      if (link !== this.#link) return;
    }
  }

  #write(bytes: Uint8Array): void {
    send(this.#link, bytes);
  }

  #setState(state: TerminalState): void {
    if (state === this.#state) return;
    this.#state = state;
    try {
      this.#o.onStateChange?.(state);
    } catch (err) {
      this.#o.logger.error({ err: (err as Error).message }, "payment terminal state listener failed");
    }
  }

  // ---- end-of-day ---------------------------------------------------------------

  #endOfDay(): Promise<TerminalSettlement> {
    const { timers, timeoutMs } = this.#o;
    return new Promise<TerminalSettlement>((resolve, reject) => {
      let status: StatusInformation | undefined;
      let settled = false;
      let timer: unknown;
      const finish = (result: TerminalSettlement | Error) => {
        if (settled) return;
        settled = true;
        timers.clearTimeout(timer);
        if (this.#exchange === exchange) this.#exchange = undefined;
        if (result instanceof Error) reject(result);
        else resolve(result);
      };
      /** Past a Status information with result 00 the batch is closed on the terminal, whatever follows. */
      const committed = () => (status?.resultCode === 0 ? settlementOf(status) : undefined);
      const exchange: Exchange = {
        onApdu: (a) => {
          if (isAck(a)) return;
          if (isNegativeAck(a)) {
            finish(new Error(`the terminal refused end-of-day: ${resultText(a.ins)}`));
          } else if (isCmd(a, Cmd.statusInformation)) {
            status = parseStatusInformation(a.data);
          } else if (isCmd(a, Cmd.completion)) {
            finish(
              committed() ??
                new Error(
                  status
                    ? `terminal end-of-day failed: ${resultText(status.resultCode)}`
                    : "the terminal ended end-of-day without its totals",
                ),
            );
          } else if (isCmd(a, Cmd.abort)) {
            finish(new Error(`the terminal aborted end-of-day: ${resultText(a.data[0] ?? status?.resultCode)}`));
          }
          // intermediate status and print lines are acknowledged and ignored
        },
        onClose: (reason) => finish(committed() ?? new Error(`link to the terminal lost during end-of-day: ${reason}`)),
      };
      this.#exchange = exchange;
      timer = timers.setTimeout(() => {
        const done = committed();
        if (!done) this.#dropLink();
        finish(done ?? new Error(`no end-of-day answer from the terminal within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#write(endOfDay(this.#o.password));
    });
  }

  // ---- one authorisation --------------------------------------------------------

  #authorise(
    req: TerminalCharge,
    currency: number,
    signal: AbortSignal | undefined,
    log: Logger,
  ): Promise<TerminalOutcome> {
    const { timers, timeoutMs, abortGraceMs } = this.#o;
    return new Promise<TerminalOutcome>((resolve) => {
      /** What we sent that the terminal has yet to ACK or refuse, oldest first. */
      const unacked: ("authorization" | "abort")[] = [];
      let status: StatusInformation | undefined;
      let aborting = false;
      let settled = false;
      let timer: unknown;
      const committed = () => status?.resultCode === 0;
      const finish = (o: TerminalOutcome) => {
        if (settled) return;
        settled = true;
        timers.clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        if (this.#exchange === exchange) this.#exchange = undefined;
        resolve(o);
      };
      const sendAbort = () => {
        unacked.push("abort");
        this.#write(ECR_ABORT);
      };
      /** No final answer: past the commit point it is an approval, before it the terminal reverses. */
      const giveUp = (why: string) => {
        if (status && committed()) {
          log.warn({ terminalRef: reference(status) }, `${why}, after the terminal approved: treated as approved`);
          finish(approved(status, req, log));
          return;
        }
        log.warn(why);
        if (this.#link) {
          sendAbort();
          this.#dropLink();
        }
        finish({ status: "timeout" });
      };
      const onAbort = () => {
        if (settled || aborting) return;
        aborting = true;
        log.info("charge cancelled by the kiosk; asking the terminal to abort");
        sendAbort();
        timers.clearTimeout(timer);
        timer = timers.setTimeout(
          () => giveUp(`the terminal did not confirm the abort within ${abortGraceMs} ms`),
          abortGraceMs,
        );
      };
      const exchange: Exchange = {
        onApdu: (a) => {
          if (isAck(a) || isNegativeAck(a)) {
            const what = unacked.shift();
            if (what === "authorization" && isNegativeAck(a)) {
              finish(
                aborting
                  ? { status: "cancelled" }
                  : { status: "declined", reason: `terminal refused the payment: ${resultText(a.ins)}` },
              );
            } else if (what === "abort" && isNegativeAck(a)) {
              log.info({ result: resultText(a.ins) }, "the terminal cannot abort now; waiting for its answer");
            }
            return;
          }
          if (isCmd(a, Cmd.intermediateStatus)) {
            log.debug({ intermediate: a.data[0] }, "payment terminal intermediate status");
          } else if (isCmd(a, Cmd.statusInformation)) {
            status = parseStatusInformation(a.data);
            if (!status.complete)
              log.warn("payment terminal status information had fields this driver does not know; read up to them");
            checkEcho(status, req, currency, log);
          } else if (isCmd(a, Cmd.completion)) {
            if (status && committed()) {
              if (aborting) log.warn("the abort came too late: the terminal had approved the payment");
              finish(approved(status, req, log));
            } else if (aborting) {
              finish({ status: "cancelled" });
            } else {
              const reason = status ? resultText(status.resultCode) : "the terminal finished without a payment result";
              finish({ status: "declined", reason });
            }
          } else if (isCmd(a, Cmd.abort)) {
            finish(
              aborting
                ? { status: "cancelled" }
                : { status: "declined", reason: resultText(a.data[0] ?? status?.resultCode) },
            );
          } else {
            log.debug({ apdu: apduName(a) }, "payment terminal message acknowledged and ignored");
          }
        },
        onClose: (reason) => {
          if (status && committed()) {
            log.warn({ reason }, "link lost after the terminal approved: treated as approved");
            finish(approved(status, req, log));
          } else {
            finish({ status: "disconnected", reason: `link to the terminal lost during the payment: ${reason}` });
          }
        },
      };
      this.#exchange = exchange;
      signal?.addEventListener("abort", onAbort, { once: true });
      timer = timers.setTimeout(() => giveUp(`no final answer from the terminal within ${timeoutMs} ms`), timeoutMs);
      unacked.push("authorization");
      this.#write(authorization(req.amount, currency));
    });
  }
}

function settlementOf(s: StatusInformation): TerminalSettlement | Error {
  if (!s.totals)
    return new Error("the terminal's end-of-day answer has no single totals (BMP 60): the batch count is unknown");
  const groups = Object.values(s.totals.groups);
  const count = groups.reduce((n, g) => n + g.count, 0);
  const total = s.amount ?? groups.reduce((n, g) => n + g.amount, 0);
  const currency = s.currency !== undefined ? currencyAlpha(s.currency) : undefined;
  return {
    total,
    count,
    ...(currency ? { currency } : {}),
    ...(s.traceNumber ? { traceNumber: s.traceNumber } : {}),
    receiptFrom: s.totals.receiptFrom,
    receiptTo: s.totals.receiptTo,
  };
}

function checkCharge(req: TerminalCharge): number {
  if (!Number.isInteger(req.amount) || req.amount <= 0 || req.amount > MAX_AMOUNT) {
    throw new RangeError(`charge amount must be an integer number of minor units 1..${MAX_AMOUNT}, got ${req.amount}`);
  }
  const currency = currencyNumber(req.currency);
  if (currency === undefined)
    throw new RangeError(`the ZVT driver does not know currency ${JSON.stringify(req.currency)}`);
  if (typeof req.reference !== "string" || req.reference.length === 0)
    throw new TypeError("charge reference must be a non-empty string");
  return currency;
}

/** A terminal answering for another amount or currency is a fault worth an error log (the money moved as it says). */
function checkEcho(s: StatusInformation, req: TerminalCharge, currency: number, log: Logger): void {
  if (s.amount !== undefined && s.amount !== req.amount) {
    log.error({ asked: req.amount, answered: s.amount }, "payment terminal reports a different amount");
  }
  if (s.currency !== undefined && s.currency !== currency) {
    log.error(
      { asked: req.currency, answered: currencyAlpha(s.currency) ?? s.currency },
      "payment terminal reports a different currency",
    );
  }
}

function reference(s: StatusInformation): string {
  const parts = [s.traceNumber, s.receiptNumber].filter((p): p is string => p !== undefined);
  return parts.length > 0 ? parts.join("-") : "none";
}

function approved(s: StatusInformation, req: TerminalCharge, log: Logger): TerminalOutcome {
  if (!s.traceNumber) log.error({ reference: req.reference }, "payment terminal approved without a trace number");
  const brand = s.cardName ?? (s.cardType !== undefined ? CARD_TYPES.get(s.cardType) : undefined) ?? s.panBrand;
  return {
    status: "approved",
    reference: reference(s),
    approvalCode: s.approvalCode ?? "",
    cardLabel: cardLabel(brand, s.panLast4),
  };
}
