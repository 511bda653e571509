/**
 * GPIO on a microcontroller board through johnny-five and Firmata: the same
 * roles on an attached Arduino-class board. The Firmata `io` is always passed
 * in (firmata-io over our serialport, or mock-firmata in tests): johnny-five's
 * own serialport@8 has no built native binding here and must never be asked
 * to open a port.
 *
 * Lines go through the IO-plugin surface (pinMode / digitalWrite /
 * digitalRead) rather than five.Pin or five.Led, whose read loops and blink
 * timers run on real, never-cleared intervals.
 *
 * A board that goes away (USB unplugged, serial port closed) is reopened with
 * backoff when the daemon gave an `openIo`; once it answers again, every line
 * is set up again in the order it was first taken (the relay first, at its
 * de-energised level) and the roles are told to re-apply their state.
 */
import type { EventEmitter } from "node:events";
import { createRequire } from "node:module";
import { ExponentialBackoff, type IBackoff, noJitterGenerator } from "cockatiel";
import type { Logger } from "pino";
import type { Timers } from "../../timers.ts";
import {
  type BackendState,
  type BoardLink,
  describePin,
  type Edge,
  GpioConfigError,
  type InputLine,
  type InputOptions,
  type Level,
  type OutputLine,
  type OutputOptions,
  type PinSpec,
} from "./backend.ts";
import { EdgeWatch, PinBank } from "./pin-bank.ts";

/** The Firmata IO-plugin surface used here (firmata.js / firmata-io, mock-firmata). */
export interface FirmataIo extends EventEmitter {
  readonly isReady: boolean;
  readonly name?: string;
  readonly MODES: { readonly INPUT: number; readonly OUTPUT: number; readonly PULLUP?: number };
  readonly pins: ReadonlyArray<{ readonly supportedModes: readonly number[] }>;
  pinMode(pin: number, mode: number): void;
  digitalWrite(pin: number, value: number): void;
  digitalRead(pin: number, handler: (value: number) => void): void;
}

interface FiveBoard extends EventEmitter {
  readonly isReady: boolean;
}

interface FiveModule {
  Board: new (o: { io: FirmataIo; repl: boolean; debug: boolean; sigint: boolean }) => FiveBoard;
}

const require = createRequire(import.meta.url);

/** Firmata protocol 2.5 PIN_MODE_PULLUP; older io MODES tables (mock-firmata's) lack the name. */
const FIRMATA_PIN_MODE_PULLUP = 0x0b;

export interface JohnnyFiveGpioOptions {
  io: FirmataIo;
  /** Opens the board's io again (a new serial port) after it was lost; without it a lost board stays lost. */
  openIo?: () => FirmataIo;
  /** Closes an io that was lost or never became ready (its serial port), before another is opened, and at stop. */
  closeIo?: (io: FirmataIo) => void;
  /** `io` was opened for this backend (by openIo), so stop() closes it too; otherwise its opener does. */
  ownsIo?: boolean;
  timers: Timers;
  logger?: Logger;
  /** How long start() (and each reopen) waits for the board's "ready" (Firmata handshake). */
  readyTimeoutMs?: number;
  /** Backoff bounds between reopen attempts. */
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
}

/** A line set up on the board, kept so it can be set up again on a reopened board. */
interface BoardLine {
  kind: "output" | "input";
  initial: Level;
  mode: number;
  onRead?: (value: unknown) => void;
}

const IGNORE = () => {};

export class JohnnyFiveGpio extends PinBank {
  readonly kind = "johnny-five" as const;
  readonly #o: JohnnyFiveGpioOptions;
  readonly #timers: Timers;
  readonly #readyTimeoutMs: number;
  readonly #backoffFactory: ExponentialBackoff<unknown>;
  #backoff: IBackoff<unknown> | undefined;
  #io: FirmataIo;
  #state: BackendState = "disconnected";
  #link: BoardLink = { state: "disconnected", attempts: 0 };
  #board: FiveBoard | undefined;
  #retry: unknown;
  #stopped = false;
  /** The wait for an io's "ready", ended early when that io is lost or the backend stops. */
  #waiting: { io: FirmataIo; cancel(reason: unknown): void } | undefined;
  readonly #ioListeners: Array<[string, (arg?: unknown) => void]> = [];
  /** In the order first taken: the relay (started first by GpioRoles) is set up first again. */
  readonly #lines = new Map<number, BoardLine>();
  readonly #listeners = new Set<(event: { restored: boolean }) => void>();

  constructor(o: JohnnyFiveGpioOptions) {
    super();
    this.#o = o;
    this.#io = o.io;
    this.#timers = o.timers;
    this.#readyTimeoutMs = o.readyTimeoutMs ?? 10_000;
    this.#backoffFactory = new ExponentialBackoff({
      generator: noJitterGenerator,
      // Opening a missing port fails at once, so trying every 1.5 s costs nothing and a board that
      // returns is back in health within 2 s.
      initialDelay: o.reconnectMinMs ?? 250,
      maxDelay: o.reconnectMaxMs ?? 1500,
    });
  }

  override get state(): BackendState {
    return this.#state;
  }

  override get lastError(): string | undefined {
    return this.#link.lastError;
  }

  get board(): BoardLink {
    return { ...this.#link };
  }

  describe(): string {
    return `johnny-five (${this.#io.name ?? "Firmata"} board)`;
  }

  watchState(fn: (event: { restored: boolean }) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  override async start(): Promise<void> {
    if (this.#board) return;
    this.#stopped = false;
    // Loaded on first use: it is large, and only kiosks with a board need it.
    const five = require("johnny-five") as FiveModule;
    // repl/debug off: no console noise. sigint off: johnny-five would otherwise exit the process on Ctrl-C.
    const board = new five.Board({ io: this.#io, repl: false, debug: false, sigint: false });
    this.#board = board;
    // johnny-five re-emits io errors on the board, and an "error" nobody listens to throws.
    board.on("error", (err: unknown) => this.#lost(this.#io, err));
    this.#listen(this.#io);
    try {
      await this.#ready(board, this.#io);
    } catch (err) {
      this.#lost(this.#io, err);
      throw err;
    }
    this.#connected();
  }

  override async stop(): Promise<void> {
    this.#stopped = true;
    this.#timers.clearTimeout(this.#retry);
    this.#retry = undefined;
    this.#waiting?.cancel(new Error("johnny-five backend stopped"));
    this.releaseAll();
    this.#lines.clear();
    this.#unlisten();
    // The board object is dropped. An io this backend opened (any reopen, or the first when it owns it) is closed,
    // or its serial port and firmata-io's timers outlive the daemon's stop; one passed in belongs to its opener.
    if (this.#io !== this.#o.io || this.#o.ownsIo) {
      try {
        this.#o.closeIo?.(this.#io);
      } catch {
        // a port already gone cannot be closed twice
      }
    }
    this.#board = undefined;
    this.#state = "disconnected";
    this.#link = {
      state: "disconnected",
      attempts: 0,
      ...(this.#link.lastError ? { lastError: this.#link.lastError } : {}),
    };
  }

  async resolve(spec: PinSpec, field: string): Promise<number> {
    if (!("firmata" in spec)) {
      throw new GpioConfigError(
        `${field}: ${describePin(spec)} is a Raspberry Pi line; a johnny-five board takes { firmata: <pin> }`,
      );
    }
    return spec.firmata;
  }

  async output(pin: number, { initial }: OutputOptions): Promise<OutputLine> {
    this.#check(pin, this.#io.MODES.OUTPUT, "a digital output");
    const line: BoardLine = { kind: "output", initial, mode: this.#io.MODES.OUTPUT };
    this.#setUp(pin, line);
    this.#lines.set(pin, line);
    return {
      write: (level) => {
        if (this.#state !== "ok") throw new Error(`johnny-five board is disconnected: ${this.#link.lastError ?? ""}`);
        this.#io.digitalWrite(pin, level);
      },
      // Firmata only reports an output's level when queried, so there is no synchronous read-back.
      release: this.hold(() => this.#lines.delete(pin)),
    };
  }

  async input(pin: number, edge: Edge, options: InputOptions = {}): Promise<InputLine> {
    const { INPUT } = this.#io.MODES;
    const PULLUP = this.#io.MODES.PULLUP ?? FIRMATA_PIN_MODE_PULLUP;
    this.#check(pin, INPUT, "a digital input");
    const pullUp = options.pull === "up" && this.#supports(pin, PULLUP);
    // Until the board's first report, assume the idle level the pull gives.
    const input = new EdgeWatch(edge, options.pull === "up" ? 1 : 0);
    const line: BoardLine = {
      kind: "input",
      initial: input.level,
      mode: pullUp ? PULLUP : INPUT,
      onRead: (value: unknown) => input.see(value ? 1 : 0),
    };
    this.#setUp(pin, line);
    this.#lines.set(pin, line);
    return {
      read: () => input.level,
      watch: (cb) => input.watch(cb),
      release: this.hold(() => {
        input.unwatch();
        this.#tearDown(pin, line);
        this.#lines.delete(pin);
      }),
    };
  }

  /** Sets a line up on the current io. */
  #setUp(pin: number, line: BoardLine): void {
    const io = this.#io;
    if (line.kind === "output") {
      // Writing first sets the port latch (StandardFirmata turns a 1 on an input into the pull-up),
      // so the pin comes up at `initial` when it becomes an output; then write again as an output.
      io.digitalWrite(pin, line.initial);
      io.pinMode(pin, line.mode);
      io.digitalWrite(pin, line.initial);
      return;
    }
    io.pinMode(pin, line.mode);
    // The IO-plugin spec (rwaldron/io-plugins, digitalRead) has every plugin emit
    // `digital-read-${pin}` on each change; listening to that event (instead of the
    // handler) is what can be removed again. firmata.js adds the handler as a listener
    // of the same event, so removing IGNORE too leaves nothing behind.
    io.on(`digital-read-${pin}`, line.onRead as (value: unknown) => void);
    io.digitalRead(pin, IGNORE);
  }

  #tearDown(pin: number, line: BoardLine, io: FirmataIo = this.#io): void {
    if (line.kind !== "input") return;
    io.removeListener(`digital-read-${pin}`, line.onRead as (value: unknown) => void);
    io.removeListener(`digital-read-${pin}`, IGNORE);
  }

  #supports(pin: number, mode: number): boolean {
    return this.#io.pins[pin]?.supportedModes.includes(mode) ?? false;
  }

  #check(pin: number, mode: number, what: string): void {
    if (this.#state !== "ok") throw new Error("johnny-five board is not ready");
    if (!this.#supports(pin, mode)) {
      const modes = this.#io.pins[pin]?.supportedModes;
      throw new GpioConfigError(
        modes
          ? `firmata pin ${pin} cannot be ${what} (its modes: ${modes.join(", ") || "none"})`
          : `firmata pin ${pin} does not exist on this board (${this.#io.pins.length} pins)`,
      );
    }
  }

  #listen(io: FirmataIo): void {
    for (const event of ["close", "disconnect", "error"]) {
      const fn = (arg?: unknown) => this.#lost(io, arg ?? event);
      io.on(event, fn);
      this.#ioListeners.push([event, fn]);
    }
  }

  #unlisten(): void {
    for (const [event, fn] of this.#ioListeners.splice(0)) this.#io.removeListener(event, fn);
  }

  /** Waits for `board` (five.Board at start) or the io itself (a reopened board) to report ready. */
  #ready(
    ready: { readonly isReady: boolean } & Pick<EventEmitter, "once" | "removeListener">,
    io: FirmataIo,
  ): Promise<void> {
    if (ready.isReady) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const end = (err?: unknown) => {
        this.#timers.clearTimeout(timer);
        ready.removeListener("ready", onReady);
        if (this.#waiting === waiting) this.#waiting = undefined;
        if (err === undefined) resolve();
        else reject(err);
      };
      const timer = this.#timers.setTimeout(
        () => end(new Error(`johnny-five board did not report ready within ${this.#readyTimeoutMs} ms`)),
        this.#readyTimeoutMs,
      );
      const onReady = () => end();
      const waiting = {
        io,
        cancel: (reason: unknown) => end(reason instanceof Error ? reason : new Error(String(reason))),
      };
      this.#waiting = waiting;
      ready.once("ready", onReady);
    });
  }

  #connected(): void {
    this.#state = "ok";
    this.#backoff = undefined;
    this.#link = { state: "connected", attempts: 0 };
  }

  /** The board behind `io` went away (or never answered): say so, and reopen it if we can. */
  #lost(io: FirmataIo, reason: unknown): void {
    if (io !== this.#io || this.#stopped) return;
    const lastError = reason instanceof Error ? reason.message : String(reason);
    // An io that failed while we waited for its handshake will not become ready.
    if (this.#waiting?.io === io) this.#waiting.cancel(reason);
    const wasOk = this.#state === "ok";
    this.#state = "disconnected";
    const canReopen = this.#o.openIo !== undefined && this.#board !== undefined;
    this.#link = { state: canReopen ? "reconnecting" : "disconnected", attempts: this.#link.attempts, lastError };
    if (wasOk) this.#o.logger?.warn({ err: lastError }, "johnny-five board lost");
    this.#tell(false);
    if (canReopen && this.#retry === undefined) this.#scheduleReopen();
  }

  #scheduleReopen(): void {
    this.#backoff = this.#backoff ? this.#backoff.next(undefined) : this.#backoffFactory.next();
    this.#retry = this.#timers.setTimeout(() => void this.#reopen(), this.#backoff.duration);
  }

  async #reopen(): Promise<void> {
    this.#retry = undefined;
    const openIo = this.#o.openIo;
    if (this.#stopped || !openIo) return;
    this.#link = { ...this.#link, attempts: this.#link.attempts + 1 };
    this.#tell(false);
    const old = this.#io;
    this.#unlisten();
    for (const [pin, line] of this.#lines) this.#tearDown(pin, line, old);
    try {
      this.#o.closeIo?.(old);
    } catch {
      // a port already gone cannot be closed twice
    }
    let io: FirmataIo;
    try {
      io = openIo();
    } catch (err) {
      this.#link = { ...this.#link, lastError: (err as Error).message };
      this.#tell(false);
      this.#scheduleReopen();
      return;
    }
    this.#io = io;
    this.#listen(io);
    try {
      await this.#ready(io, io);
    } catch (err) {
      if (this.#io !== io || this.#stopped) return;
      this.#link = { ...this.#link, lastError: (err as Error).message };
      this.#tell(false);
      if (this.#retry === undefined) this.#scheduleReopen();
      return;
    }
    if (this.#io !== io || this.#stopped) return;
    // In the order first taken: the relay comes back de-energised before anything else is driven.
    for (const [pin, line] of this.#lines) this.#setUp(pin, line);
    const attempts = this.#link.attempts;
    this.#connected();
    this.#o.logger?.info({ attempts }, "johnny-five board back; lines set up again");
    this.#tell(true);
  }

  #tell(restored: boolean): void {
    for (const fn of [...this.#listeners]) fn({ restored });
  }
}
