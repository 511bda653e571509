/**
 * A small ESC/POS command builder, byte-exact to Epson's "ESC/POS Command
 * Reference" (TM series). Only the commands the kiosk needs: each function
 * names the command it emits, so a byte in a capture can be traced back here.
 *
 * Text is encoded to a single-byte code page (PC437 or WPC1252); anything the
 * page cannot show becomes '?', and control characters never reach the wire as
 * text, so a member name can not smuggle in a command.
 */

export const LF = 0x0a;
export const ESC = 0x1b;
export const GS = 0x1d;
export const DLE = 0x10;
export const FS = 0x1c;
export const EOT = 0x04;

export type Align = "left" | "center" | "right";
export type CodePage = "pc437" | "wpc1252";
export type PaperStatus = "ok" | "near-end" | "out";
export type QrErrorCorrection = "L" | "M" | "Q" | "H";

/** ESC t n: the table number for each code page (Epson "Character code tables" page). */
export const CODE_PAGE_NUMBER: Readonly<Record<CodePage, number>> = { pc437: 0, wpc1252: 16 };

/** Largest QR payload GS ( k fn 180 accepts: (pL + pH*256) <= 7092, less cn fn m. */
export const QR_MAX_DATA = 7089;

const ALIGN_N: Readonly<Record<Align, number>> = { left: 0, center: 1, right: 2 };
const EC_N: Readonly<Record<QrErrorCorrection, number>> = { L: 48, M: 49, Q: 50, H: 51 };

function byteParam(name: string, n: number, min: number, max: number): number {
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new RangeError(`${name} must be an integer from ${min} to ${max}, got ${String(n)}`);
  }
  return n;
}

/** ESC @ — Initialize printer: clears the print buffer, resets modes. */
export function initialize(): Uint8Array {
  return Uint8Array.of(ESC, 0x40);
}

/** ESC t n — Select character code table (0 = PC437, 16 = WPC1252). */
export function selectCodePage(page: CodePage): Uint8Array {
  return Uint8Array.of(ESC, 0x74, CODE_PAGE_NUMBER[page]);
}

/** ESC a n — Select justification (0 left, 1 centred, 2 right). */
export function align(a: Align): Uint8Array {
  return Uint8Array.of(ESC, 0x61, ALIGN_N[a]);
}

/** ESC E n — Turn emphasized mode on/off (only the LSB of n counts). */
export function emphasis(on: boolean): Uint8Array {
  return Uint8Array.of(ESC, 0x45, on ? 1 : 0);
}

/** GS ! n — Select character size: bits 0-2 height, bits 4-6 width (0 = x1, 1 = x2). */
export function characterSize(size: { doubleWidth?: boolean; doubleHeight?: boolean }): Uint8Array {
  return Uint8Array.of(GS, 0x21, (size.doubleWidth ? 0x10 : 0) | (size.doubleHeight ? 0x01 : 0));
}

/** ESC d n — Print and feed n lines. */
export function feedLines(n: number): Uint8Array {
  return Uint8Array.of(ESC, 0x64, byteParam("feed lines", n, 0, 255));
}

/**
 * GS V — Select cut mode and cut paper. Without `feed`: function A (m = 0 full,
 * 1 partial, cut at the current position). With `feed`: function B (m = 65 full,
 * 66 partial), feeding to the cutting position plus `feed` motion units first,
 * so the last printed line is not left under the cutter.
 */
export function cut(opts: { partial?: boolean; feed?: number } = {}): Uint8Array {
  const partial = opts.partial ?? true;
  if (opts.feed === undefined) return Uint8Array.of(GS, 0x56, partial ? 1 : 0);
  return Uint8Array.of(GS, 0x56, partial ? 66 : 65, byteParam("cut feed", opts.feed, 0, 255));
}

/** GS ( k <Function 165> — QR Code: select the model (49 model 1, 50 model 2, 51 micro). */
export function qrModel(model: 1 | 2 = 2): Uint8Array {
  return Uint8Array.of(GS, 0x28, 0x6b, 4, 0, 49, 65, model === 1 ? 49 : 50, 0);
}

/** GS ( k <Function 167> — QR Code: set the size of the module to n dots (1-16). */
export function qrModuleSize(dots: number): Uint8Array {
  return Uint8Array.of(GS, 0x28, 0x6b, 3, 0, 49, 67, byteParam("QR module size", dots, 1, 16));
}

/** GS ( k <Function 169> — QR Code: select the error correction level (48 L .. 51 H). */
export function qrErrorCorrection(level: QrErrorCorrection): Uint8Array {
  return Uint8Array.of(GS, 0x28, 0x6b, 3, 0, 49, 69, EC_N[level]);
}

/**
 * GS ( k <Function 180> — QR Code: store the data in the symbol storage area.
 * (pL + pH*256) counts cn, fn, m and the data: k + 3.
 */
export function qrStore(data: Uint8Array): Uint8Array {
  if (data.length < 1 || data.length > QR_MAX_DATA) {
    throw new RangeError(`QR data must be 1 to ${QR_MAX_DATA} bytes, got ${data.length}`);
  }
  const len = data.length + 3;
  const out = new Uint8Array(8 + data.length);
  out.set([GS, 0x28, 0x6b, len & 0xff, len >> 8, 49, 80, 48]);
  out.set(data, 8);
  return out;
}

/** GS ( k <Function 181> — QR Code: print the symbol data in the symbol storage area. */
export function qrPrint(): Uint8Array {
  return Uint8Array.of(GS, 0x28, 0x6b, 3, 0, 49, 81, 48);
}

/**
 * DLE EOT 4 — Transmit real-time status, roll paper sensor status. Real-time:
 * the printer answers even while offline for paper end, unlike GS r.
 */
export function requestPaperStatus(): Uint8Array {
  return Uint8Array.of(DLE, EOT, 4);
}

/** GS r 1 — Transmit status, paper sensor status. Not answered while offline for paper end. */
export function requestPaperSensorStatus(): Uint8Array {
  return Uint8Array.of(GS, 0x72, 1);
}

/**
 * Decodes the DLE EOT 4 answer: bit 1 and 4 fixed on, 0 and 7 fixed off;
 * bits 2-3 near-end (0x0C), bits 5-6 paper end (0x60). Returns undefined for a
 * byte whose fixed bits are wrong (not a DLE EOT status byte).
 */
export function decodeRealtimePaperStatus(byte: number): PaperStatus | undefined {
  if ((byte & 0x93) !== 0x12) return undefined;
  if (byte & 0x60) return "out";
  if (byte & 0x0c) return "near-end";
  return "ok";
}

/**
 * Decodes the GS r 1 answer: bits 0-1 near-end (0x03), bits 2-3 paper end
 * (0x0C), bits 4 and 7 fixed off. Undefined for a byte that cannot be one.
 */
export function decodeSensorPaperStatus(byte: number): PaperStatus | undefined {
  if ((byte & 0x90) !== 0) return undefined;
  if (byte & 0x0c) return "out";
  if (byte & 0x03) return "near-end";
  return "ok";
}

/** The DLE EOT 4 byte a printer sends for `paper` (the inverse of decodeRealtimePaperStatus). */
export function realtimePaperStatusByte(paper: PaperStatus): number {
  // A roll that has run out also reads "near end" on the near-end sensor.
  return 0x12 | (paper === "ok" ? 0 : 0x0c) | (paper === "out" ? 0x60 : 0);
}

/** The GS r 1 byte a printer sends for `paper`. */
export function sensorPaperStatusByte(paper: PaperStatus): number {
  return (paper === "ok" ? 0 : 0x03) | (paper === "out" ? 0x0c : 0);
}

// --- code pages -------------------------------------------------------------

/** Upper halves (0x80-0xFF). '\0' marks an unassigned slot. */
const UPPER: Readonly<Record<CodePage, string>> = {
  pc437:
    "ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐" +
    "└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u00a0",
  wpc1252:
    "€\0‚ƒ„…†‡ˆ‰Š‹Œ\0Ž\0\0‘’“”•–—˜™š›œ\0žŸ" +
    Array.from({ length: 0x60 }, (_, i) => String.fromCharCode(0xa0 + i)).join(""),
};

const encoders = new Map<CodePage, Map<string, number>>();
function encoderFor(page: CodePage): Map<string, number> {
  let m = encoders.get(page);
  if (!m) {
    m = new Map();
    const upper = UPPER[page];
    for (let i = 0; i < 0x80; i++) if (upper[i] !== "\0") m.set(upper[i] as string, 0x80 + i);
    encoders.set(page, m);
  }
  return m;
}

/**
 * Text as the receipt will show it: NFC, control characters and line breaks
 * become spaces, characters the code page lacks become '?'. One char = one column.
 */
export function printable(text: string, page: CodePage = "wpc1252"): string {
  const enc = encoderFor(page);
  let out = "";
  for (const ch of text.normalize("NFC")) {
    const c = ch.codePointAt(0) ?? 0;
    if (c < 0x20 || c === 0x7f || (c >= 0x80 && c < 0xa0 && !enc.has(ch))) out += " ";
    else if (c < 0x7f || enc.has(ch)) out += ch;
    else out += "?";
  }
  return out;
}

/** Encodes text to the code page; see printable() for what is replaced. */
export function encodeText(text: string, page: CodePage = "wpc1252"): Uint8Array {
  const enc = encoderFor(page);
  const clean = printable(text, page);
  const out = new Uint8Array(clean.length);
  let i = 0;
  for (const ch of clean) out[i++] = ch.charCodeAt(0) < 0x80 ? ch.charCodeAt(0) : (enc.get(ch) ?? 0x3f);
  return out.subarray(0, i);
}

/** The character a printer shows for `byte` (>= 0x20) under `page`; '?' for an unassigned slot. */
export function decodeByte(byte: number, page: CodePage): string {
  if (byte < 0x80) return String.fromCharCode(byte);
  const ch = UPPER[page][byte - 0x80];
  return ch === undefined || ch === "\0" ? "?" : ch;
}

/** Chains commands into one buffer. */
export class EscPosBuilder {
  readonly #parts: Uint8Array[] = [];
  #length = 0;
  readonly codePage: CodePage;

  constructor(codePage: CodePage = "wpc1252") {
    this.codePage = codePage;
  }

  raw(bytes: Uint8Array): this {
    this.#parts.push(bytes);
    this.#length += bytes.length;
    return this;
  }

  /** ESC @ then ESC t for this builder's code page. */
  initialize(): this {
    return this.raw(initialize()).raw(selectCodePage(this.codePage));
  }

  align(a: Align): this {
    return this.raw(align(a));
  }

  emphasis(on: boolean): this {
    return this.raw(emphasis(on));
  }

  size(size: { doubleWidth?: boolean; doubleHeight?: boolean }): this {
    return this.raw(characterSize(size));
  }

  /** Text without a line break. */
  text(text: string): this {
    return this.raw(encodeText(text, this.codePage));
  }

  /** Text then LF (print and line feed). */
  line(text = ""): this {
    return this.text(text).raw(Uint8Array.of(LF));
  }

  feed(lines: number): this {
    return this.raw(feedLines(lines));
  }

  /** A QR symbol: model 2, module size, error correction, store, print. */
  qr(data: string, opts: { moduleSize?: number; errorCorrection?: QrErrorCorrection } = {}): this {
    return this.raw(qrModel(2))
      .raw(qrModuleSize(opts.moduleSize ?? 6))
      .raw(qrErrorCorrection(opts.errorCorrection ?? "M"))
      .raw(qrStore(encodeText(data, this.codePage)))
      .raw(qrPrint());
  }

  cut(opts?: { partial?: boolean; feed?: number }): this {
    return this.raw(cut(opts));
  }

  bytes(): Uint8Array {
    const out = new Uint8Array(this.#length);
    let at = 0;
    for (const p of this.#parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}
