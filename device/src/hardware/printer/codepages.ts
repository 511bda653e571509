/**
 * The character code tables an Epson TM printer selects with ESC t n, turned
 * back into Unicode for the printer simulator. The numbers are Epson's
 * ("Character code tables" in the ESC/POS Command Reference); encoders such as
 * node-thermal-printer and receipt-printer-encoder switch between them mid-line.
 *
 * The DOS pages are spelled out here (no WHATWG name exists for them); the
 * ISO and Windows pages come from the platform's TextDecoder. A table we do
 * not know prints '?' for bytes 0x80-0xFF, as a printer without it would.
 */
import { decodeByte } from "./escpos.ts";

/** CP850 (Multilingual Latin 1), 0x80-0xFF. CP858 is the same with € at 0xD5. */
const CP850 =
  "ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜø£Ø×ƒáíóúñÑªº¿®¬½¼¡«»░▒▓│┤ÁÂÀ©╣║╗╝¢¥┐" +
  "└┴┬├─┼ãÃ╚╔╩╦╠═╬¤ðÐÊËÈıÍÎÏ┘┌█▄¦Ì▀ÓßÔÒõÕµþÞÚÛÙýÝ¯´\u00ad±‗¾¶§÷¸°¨·¹³²■\u00a0";
const CP858 = `${CP850.slice(0, 0x55)}€${CP850.slice(0x56)}`;

const fromDecoder = (label: string) => (): string => {
  const upper = new TextDecoder(label).decode(Uint8Array.from({ length: 0x80 }, (_, i) => 0x80 + i));
  // Unassigned slots decode to U+FFFD or a C1 control: the printer has no glyph there.
  return [...upper].map((ch) => (ch === "\ufffd" || (ch >= "\u0080" && ch < "\u00a0") ? "?" : ch)).join("");
};
const fromEscpos = (page: "pc437" | "wpc1252") => (): string =>
  Array.from({ length: 0x80 }, (_, i) => decodeByte(0x80 + i, page)).join("");

/** ESC t n → its upper half, built on first use. */
const TABLES: Readonly<Record<number, { name: string; upper: () => string }>> = {
  0: { name: "PC437", upper: fromEscpos("pc437") },
  2: { name: "PC850", upper: () => CP850 },
  15: { name: "ISO8859-7", upper: fromDecoder("iso-8859-7") },
  16: { name: "WPC1252", upper: fromEscpos("wpc1252") },
  17: { name: "PC866", upper: fromDecoder("ibm866") },
  19: { name: "PC858", upper: () => CP858 },
  39: { name: "ISO8859-2", upper: fromDecoder("iso-8859-2") },
  40: { name: "ISO8859-15", upper: fromDecoder("iso-8859-15") },
  45: { name: "WPC1250", upper: fromDecoder("windows-1250") },
  46: { name: "WPC1251", upper: fromDecoder("windows-1251") },
  47: { name: "WPC1253", upper: fromDecoder("windows-1253") },
  48: { name: "WPC1254", upper: fromDecoder("windows-1254") },
  49: { name: "WPC1255", upper: fromDecoder("windows-1255") },
  50: { name: "WPC1256", upper: fromDecoder("windows-1256") },
  51: { name: "WPC1257", upper: fromDecoder("windows-1257") },
  52: { name: "WPC1258", upper: fromDecoder("windows-1258") },
};

const built = new Map<number, string>();

/** Whether ESC t `table` selects a table we can show. */
export function knownCodeTable(table: number): boolean {
  return TABLES[table] !== undefined;
}

/** The character byte `b` (0x20-0xFF) prints as under ESC t `table`. */
export function charInTable(table: number, b: number): string {
  if (b < 0x80) return String.fromCharCode(b);
  let upper = built.get(table);
  if (upper === undefined) {
    upper = TABLES[table]?.upper() ?? "?".repeat(0x80);
    built.set(table, upper);
  }
  return upper[b - 0x80] ?? "?";
}
