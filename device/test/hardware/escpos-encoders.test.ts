/**
 * The printer simulator fed by ESC/POS encoders this project did not write:
 * @point-of-sale/receipt-printer-encoder (v4, ESM) for an Epson TM-T88VI, and
 * node-thermal-printer (its buffer, no device) for a 48-column Epson. What the
 * simulator decodes — text, styled runs, barcode, QR and image contents — is
 * checked for equality, so a leaked parameter byte, a lost style or a wrong
 * code page shows up as a difference (issue 17: a stray "." for FS ., barcode
 * and raster data printed as text, a line styled from its first character).
 */
import { createRequire } from "node:module";
import ReceiptPrinterEncoder from "@point-of-sale/receipt-printer-encoder";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import {
  type PrintedItem,
  type PrintedLine,
  type PrintedReceipt,
  PrinterSimulator,
  type StyledRun,
} from "../../src/hardware/printer/simulator.ts";

const require = createRequire(import.meta.url);
const { ThermalPrinter, PrinterTypes, CharacterSet } =
  require("node-thermal-printer") as typeof import("node-thermal-printer");

const test = suite("escpos-encoders");

/** Pixels as RGBA: black where `dark(x, y)`. */
function rgba(width: number, height: number, dark: (x: number, y: number) => boolean): Uint8ClampedArray {
  const data = new Uint8ClampedArray(width * height * 4);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const v = dark(x, y) ? 0 : 255;
      data.set([v, v, v, 255], (y * width + x) * 4);
    }
  return data;
}

/** The 1-bit rows a printer receives for `dark`, ceil(width / 8) bytes a row, MSB leftmost. */
function rows(width: number, height: number, dark: (x: number, y: number) => boolean): Uint8Array {
  const stride = Math.ceil(width / 8);
  const out = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const i = y * stride + (x >> 3);
      if (dark(x, y)) out[i] = (out[i] ?? 0) | (0x80 >> (x & 7));
    }
  return out;
}

/** An L: a bar down the left, a bar across the top. */
const ell = (x: number, y: number) => x < 8 || y < 4;

function decode(bytes: Uint8Array, columns: number): { receipt: PrintedReceipt; sim: PrinterSimulator } {
  const sim = new PrinterSimulator({ columns });
  sim.write(bytes);
  assert.is(sim.receipts.length, 1, "one cut, one receipt");
  return { receipt: sim.receipts[0] as PrintedReceipt, sim };
}

/** Lines as [justification, runs]: the text and how every character of it looks. */
const looks = (lines: PrintedLine[]) => lines.map((l): [string, StyledRun[]] => [l.align, l.runs]);
const notText = (items: PrintedItem[]) => items.filter((i) => i.type !== "text");
const blank: [string, StyledRun[]] = ["left", []];

test("receipt-printer-encoder (TM-T88VI): runs, CP858 text, barcodes, QR and both image modes come out exactly", () => {
  const encoder = new ReceiptPrinterEncoder({ language: "esc-pos", printerModel: "epson-tm-t88vi" });
  const bytes = encoder
    .initialize()
    .codepage("cp858")
    .line("Zoë Müller · Straße 5 · €")
    .bold(true)
    .text("Total")
    .bold(false)
    .text(" EUR 12.50 ")
    .underline(true)
    .text("paid")
    .underline(false)
    .newline()
    .align("center")
    .size(2, 2)
    .line("PAYLANE")
    .size(1, 1)
    .align("left")
    .invert(true)
    .text(" VOID ")
    .invert(false)
    .newline()
    .font("B")
    .line("small print")
    .font("A")
    .barcode("TX-2024-0042", "code128", 60)
    .barcode("4006381333931", "ean13", 60)
    .qrcode("https://paylane.example/r/tx-0042")
    .image({ width: 24, height: 16, data: rgba(24, 16, ell) }, { width: 24, height: 16, mode: "raster" })
    .image({ width: 24, height: 24, data: rgba(24, 24, ell) }, { width: 24, height: 24, mode: "column" })
    .image(
      { width: 8, height: 296, data: rgba(8, 296, (x, y) => x === y % 8) },
      { width: 8, height: 296, mode: "raster" },
    )
    .cut()
    .encode();
  const { receipt, sim } = decode(bytes, 42);
  assert.is(sim.stats.skipped, 0, "every byte was a command or text the printer knows");

  const text = receipt.lines.filter((l) => l.text.length > 0);
  assert.equal(looks(text), [
    ["left", [{ text: "Zoë Müller · Straße 5 · €" }]],
    ["left", [{ text: "Total", bold: true }, { text: " EUR 12.50 " }, { text: "paid", underline: 1 }]],
    // The encoder centres by itself, with spaces: (42 - 7 * 2) / 2 = 14.
    ["left", [{ text: " ".repeat(14) }, { text: "PAYLANE", width: 2, height: 2 }]],
    ["left", [{ text: " VOID ", inverse: true }]],
    ["left", [{ text: "small print", font: "B" }]],
  ]);
  assert.equal(notText(receipt.items), [
    { type: "barcode", symbology: "CODE128", data: "TX-2024-0042" },
    { type: "barcode", symbology: "EAN13", data: "4006381333931" },
    { type: "qr", data: "https://paylane.example/r/tx-0042" },
    { type: "image", width: 24, height: 16, bits: rows(24, 16, ell) },
    { type: "image", width: 24, height: 24, bits: rows(24, 24, ell) },
    // 296 rows, taller than 255: the encoder sends two GS v 0 chunks, one picture comes out.
    { type: "image", width: 8, height: 296, bits: rows(8, 296, (x, y) => x === y % 8) },
  ]);
  assert.equal(receipt.qr, ["https://paylane.example/r/tx-0042"]);
  for (const l of receipt.lines)
    assert.not.match(l.text, /[^\x20-\x7e\u00a0-\u024f€·]/, `nothing leaked into "${l.text}"`);
});

test("node-thermal-printer (Epson, 48 columns): styles, table, barcodes, QR, raster image and a code page switch mid-line", () => {
  // No interface: the library only builds the buffer (its types want one, the code does not).
  const options = { type: PrinterTypes.EPSON, width: 48, characterSet: CharacterSet.PC858_EURO };
  const printer = new ThermalPrinter(options as ConstructorParameters<typeof ThermalPrinter>[0]);
  printer.alignCenter();
  printer.setTextDoubleHeight();
  printer.bold(true);
  printer.println("Riverside Pool");
  printer.bold(false);
  printer.setTextNormal();
  printer.alignLeft();
  printer.print("Member ");
  printer.underline(true);
  printer.print("Zoë Müller");
  printer.underline(false);
  printer.newLine();
  printer.leftRight("Sauna day pass", "€ 12.50");
  printer.invert(true);
  printer.print("PAID");
  printer.invert(false);
  // GS ! 0x12: Epson reads the high nibble as width (x2), the low one as height (x3).
  printer.setTextSize(1, 2);
  printer.println(" x3");
  printer.setTextNormal();
  printer.drawLine();
  printer.code128("pay_01HX3Z");
  printer.printBarcode("4006381333931", 67);
  printer.printQR("https://paylane.example/r/pay_01HX3Z");
  // RGBA through the library's own Epson raster encoder (printImage wants a PNG file).
  const epson = (
    printer as unknown as { printer: { printImageBuffer(w: number, h: number, d: Uint8ClampedArray): Buffer } }
  ).printer;
  printer.add(epson.printImageBuffer(24, 16, rgba(24, 16, ell)));
  // Not in PC858: the library switches to PC437 (ESC t 0) in the middle of the line by itself.
  printer.setCharacterSet("PC858_EURO");
  printer.println("Ø ≥ 18");
  printer.partialCut();
  const { receipt, sim } = decode(printer.getBuffer(), 48);
  assert.is(sim.stats.skipped, 0, "every byte was a command or text the printer knows");

  assert.equal(looks(receipt.lines.filter((l) => l.text.length > 0)), [
    ["center", [{ text: "Riverside Pool", bold: true, height: 2 }]],
    ["left", [{ text: "Member " }, { text: "Zoë Müller", underline: 1 }]],
    ["left", [{ text: `Sauna day pass${" ".repeat(48 - 14 - 7)}€ 12.50` }]],
    [
      "left",
      [
        { text: "PAID", inverse: true },
        { text: " x3", width: 2, height: 3 },
      ],
    ],
    ["left", [{ text: "-".repeat(48) }]],
    ["left", [{ text: "Ø ≥ 18" }]],
  ]);
  assert.equal(notText(receipt.items), [
    { type: "barcode", symbology: "CODE128", data: "pay_01HX3Z" },
    { type: "barcode", symbology: "EAN13", data: "4006381333931" },
    { type: "qr", data: "https://paylane.example/r/pay_01HX3Z" },
    { type: "image", width: 24, height: 16, bits: rows(24, 16, ell) },
  ]);
  // ESC d 4 twice before the cut: eight blank feeds end the receipt.
  assert.equal(looks(receipt.lines.slice(-8)), Array(8).fill(blank));
});

test.run();
