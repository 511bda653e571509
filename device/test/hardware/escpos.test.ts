/**
 * Byte-exact ESC/POS vectors. Each expected sequence is the "Format / Hex" line
 * of the command's page in Epson's ESC/POS Command Reference (TM printers);
 * status bits from the "Transmit real-time status" (DLE EOT) and "Transmit
 * status" (GS r) pages.
 */
import { suite } from "uvu";
import * as assert from "uvu/assert";
import {
  align,
  CODE_PAGE_NUMBER,
  characterSize,
  cut,
  decodeByte,
  decodeRealtimePaperStatus,
  decodeSensorPaperStatus,
  EscPosBuilder,
  emphasis,
  encodeText,
  feedLines,
  initialize,
  printable,
  QR_MAX_DATA,
  qrErrorCorrection,
  qrModel,
  qrModuleSize,
  qrPrint,
  qrStore,
  realtimePaperStatusByte,
  requestPaperSensorStatus,
  requestPaperStatus,
  selectCodePage,
  sensorPaperStatusByte,
} from "../../src/hardware/printer/escpos.ts";

const test = suite("escpos");
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex").toUpperCase().match(/../g)?.join(" ") ?? "";

test("ESC @ — Initialize printer: 1B 40", () => {
  assert.is(hex(initialize()), "1B 40");
});

test("ESC t n — Select character code table: 1B 74 n, PC437 = 0, WPC1252 = 16", () => {
  assert.is(hex(selectCodePage("pc437")), "1B 74 00");
  assert.is(hex(selectCodePage("wpc1252")), "1B 74 10");
  assert.equal(CODE_PAGE_NUMBER, { pc437: 0, wpc1252: 16 });
});

test("ESC a n — Select justification: 1B 61 n (0 left, 1 centering, 2 right)", () => {
  assert.is(hex(align("left")), "1B 61 00");
  assert.is(hex(align("center")), "1B 61 01");
  assert.is(hex(align("right")), "1B 61 02");
});

test("ESC E n — Turn emphasized mode on/off: 1B 45 n", () => {
  assert.is(hex(emphasis(true)), "1B 45 01");
  assert.is(hex(emphasis(false)), "1B 45 00");
});

test("GS ! n — Select character size: 1D 21 n, width in bits 4-6, height in bits 0-2", () => {
  assert.is(hex(characterSize({})), "1D 21 00");
  assert.is(hex(characterSize({ doubleHeight: true })), "1D 21 01");
  assert.is(hex(characterSize({ doubleWidth: true })), "1D 21 10");
  assert.is(hex(characterSize({ doubleWidth: true, doubleHeight: true })), "1D 21 11");
});

test("ESC d n — Print and feed n lines: 1B 64 n", () => {
  assert.is(hex(feedLines(3)), "1B 64 03");
  assert.is(hex(feedLines(0)), "1B 64 00");
  assert.throws(() => feedLines(256), /feed lines must be an integer from 0 to 255, got 256/);
  assert.throws(() => feedLines(1.5), /feed lines/);
});

test("GS V — Select cut mode and cut paper: function A 1D 56 m, function B 1D 56 m n", () => {
  // <Function A> m = 0 full cut, 1 partial cut
  assert.is(hex(cut({ partial: false })), "1D 56 00");
  assert.is(hex(cut({ partial: true })), "1D 56 01");
  // <Function B> m = 65 feed to cutting position + n and full cut, 66 ... partial cut
  assert.is(hex(cut({ partial: false, feed: 0 })), "1D 56 41 00");
  assert.is(hex(cut({ partial: true, feed: 3 })), "1D 56 42 03");
  assert.throws(() => cut({ feed: -1 }), /cut feed/);
});

test("GS ( k <Function 165> QR Code: Select the model: 1D 28 6B 04 00 31 41 n1 00", () => {
  assert.is(hex(qrModel(2)), "1D 28 6B 04 00 31 41 32 00");
  assert.is(hex(qrModel(1)), "1D 28 6B 04 00 31 41 31 00");
});

test("GS ( k <Function 167> QR Code: Set the size of module: 1D 28 6B 03 00 31 43 n", () => {
  assert.is(hex(qrModuleSize(6)), "1D 28 6B 03 00 31 43 06");
  assert.throws(() => qrModuleSize(0), /QR module size must be an integer from 1 to 16, got 0/);
  assert.throws(() => qrModuleSize(17), /QR module size/);
});

test("GS ( k <Function 169> QR Code: Select the error correction level: 1D 28 6B 03 00 31 45 n (48-51)", () => {
  assert.is(hex(qrErrorCorrection("L")), "1D 28 6B 03 00 31 45 30");
  assert.is(hex(qrErrorCorrection("M")), "1D 28 6B 03 00 31 45 31");
  assert.is(hex(qrErrorCorrection("Q")), "1D 28 6B 03 00 31 45 32");
  assert.is(hex(qrErrorCorrection("H")), "1D 28 6B 03 00 31 45 33");
});

test("GS ( k <Function 180> QR Code: Store the data: 1D 28 6B pL pH 31 50 30 d1...dk, pL+pH*256 = k+3", () => {
  assert.is(hex(qrStore(encodeText("tx-42"))), "1D 28 6B 08 00 31 50 30 74 78 2D 34 32");
  // k = 300: 303 = 0x012F → pL 2F, pH 01
  const big = qrStore(new Uint8Array(300).fill(0x41));
  assert.is(hex(big.subarray(0, 8)), "1D 28 6B 2F 01 31 50 30");
  assert.is(big.length, 308);
  assert.is(qrStore(new Uint8Array(QR_MAX_DATA)).length, QR_MAX_DATA + 8);
  assert.throws(() => qrStore(new Uint8Array(0)), /QR data must be 1 to 7089 bytes, got 0/);
  assert.throws(() => qrStore(new Uint8Array(QR_MAX_DATA + 1)), /QR data must be 1 to 7089 bytes/);
});

test("GS ( k <Function 181> QR Code: Print the symbol data: 1D 28 6B 03 00 31 51 30", () => {
  assert.is(hex(qrPrint()), "1D 28 6B 03 00 31 51 30");
});

test("DLE EOT 4 — roll paper sensor status request: 10 04 04; GS r 1: 1D 72 01", () => {
  assert.is(hex(requestPaperStatus()), "10 04 04");
  assert.is(hex(requestPaperSensorStatus()), "1D 72 01");
});

test("DLE EOT 4 answer: bits 1,4 fixed on; 2-3 near-end (0x0C); 5-6 paper end (0x60)", () => {
  assert.is(decodeRealtimePaperStatus(0x12), "ok");
  assert.is(decodeRealtimePaperStatus(0x1e), "near-end");
  assert.is(decodeRealtimePaperStatus(0x72), "out");
  assert.is(decodeRealtimePaperStatus(0x7e), "out", "end sensor wins over near-end");
  // Bytes that break the fixed bits are not DLE EOT answers (e.g. a GS r byte or noise).
  assert.is(decodeRealtimePaperStatus(0x00), undefined);
  assert.is(decodeRealtimePaperStatus(0x13), undefined, "bit 0 fixed off");
  assert.is(decodeRealtimePaperStatus(0x92), undefined, "bit 7 fixed off");
  assert.is(decodeRealtimePaperStatus(0x02), undefined, "bit 4 fixed on");
  for (const p of ["ok", "near-end", "out"] as const)
    assert.is(decodeRealtimePaperStatus(realtimePaperStatusByte(p)), p);
});

test("GS r 1 answer: bits 0-1 near-end (0x03), bits 2-3 paper end (0x0C), bits 4 and 7 fixed off", () => {
  assert.is(decodeSensorPaperStatus(0x00), "ok");
  assert.is(decodeSensorPaperStatus(0x03), "near-end");
  assert.is(decodeSensorPaperStatus(0x0c), "out");
  assert.is(decodeSensorPaperStatus(0x0f), "out");
  assert.is(decodeSensorPaperStatus(0x12), undefined, "a DLE EOT byte (bit 4 on) is not a GS r answer");
  for (const p of ["ok", "near-end", "out"] as const) assert.is(decodeSensorPaperStatus(sensorPaperStatusByte(p)), p);
});

test("text encodes to WPC1252 / PC437 code points; unmappable becomes '?', controls become spaces", () => {
  // Code page 16 (WPC1252): € = 80, ä = E4, ß = DF. Code page 0 (PC437): ä = 84, ß = E1, € absent.
  assert.is(hex(encodeText("€ä ß")), "80 E4 20 DF");
  assert.is(hex(encodeText("€ä ß", "pc437")), "3F 84 20 E1");
  assert.is(hex(encodeText("日本🙂")), "3F 3F 3F");
  // An ESC hidden in a name must never reach the printer as a command.
  assert.is(hex(encodeText("a\x1b@b\n")), "61 20 40 62 20");
  assert.is(printable("e\u0301"), "é", "NFC first, so a decomposed é still prints");
  for (const ch of ["€", "Š", "œ", "Ÿ", "é", "ÿ"]) assert.is(decodeByte(encodeText(ch)[0] as number, "wpc1252"), ch);
  for (const ch of ["Ç", "ü", "ñ", "░", "ß", "µ"])
    assert.is(decodeByte(encodeText(ch, "pc437")[0] as number, "pc437"), ch);
});

test("the builder chains commands in order", () => {
  const b = new EscPosBuilder().initialize().align("center").emphasis(true).line("Hi").cut({ feed: 0 });
  assert.is(hex(b.bytes()), "1B 40 1B 74 10 1B 61 01 1B 45 01 48 69 0A 1D 56 42 00");
});

test.run();
