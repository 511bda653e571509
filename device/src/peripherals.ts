/**
 * The kiosk's hardware as the daemon sees it: card reader, receipt printer
 * and GPIO roles, built from the validated config, each a lifecycle unit.
 *
 * Where the config asks for a simulator, the simulated peer runs here, on
 * the far end of a pty pair, so the real drivers still speak every byte
 * through a real tty exactly as on a Pi. Without socat (a fresh laptop), the
 * PN532 simulator falls back to an in-memory link and says so.
 */
import type { Logger } from "pino";
import type { DeviceConfig, PrinterConfig, ReaderConfig } from "./config.ts";
import type { CardReader } from "./hardware/card-reader.ts";
import { createGpioBackend } from "./hardware/gpio/factory.ts";
import { closeFirmata, openFirmata } from "./hardware/gpio/firmata-port.ts";
import { type GpioHealth, GpioRoles, type SimulatedPanel } from "./hardware/gpio/gpio-roles.ts";
import type { FirmataIo } from "./hardware/gpio/johnny-five.ts";
import { SimulatedGpio } from "./hardware/gpio/simulated.ts";
import { PcscReader } from "./hardware/pcsc/pcsc-reader.ts";
import { DISCARD_REASONS } from "./hardware/pn532/frame.ts";
import { type CardHandler, type Pn532Counters, Pn532Reader, type ReaderState } from "./hardware/pn532/pn532-reader.ts";
import { Pn532Simulator } from "./hardware/pn532/simulator.ts";
import { DeviceFileTransport } from "./hardware/printer/device-file-transport.ts";
import { MemoryTransport } from "./hardware/printer/memory-transport.ts";
import { type PrinterHealth, ReceiptPrinter } from "./hardware/printer/printer.ts";
import { SerialTransport } from "./hardware/printer/serial-transport.ts";
import { PrinterSimulator } from "./hardware/printer/simulator.ts";
import type { PrinterTransport } from "./hardware/printer/transport.ts";
import { createLinkPair } from "./hardware/serial/link-pair.ts";
import { openPtyPair, type PtyPair } from "./hardware/serial/pty-pair.ts";
import { type OpenLink, openSerialPort, type SerialLink } from "./hardware/serial/serial-link.ts";
import type { Timers } from "./timers.ts";

export interface PeripheralHandlers {
  onCard: CardHandler;
  /** The call-staff button was pressed (debounced, once per press). */
  onCallStaff: () => void;
  /** Any peripheral's health changed (reader state, printer state or paper). */
  onChange: () => void;
  /** The printer's paper sensor changed (near-end, out, back to ok): ops hear it at once, not at the next telemetry tick. */
  onPaper: () => void;
}

export interface PeripheralsHealth {
  reader: {
    driver: "pn532" | "pcsc";
    simulated: boolean;
    state: ReaderState;
    /** "1.6" once the chip answered GetFirmwareVersion. */
    firmware?: string;
    /** pcsc: the PC/SC name of the reader in use, and why it is not "ok" (e.g. pcscd not running). */
    name?: string;
    reason?: string;
    /** pcsc: reads, reconnects and unreadable cards (as errorFrames); the PN532 wire counters stay 0. */
    counters: Pn532Counters;
  };
  printer: (PrinterHealth & { type: PrinterConfig["type"] }) | null;
  gpio: GpioHealth | null;
}

export interface SelfTestReport {
  ok: boolean;
  peripherals: Record<string, { ok: boolean; detail: string }>;
}

export interface PeripheralsOptions {
  config: DeviceConfig;
  logger: Logger;
  timers: Timers;
  now: () => Date;
  /** The Firmata io for gpio.backend "johnny-five" (opened by the caller; tests pass mock-firmata). */
  firmataIo?: FirmataIo;
}

export class Peripherals {
  readonly #o: PeripheralsOptions;
  readonly #log: Logger;
  #reader: (CardReader & (Pn532Reader | PcscReader)) | undefined;
  #readerSim: Pn532Simulator | undefined;
  #pty: PtyPair | undefined;
  #simLink: SerialLink | undefined;
  #printer: ReceiptPrinter | undefined;
  #printerSim: PrinterSimulator | undefined;
  #gpio: GpioRoles | undefined;
  #panel: SimulatedPanel | undefined;

  constructor(o: PeripheralsOptions) {
    this.#o = o;
    this.#log = o.logger.child({ component: "peripherals" });
  }

  /** The reader's state; "disconnected" before start and after stop. */
  get readerState(): ReaderState {
    return this.#reader?.state ?? "disconnected";
  }

  get printer(): ReceiptPrinter | undefined {
    return this.#printer;
  }

  get gpio(): GpioRoles | undefined {
    return this.#gpio;
  }

  /** The peers the daemon hosts itself, for the local API's simulator controls and tests. */
  get simulators(): { reader?: Pn532Simulator; printer?: PrinterSimulator; gpio?: SimulatedPanel } {
    return { reader: this.#readerSim, printer: this.#printerSim, gpio: this.#panel };
  }

  /**
   * GPIO first, so the relay is driven de-energised before anything else
   * happens; then the printer; the reader last, since a card may trigger
   * the moment it starts.
   */
  async start(h: PeripheralHandlers): Promise<void> {
    const { config, logger, timers, now } = this.#o;
    if (config.gpio) {
      const j5 = config.gpio.backend === "johnny-five" ? config.gpio.johnnyFive : undefined;
      // The daemon's own port is reopened after an unplug; an io a test passes in is used as is.
      const openIo = j5 && !this.#o.firmataIo ? () => openFirmata(j5.path) : undefined;
      const backend = await createGpioBackend(config.gpio, {
        timers,
        logger,
        now,
        io: this.#o.firmataIo,
        openIo,
        closeIo: openIo && closeFirmata,
      });
      this.#gpio = new GpioRoles({
        config: config.gpio,
        backend,
        timers,
        logger,
        now,
        onCallStaff: h.onCallStaff,
        onChange: () => h.onChange(),
      });
      await this.#gpio.start();
      if (backend instanceof SimulatedGpio) this.#panel = this.#gpio.panel();
    }
    if (config.printer.type !== "none") {
      const transport = this.#printerTransport(config.printer);
      this.#printer = new ReceiptPrinter({
        transport,
        logger,
        timers,
        render: { columns: config.printer.columns },
        onChange: () => h.onChange(),
        onPaperStatus: (paper, previous) => {
          this.#log.info({ paper, previous }, "printer paper status");
          h.onPaper();
        },
      });
      await this.#printer.start();
    }
    this.#reader =
      config.reader.type === "pcsc"
        ? new PcscReader({ logger, timers, reader: config.reader.reader, onStateChange: () => h.onChange() })
        : new Pn532Reader({
            openLink: await this.#readerLink(config.reader),
            logger,
            timers,
            pollIntervalMs: config.reader.pollIntervalMs,
            onStateChange: () => h.onChange(),
          });
    await this.#reader.start(h.onCard);
  }

  /** The reverse of start; the relay's stop de-energises it. */
  async stop(): Promise<void> {
    await this.#reader?.stop();
    this.#readerSim?.stop();
    // The simulator's port, then socat: the driver's own port is closed by now, so no read meets the hang-up.
    await this.#simLink?.close();
    await this.#pty?.close();
    await this.#printer?.stop();
    await this.#gpio?.stop();
    this.#reader =
      this.#readerSim =
      this.#simLink =
      this.#pty =
      this.#printer =
      this.#printerSim =
      this.#gpio =
      this.#panel =
        undefined;
  }

  health(): PeripheralsHealth {
    const reader = this.#reader;
    return {
      reader: {
        driver: this.#o.config.reader.type === "pcsc" ? "pcsc" : "pn532",
        simulated: this.#o.config.reader.type === "pn532-simulator",
        state: reader?.state ?? "disconnected",
        ...(reader ? readerDetails(reader) : { counters: emptyCounters() }),
      },
      printer: this.#printer ? { type: this.#o.config.printer.type, ...this.#printer.health } : null,
      gpio: this.#gpio?.health() ?? null,
    };
  }

  /**
   * Exercises each peripheral and says how each did (later a remote command).
   * The relay's level is checked but it is never pulsed: that would open the door.
   */
  async selfTest(): Promise<SelfTestReport> {
    const peripherals: SelfTestReport["peripherals"] = {};
    if (this.#reader) peripherals.reader = await this.#reader.selfTest();
    if (this.#printer) peripherals.printer = await this.#printer.selfTest();
    if (this.#gpio) {
      for (const [role, result] of Object.entries(await this.#gpio.selfTest())) {
        if (result) peripherals[`gpio.${role}`] = result;
      }
    }
    return { ok: Object.values(peripherals).every((p) => p.ok), peripherals };
  }

  async #readerLink(reader: Exclude<ReaderConfig, { type: "pcsc" }>): Promise<OpenLink> {
    if (reader.type === "pn532") {
      return () => openSerialPort(reader.path, { baudRate: reader.baudRate });
    }
    const sim = new Pn532Simulator({ logger: this.#log });
    this.#readerSim = sim;
    try {
      const pty = await openPtyPair();
      this.#pty = pty;
      const peer = await openSerialPort(pty.peerPath);
      this.#simLink = peer;
      sim.start(peer);
      this.#log.info({ device: pty.devicePath }, "PN532 simulator on a pty pair; the driver opens the device end");
      return () => openSerialPort(pty.devicePath);
    } catch (err) {
      // Same driver, same bytes, minus the tty: enough for a demo on a machine without socat.
      this.#log.warn({ err: (err as Error).message }, "no pty pair: PN532 simulator on an in-memory link instead");
      // The driver reopens its link after a failed init: each open is a fresh pair.
      return async () => {
        const pair = createLinkPair("pn532-simulator");
        sim.start(pair.device);
        return pair.host;
      };
    }
  }

  #printerTransport(printer: Exclude<PrinterConfig, { type: "none" }>): PrinterTransport {
    const { timers } = this.#o;
    switch (printer.type) {
      case "serial":
        return new SerialTransport({ path: printer.path, baudRate: printer.baudRate, timers });
      case "device-file":
        return new DeviceFileTransport({ path: printer.path, timers });
      case "simulator": {
        const transport = new MemoryTransport({ timers });
        this.#printerSim = new PrinterSimulator();
        this.#printerSim.attach(transport.peer);
        return transport;
      }
    }
  }
}

function readerDetails(
  reader: Pn532Reader | PcscReader,
): Pick<PeripheralsHealth["reader"], "firmware" | "name" | "reason" | "counters"> {
  if (reader instanceof Pn532Reader) {
    const fw = reader.firmware;
    return { ...(fw ? { firmware: `${fw.ver}.${fw.rev}` } : {}), counters: reader.counters };
  }
  const c = reader.counters;
  return {
    ...(reader.readerName ? { name: reader.readerName } : {}),
    ...(reader.state === "ok" ? {} : { reason: reader.reason }),
    counters: { ...emptyCounters(), reads: c.reads, reconnects: c.reconnects, errorFrames: c.readErrors },
  };
}

function emptyCounters(): Pn532Counters {
  const discarded = Object.fromEntries(DISCARD_REASONS.map((r) => [r, 0])) as Pn532Counters["discarded"];
  return { discarded, nacksSent: 0, timeouts: 0, errorFrames: 0, reinits: 0, reconnects: 0, reads: 0 };
}
