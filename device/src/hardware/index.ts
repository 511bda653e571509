/** The kiosk's hardware drivers and the simulated peers that speak their bytes (for tests, the site runner and benches). */

export * from "./gpio/index.ts";
export { Pn532Reader, type Pn532ReaderOptions } from "./pn532/pn532-reader.ts";
export { Pn532Simulator } from "./pn532/simulator.ts";
export { ReceiptPrinter } from "./printer/printer.ts";
export { type PrintedLine, type PrintedReceipt, PrinterSimulator } from "./printer/simulator.ts";
export { openPtyPair, type PtyPair } from "./serial/pty-pair.ts";
export { openSerialPort, type SerialLink } from "./serial/serial-link.ts";
export * from "./terminal/index.ts";
