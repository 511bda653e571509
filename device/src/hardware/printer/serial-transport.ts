/** A printer on a serial port (RS-232 or a USB-serial adapter): the same serial link the card reader opens. */
import type { Timers } from "../../timers.ts";
import { openSerialPort } from "../serial/serial-link.ts";
import { LinkTransport } from "./link-transport.ts";
import { pathPresent } from "./transport.ts";

export interface SerialTransportOptions {
  path: string;
  /** Epson TM printers ship at 38400 or 19200 (DIP switches); must match the printer. */
  baudRate: number;
  timers: Timers;
}

export class SerialTransport extends LinkTransport {
  constructor({ path, baudRate, timers }: SerialTransportOptions) {
    if (!path) throw new RangeError("serial path must be a device path like /dev/ttyUSB0");
    if (!Number.isInteger(baudRate) || baudRate <= 0) {
      throw new RangeError(`serial baudRate must be a positive integer, got ${baudRate}`);
    }
    super({
      openLink: () => openSerialPort(path, { baudRate }),
      name: `serial port ${path}`,
      description: `serial ${path}@${baudRate}`,
      timers,
      present: () => pathPresent(path),
    });
  }
}
