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
 */
import type { EventEmitter } from "node:events";
import { createRequire } from "node:module";
import type { Timers } from "../../timers.ts";
import {
  type BackendState,
  describePin,
  type Edge,
  GpioConfigError,
  type InputLine,
  type InputOptions,
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
  timers: Timers;
  /** How long start() waits for the board's "ready" (Firmata handshake). */
  readyTimeoutMs?: number;
}

export class JohnnyFiveGpio extends PinBank {
  readonly kind = "johnny-five" as const;
  readonly #io: FirmataIo;
  readonly #timers: Timers;
  readonly #readyTimeoutMs: number;
  #state: BackendState = "disconnected";
  #lastError: string | undefined;
  #board: FiveBoard | undefined;
  readonly #ioListeners: Array<[string, (arg?: unknown) => void]> = [];

  constructor(o: JohnnyFiveGpioOptions) {
    super();
    this.#io = o.io;
    this.#timers = o.timers;
    this.#readyTimeoutMs = o.readyTimeoutMs ?? 10_000;
  }

  override get state(): BackendState {
    return this.#state;
  }

  override get lastError(): string | undefined {
    return this.#lastError;
  }

  describe(): string {
    return `johnny-five (${this.#io.name ?? "Firmata"} board)`;
  }

  override async start(): Promise<void> {
    if (this.#board) return;
    // Loaded on first use: it is large, and only kiosks with a board need it.
    const five = require("johnny-five") as FiveModule;
    // repl/debug off: no console noise. sigint off: johnny-five would otherwise exit the process on Ctrl-C.
    const board = new five.Board({ io: this.#io, repl: false, debug: false, sigint: false });
    this.#board = board;
    // johnny-five re-emits io errors on the board, and an "error" nobody listens to throws.
    board.on("error", (err: unknown) => this.#lost(err));
    for (const event of ["close", "disconnect", "error"]) {
      const fn = (arg?: unknown) => this.#lost(arg ?? event);
      this.#io.on(event, fn);
      this.#ioListeners.push([event, fn]);
    }
    if (!board.isReady) {
      await new Promise<void>((resolve, reject) => {
        const timer = this.#timers.setTimeout(() => {
          board.removeListener("ready", onReady);
          reject(new Error(`johnny-five board did not report ready within ${this.#readyTimeoutMs} ms`));
        }, this.#readyTimeoutMs);
        const onReady = () => {
          this.#timers.clearTimeout(timer);
          resolve();
        };
        board.once("ready", onReady);
      }).catch((err: unknown) => {
        this.#lost(err);
        throw err;
      });
    }
    this.#state = "ok";
  }

  override async stop(): Promise<void> {
    this.releaseAll();
    for (const [event, fn] of this.#ioListeners.splice(0)) this.#io.removeListener(event, fn);
    // The board object is dropped; the io (and its port) belongs to whoever passed it in.
    this.#board = undefined;
    this.#state = "disconnected";
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
    // Writing first sets the port latch (StandardFirmata turns a 1 on an input into the pull-up),
    // so the pin comes up at `initial` when it becomes an output; then write again as an output.
    this.#io.digitalWrite(pin, initial);
    this.#io.pinMode(pin, this.#io.MODES.OUTPUT);
    this.#io.digitalWrite(pin, initial);
    return {
      write: (level) => {
        if (this.#state !== "ok") throw new Error(`johnny-five board is disconnected: ${this.#lastError ?? ""}`);
        this.#io.digitalWrite(pin, level);
      },
      // Firmata only reports an output's level when queried, so there is no synchronous read-back.
      release: () => {},
    };
  }

  async input(pin: number, edge: Edge, options: InputOptions = {}): Promise<InputLine> {
    const { INPUT } = this.#io.MODES;
    const PULLUP = this.#io.MODES.PULLUP ?? FIRMATA_PIN_MODE_PULLUP;
    this.#check(pin, INPUT, "a digital input");
    const pullUp = options.pull === "up" && this.#supports(pin, PULLUP);
    this.#io.pinMode(pin, pullUp ? PULLUP : INPUT);
    // Until the board's first report, assume the idle level the pull gives.
    const input = new EdgeWatch(edge, options.pull === "up" ? 1 : 0);
    // The IO-plugin spec (rwaldron/io-plugins, digitalRead) has every plugin emit
    // `digital-read-${pin}` on each change; listening to that event (instead of the
    // handler) is what can be removed again. firmata.js adds the handler as a listener
    // of the same event, so removing `ignore` too leaves nothing behind.
    const event = `digital-read-${pin}`;
    const ignore = () => {};
    const onRead = (value: unknown) => input.see(value ? 1 : 0);
    this.#io.on(event, onRead);
    this.#io.digitalRead(pin, ignore);
    return {
      read: () => input.level,
      watch: (cb) => input.watch(cb),
      release: this.hold(() => {
        input.unwatch();
        this.#io.removeListener(event, onRead);
        this.#io.removeListener(event, ignore);
      }),
    };
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

  #lost(reason: unknown): void {
    this.#state = "disconnected";
    this.#lastError = reason instanceof Error ? reason.message : String(reason);
  }
}
