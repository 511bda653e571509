/**
 * Opens the Firmata board of gpio.backend "johnny-five": firmata-io (the
 * Firmata protocol without a bundled transport) over our serialport, so
 * johnny-five never loads its own serialport@8 native binding.
 */
import { createRequire } from "node:module";
import { SerialPortStream } from "@serialport/stream";
import { hangUpAwareBinding } from "../serial/hangup-binding.ts";
import type { FirmataIo } from "./johnny-five.ts";

const require = createRequire(import.meta.url);

/** StandardFirmata's default baud rate. */
export const FIRMATA_BAUD = 57_600;

type FirmataClass = new (transport: SerialPortStream) => FirmataIo;

/**
 * The board's io. A port that cannot be opened (board unplugged, wrong path)
 * surfaces as the io's "error" event, which the johnny-five backend reports
 * as disconnected; it never crashes the daemon.
 */
export function openFirmata(path: string, baudRate = FIRMATA_BAUD): FirmataIo {
  // firmata-io ships CommonJS without types; `.Firmata` is the class, given an opened transport.
  const { Firmata } = require("firmata-io") as { Firmata: FirmataClass };
  const io = new Firmata(new SerialPortStream({ binding: hangUpAwareBinding, path, baudRate }));
  // firmata-io re-emits the port's errors on the io; one may come before the backend starts
  // listening, and an "error" with no listener would throw. The backend, once started, hears
  // the rest (and a board that never got ready times out as disconnected).
  io.on("error", () => {});
  return io;
}

/** Closes the serial port under an io given up on (a board unplugged), so its file descriptor is not leaked. */
export function closeFirmata(io: FirmataIo): void {
  const own = io as FirmataIo & { transport?: SerialPortStream; reportVersionTimeoutId?: NodeJS.Timeout };
  // firmata-io asks a board that never said its version again after 5 s; this one is given up.
  clearTimeout(own.reportVersionTimeoutId);
  if (own.transport?.isOpen) own.transport.close(() => {});
}
