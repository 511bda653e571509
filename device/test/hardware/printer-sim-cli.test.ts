/**
 * `paylane-sim printer` as a process, on the pty it makes at --link: the
 * kiosk's own printer driver prints a receipt on it, and receipts from two
 * encoders we did not write (receipt-printer-encoder, node-thermal-printer)
 * are written raw; each comes out as the readable text a person checking a
 * printer set-up reads. The paper is changed on its stdin while it runs, and
 * the driver reads the change through DLE EOT. Waits are on output lines
 * (the wall-clock limit only ever fails the test).
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import ReceiptPrinterEncoder from "@point-of-sale/receipt-printer-encoder";
import { pino } from "pino";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { within } from "../../../test/support/within.ts";
import { ReceiptPrinter } from "../../src/hardware/printer/printer.ts";
import type { PaymentReceipt } from "../../src/hardware/printer/receipt.ts";
import { SerialTransport } from "../../src/hardware/printer/serial-transport.ts";
import { FakeTimers } from "../fake-timers.ts";

const require = createRequire(import.meta.url);
const { ThermalPrinter, PrinterTypes, CharacterSet } =
  require("node-thermal-printer") as typeof import("node-thermal-printer");

const test = suite("paylane-sim printer");
const BIN = fileURLToPath(new URL("../../bin/paylane-sim.mjs", import.meta.url));
const dir = await mkdtemp(join(tmpdir(), "paylane-sim-printer-"));
process.once("exit", () => rmSync(dir, { recursive: true, force: true }));

const payment: PaymentReceipt = {
  kind: "payment",
  venue: "Riverside Pool",
  kiosk: "k-03",
  at: new Date("2024-05-01T09:05:00Z"),
  timeZone: "Europe/Berlin",
  memberName: "Zoë Müller",
  transactionId: "pay_0002",
  cardUid: "04A1B2C3D4E5F6",
  item: "Sauna day pass",
  amount: { minor: 1250, currency: "EUR" },
  newBalance: { minor: 750, currency: "EUR" },
};

/** The simulator's stdout as lines, with waits for the next ones. */
class Console {
  readonly lines: string[] = [];
  #read = 0;
  #wake: (() => void) | undefined;

  constructor(child: ChildProcessWithoutNullStreams) {
    let partial = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (text: string) => {
      const parts = (partial + text).split("\n");
      partial = parts.pop() ?? "";
      this.lines.push(...parts);
      this.#wake?.();
    });
  }

  /** The lines after the last call, up to and including the first matching `end`. */
  async until(end: RegExp, what: string, ms = 5000): Promise<string[]> {
    const found = async (): Promise<string[]> => {
      for (;;) {
        const at = this.lines.findIndex((l, i) => i >= this.#read && end.test(l));
        if (at >= 0) {
          const got = this.lines.slice(this.#read, at + 1);
          this.#read = at + 1;
          return got;
        }
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
        });
      }
    };
    return within(found(), ms, `${what} (output so far: ${JSON.stringify(this.lines.slice(this.#read))})`);
  }
}

test("prints our driver's receipt and both encoders' receipts as readable text; paper changed on stdin reaches the driver", async () => {
  const link = join(dir, "printer");
  const child = spawn(process.execPath, [BIN, "printer", "--link", link, "--paper", "low"], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (c) => {
    stderr += c;
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  const out = new Console(child);
  const timers = new FakeTimers();
  const transport = new SerialTransport({ path: link, baudRate: 115_200, timers });
  const printer = new ReceiptPrinter({ transport, timers, logger: pino({ level: "silent" }) });
  try {
    // tsx compiles the CLI on first start: slow on a loaded machine.
    assert.equal(await out.until(/^ESC\/POS printer/, "the ready line", 30_000), [
      `ESC/POS printer (80 mm, 48 columns) on ${link}, paper low (near end); type \`paper ok\`, \`paper low\` or \`paper out\` to change the roll`,
    ]);

    await within(printer.start(), 5000, "the driver's start");
    assert.equal(printer.health, { state: "ok", paper: "near-end", lastError: undefined });
    assert.equal(await out.until(/^\? DLE EOT 4/, "the start's status query"), [
      "? DLE EOT 4 (paper sensor) → 0x1e (paper low (near end))",
    ]);

    assert.equal(await within(printer.print(payment), 5000, "the driver's print"), { printed: true });
    // Laid out for 42 columns by our renderer; centred by the printer (ESC a) on its 48.
    assert.equal(await out.until(/cut: receipt 1/, "our receipt"), [
      "? DLE EOT 4 (paper sensor) → 0x1e (paper low (near end))",
      "│                 <1x2>**Riverside Pool**</1x2>",
      "│                   Kiosk k-03",
      "│",
      "│                 <2x2>**PAYMENT**</2x2>",
      "│",
      "│Time                      2024-05-01 11:05",
      "│Member                          Zoë Müller",
      "│Card                        **********E5F6",
      "│Item                        Sauna day pass",
      "│------------------------------------------",
      "│**Amount                           EUR 12.50**",
      "│New balance                       EUR 7.50",
      "│",
      "│                  Transaction",
      "│                    pay_0002",
      '│[QR "pay_0002"]',
      "│",
      "│",
      "│",
      "│",
      "└── cut: receipt 1 ────────────────────────────",
    ]);

    const encoder = new ReceiptPrinterEncoder({ language: "esc-pos", printerModel: "epson-tm-t20iii" });
    await transport.write(
      encoder
        .initialize()
        .codepage("cp858")
        .align("center")
        .bold(true)
        .size(2, 2)
        .line("PAYLANE")
        .size(1, 1)
        .bold(false)
        .align("left")
        .table(
          [
            { width: 36, align: "left" },
            { width: 12, align: "right" },
          ],
          [
            ["Sauna day pass", "€ 12.50"],
            ["Towel", "€ 2.00"],
          ],
        )
        .underline(true)
        .line("Thank you, Zoë!")
        .underline(false)
        .barcode("PAY-0002", "code128", 60)
        .qrcode("https://paylane.example/r/pay_0002")
        .image({ width: 64, height: 16, data: new Uint8ClampedArray(64 * 16 * 4).fill(0) }, 64, 16, "threshold")
        .cut()
        .encode(),
    );
    // The status answer to the driver's query after printing comes first; the image is 24 rows: column mode rounds up.
    assert.equal(await out.until(/cut: receipt 2/, "receipt-printer-encoder's receipt"), [
      "? DLE EOT 4 (paper sensor) → 0x1e (paper low (near end))",
      "│                 <2x2>**PAYLANE**</2x2>",
      "│Sauna day pass                           € 12.50",
      "│Towel                                     € 2.00",
      "│__Thank you, Zoë!__",
      '│[barcode CODE128 "PAY-0002"]',
      "│",
      '│[QR "https://paylane.example/r/pay_0002"]',
      "│",
      "│[image 64×24]",
      "│",
      "│",
      "│",
      "│",
      "│",
      "└── cut: receipt 2 ────────────────────────────",
    ]);

    const ntp = new ThermalPrinter({
      type: PrinterTypes.EPSON,
      width: 48,
      characterSet: CharacterSet.PC858_EURO,
    } as ConstructorParameters<typeof ThermalPrinter>[0]);
    ntp.alignCenter();
    ntp.setTextQuadArea();
    ntp.println("PAYLANE");
    ntp.setTextNormal();
    ntp.alignLeft();
    ntp.leftRight("Sauna day pass", "€ 12.50");
    ntp.invert(true);
    ntp.print(" PAID ");
    ntp.invert(false);
    ntp.newLine();
    ntp.code128("PAY-0002");
    ntp.printQR("https://paylane.example/r/pay_0002");
    ntp.partialCut();
    await transport.write(ntp.getBuffer());
    // The first blank line is receipt-printer-encoder's LF after its cut.
    assert.equal(await out.until(/cut: receipt 3/, "node-thermal-printer's receipt"), [
      "│",
      "│                 <2x2>PAYLANE</2x2>",
      "│Sauna day pass                           € 12.50",
      "│<inverse> PAID </inverse>",
      '│[barcode CODE128 "PAY-0002"]',
      '│[QR "https://paylane.example/r/pay_0002"]',
      "│",
      "│",
      "│",
      "│",
      "│",
      "│",
      "│",
      "│",
      "└── cut: receipt 3 ────────────────────────────",
    ]);

    child.stdin.write("paper out\n");
    assert.equal(await out.until(/^ {2}paper/, "the paper change"), ["  paper out"]);
    assert.equal(await within(printer.print(payment), 5000, "a print without paper"), {
      printed: false,
      reason: "paper-out",
    });
    assert.equal(await out.until(/^\? DLE EOT 4/, "the print's status query"), [
      "? DLE EOT 4 (paper sensor) → 0x7e (paper out)",
    ]);
    assert.is(printer.health.paper, "out");
  } finally {
    await printer.stop();
    child.kill("SIGTERM");
    assert.is(await within(exited, 10_000, "the simulator's exit"), 0, stderr);
  }
  assert.equal(out.lines.at(-1), `stopped; ${link} is gone`);
  assert.is(existsSync(link), false, "the pty is removed on exit");
});

test.run();
