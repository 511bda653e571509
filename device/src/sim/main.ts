/**
 * `paylane-sim`: the kiosk's simulated peripherals on their own, each on a
 * pseudo-terminal at `--link <path>`, so any tool can talk to them: libnfc's
 * nfc-list to the PN532, an ESC/POS encoder to the printer, an ECR to the ZVT
 * terminal. Each prints what it receives in readable form until Ctrl-C.
 *
 * This file is the flags and help; each simulator is one module in this folder
 * (pn532.ts, printer.ts, terminal.ts) exporting `run`, loaded only when asked.
 */
import { resolve } from "node:path";
import { ConfigError, createCommand, oneLine } from "@paylane/protocol/service";
import { type Command, InvalidArgumentError } from "commander";

const NAME = "paylane-sim";

/** What every simulator module exports: runs until the signal aborts, printing to `out`. */
export interface SimModule<O> {
  run(options: O, signal: AbortSignal, out: (line: string) => void): Promise<void>;
}

export interface Pn532SimOptions {
  link: string;
  /** A card in the field from the start (hex UID, 4 or 7 bytes: the card models the simulator has). */
  card?: string;
}
export interface PrinterSimOptions {
  link: string;
  paper: "ok" | "low" | "out";
}
export interface PcscCardSimOptions {
  /** vpcd's socket, host:port (Debian's vsmartcard-vpcd: 127.0.0.1:35963). */
  vpcd: string;
  card: string;
}
export interface TerminalSimOptions {
  link: string;
  /** The 6-digit ECR password Registration must carry. */
  password: string;
}

const program = createCommand({
  name: NAME,
  packageJson: new URL("../../package.json", import.meta.url),
  description:
    "Runs one of the kiosk's simulated peripherals on a pseudo-terminal at --link <path> (created, removed on exit), " +
    "speaking the same bytes as the real part, and prints what it receives in readable form until Ctrl-C. " +
    "Needs socat (Debian package socat).",
  errorPrefix: `${NAME}:`,
  examples: [
    {
      command: `${NAME} pn532 --link /tmp/pn532 --card 04A1B2C3D4E5F6`,
      does: "a PN532 v1.6 with a 7-byte card in its field",
    },
    {
      command: "LIBNFC_DEFAULT_DEVICE=pn532_uart:/tmp/pn532 nfc-list",
      does: "then, in another terminal: libnfc finds the chip and lists the card",
    },
    { command: `${NAME} printer --link /tmp/printer --paper low`, does: "an ESC/POS receipt printer, paper low" },
    { command: `${NAME} terminal --link /tmp/zvt`, does: "a ZVT payment terminal on a serial line" },
  ],
});
program.showHelpAfterError(false);

const UID = /^(?:[0-9a-f]{8}|[0-9a-f]{14})$/i;
function parseUid(value: string): string {
  const hex = value.replace(/[:\s-]/g, "");
  if (!UID.test(hex)) {
    throw new InvalidArgumentError(
      `expected a card UID in hex, 4 bytes (MIFARE Classic 1K) or 7 (NTAG213), like 04A1B2C3D4E5F6, not "${value}"`,
    );
  }
  return hex.toUpperCase();
}
function parsePassword(value: string): string {
  if (/^\d{6}$/.test(value)) return value;
  throw new InvalidArgumentError("expected 6 digits, like 000000");
}
function parsePaper(value: string): PrinterSimOptions["paper"] {
  if (value === "ok" || value === "low" || value === "out") return value;
  throw new InvalidArgumentError(`expected ok, low or out, not "${value}"`);
}

function simulator<O>(name: string, summary: string): Command {
  return program
    .command(name)
    .description(summary)
    .helpOption("-h, --help", "print this help and exit")
    .option("-l, --link <path>", "where the pseudo-terminal appears (must not exist yet)")
    .action(async (options: O & { link?: string }) => {
      if (!options.link) throw new ConfigError(`${name}: missing --link <path>, where the simulator's port appears`);
      // Absolute, as the kiosk's config wants its device paths: what is printed can be pasted there.
      options.link = resolve(options.link);
      const module = (await import(`./${name}.ts`)) as SimModule<O>;
      const stop = new AbortController();
      for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => stop.abort());
      await module.run(options, stop.signal, (line) => process.stdout.write(`${line}\n`));
    });
}

simulator<Pn532SimOptions>(
  "pn532",
  "an NXP PN532 NFC controller on HSU (UART), firmware 1.6, as libnfc's pn532_uart driver expects; " +
    "type `card <uid>` or `remove` to change the card in its field",
).option(
  "-c, --card <uid>",
  "a card in the field from the start: its UID in hex, 4 bytes (MIFARE Classic 1K) or 7 (NTAG213)",
  parseUid,
);
simulator<PrinterSimOptions>(
  "printer",
  "an ESC/POS thermal receipt printer (80 mm, 48 columns), with real-time status; " +
    "type `paper ok`, `paper low` or `paper out` to change the roll",
).option("-p, --paper <state>", "the paper sensor: ok, low or out", parsePaper, "ok");
simulator<TerminalSimOptions>(
  "terminal",
  "a ZVT payment terminal (ECR interface) on a serial line; type approve, decline or timeout to choose the next outcome",
).option("-p, --password <digits>", "the 6-digit ECR password Registration must carry", parsePassword, "000000");

program
  .command("pcsc-card")
  .description(
    "a contactless card on vsmartcard's virtual PC/SC reader (Debian: apt-get install pcscd vsmartcard-vpcd), so " +
      "pcsc_scan and the kiosk's pcsc reader can be tried without a USB reader; type `card <uid>`, `remove` or `insert`",
  )
  .helpOption("-h, --help", "print this help and exit")
  .option(
    "--vpcd <host:port>",
    "where vpcd listens (reader.conf.d/vpcd: 0x8C7B = 35963)",
    parseHostPort,
    "127.0.0.1:35963",
  )
  .option("-c, --card <uid>", "the card's UID in hex, 4 or 7 bytes", parseUid, "04A1B2C3D4E5F6")
  .action(async (options: PcscCardSimOptions) => {
    const module = (await import("./pcsc-card.ts")) as SimModule<PcscCardSimOptions>;
    const stop = new AbortController();
    for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => stop.abort());
    await module.run(options, stop.signal, (line) => process.stdout.write(`${line}\n`));
  });

function parseHostPort(value: string): string {
  const m = /^([\w.-]+):(\d{1,5})$/.exec(value);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65_535) {
    throw new InvalidArgumentError(`expected host:port, like 127.0.0.1:35963, not "${value}"`);
  }
  return value;
}

program.parseAsync().catch((err: Error) => {
  process.stderr.write(`${NAME}: ${oneLine(err)}\n`);
  process.exit(err instanceof ConfigError ? 2 : 1);
});
