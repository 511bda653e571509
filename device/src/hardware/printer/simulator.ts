/**
 * The printer side of the wire: a streaming ESC/POS decoder that turns bytes
 * from any encoder back into what an Epson TM-T88 / TM-T20-class printer would
 * put on paper — text lines made of styled runs, barcodes and 2D symbols with
 * their contents, raster and bit images as images — one receipt per cut; and it
 * answers DLE EOT / GS r with the paper sensor bits. Tests assert on what a
 * customer would hold in their hand.
 *
 * Every command is consumed whole by its shape (escpos-commands.ts), so one the
 * simulator does not act on never leaks a parameter into the text.
 *
 * Robustness: any byte sequence is accepted. Unknown or malformed commands are
 * skipped and counted, never thrown; memory is bounded (kept payloads, images,
 * receipts and lines are all capped). A command claiming more data than any TM
 * printer accepts (MAX_COMMAND_DATA) is malformed: only its header is skipped.
 *
 * Modelled as an Epson TM printer does it (ESC/POS Command Reference):
 * - styles (emphasis, underline, size, reverse, font) apply per character;
 *   justification (ESC a) is the one in force at the line's first character;
 * - text longer than the line wraps onto the next one (`columns` at font A,
 *   12 dots a character, 9 for font B and C, times the width magnification);
 * - ESC @ discards an unprinted partial line; GS V, GS k, GS v 0 and 2D symbol
 *   prints are ignored unless at the start of a line (standard mode);
 * - ESC * stripes print with their line; consecutive stripes or raster chunks
 *   of the same width make up one image (encoders split tall images);
 * - while out of paper the printer is offline: nothing prints, GS r goes
 *   unanswered, only real-time DLE EOT is answered (data is dropped, not held).
 */

import { send } from "../serial/serial-link.ts";
import { charInTable } from "./codepages.ts";
import {
  type Align,
  DLE,
  ESC,
  FS,
  GS,
  LF,
  type PaperStatus,
  realtimePaperStatusByte,
  sensorPaperStatusByte,
} from "./escpos.ts";
import {
  BARCODE_SYSTEMS,
  DLE_COMMANDS,
  DLE_DC4_ARGS,
  ESC_COMMANDS,
  FS_COMMANDS,
  GS_COMMANDS,
  type Shape,
  SYMBOLS_2D,
} from "./escpos-commands.ts";
import type { PrinterEnd } from "./transport.ts";

/** A character style; only what differs from plain font A text is present. */
export interface TextStyle {
  bold?: true;
  /** Underline thickness in dots. */
  underline?: 1 | 2;
  /** Width magnification, 2-8. */
  width?: number;
  /** Height magnification, 2-8. */
  height?: number;
  /** White on black (GS B). */
  inverse?: true;
  /** "B", "C"...; font A is left out. */
  font?: string;
}

/** Consecutive characters printed in the same style. */
export interface StyledRun extends TextStyle {
  text: string;
}

export interface PrintedLine {
  text: string;
  align: Align;
  /** Every visible character is emphasised. */
  bold: boolean;
  /** Every visible character is at least double width. */
  doubleWidth: boolean;
  /** Every visible character is at least double height. */
  doubleHeight: boolean;
  runs: StyledRun[];
}

export interface PrintedBarcode {
  type: "barcode";
  /** "CODE128", "EAN13"... for GS k; "PDF417", "DATAMATRIX"... for GS ( k. */
  symbology: string;
  /** The encoded value (CODE128 code set switches removed, code C digits expanded). */
  data: string;
}

export interface PrintedQr {
  type: "qr";
  data: string;
}

export interface PrintedImage {
  type: "image";
  /** Dots. */
  width: number;
  height: number;
  /** Rows of ceil(width / 8) bytes, most significant bit leftmost; absent when too large to keep or stored in the printer. */
  bits?: Uint8Array;
  /** An image stored in the printer, printed by key ("NV 1", "NV graphics LG", "downloaded"). */
  ref?: string;
}

export type PrintedItem = { type: "text"; line: PrintedLine } | PrintedBarcode | PrintedQr | PrintedImage;

export interface PrintedReceipt {
  /** Everything printed, in order. */
  items: PrintedItem[];
  /** The text lines among the items. */
  lines: PrintedLine[];
  /** The QR contents among the items. */
  qr: string[];
  cut: boolean;
}

/** A status query answered (real-time or not), for a simulator's console. */
export interface StatusQuery {
  command: string;
  reply: number;
}

export interface SimulatorStats {
  /** Bytes consumed. */
  bytes: number;
  /** Commands understood and acted on. */
  commands: number;
  /** Bytes skipped: garbage, unknown commands, bad parameters, commands in the wrong place. */
  skipped: number;
  /** Print output dropped while out of paper, or over the line/receipt/image caps. */
  dropped: number;
  /** Status bytes sent back. */
  replies: number;
}

export interface PrinterSimulatorOptions {
  /** Characters per line in font A at normal width (42 on a TM-T88 80 mm, 48 on a TM-T20, 32 on 58 mm). */
  columns?: number;
  /** Completed receipts kept (oldest dropped). */
  maxReceipts?: number;
  /** Lines kept per receipt. */
  maxLines?: number;
}

/** The most data one command may claim: a GS v 0 raster of 255 bytes × 2303 rows, the largest a TM printer takes. */
export const MAX_COMMAND_DATA = 255 * 2303;
/** Largest GS ( k payload kept: (pL + pH*256) <= 7092 for QR store. */
const MAX_SYMBOL_PAYLOAD = 7092;
/** Image bits kept per image; larger images keep their size only. */
const MAX_IMAGE_BYTES = 64 * 1024;
const MAX_SYMBOLS_PER_RECEIPT = 32;
const MAX_IMAGES_PER_RECEIPT = 16;
const MAX_TAB_STOPS = 32;
const FONT_A_DOTS = 12;

const ALIGNS: readonly Align[] = ["left", "center", "right"];
const FONTS: Readonly<Record<number, string>> = {
  0: "A",
  1: "B",
  2: "C",
  3: "D",
  4: "E",
  48: "A",
  49: "B",
  50: "C",
  51: "D",
  52: "E",
  97: "special A",
  98: "special B",
};
const DEFAULT_TABS = Array.from({ length: MAX_TAB_STOPS }, (_, i) => (i + 1) * 8);
const utf8 = new TextDecoder("utf-8", { fatal: true });

interface Mode {
  emphasis: boolean;
  doubleStrike: boolean;
  underline: 0 | 1 | 2;
  width: number;
  height: number;
  inverse: boolean;
  font: string;
  align: Align;
}

const DEFAULT_MODE: Mode = {
  emphasis: false,
  doubleStrike: false,
  underline: 0,
  width: 1,
  height: 1,
  inverse: false,
  font: "A",
  align: "left",
};

interface Stripe {
  width: number;
  height: number;
  bits: Uint8Array | undefined;
}

type State =
  | { s: "ground" }
  | { s: "prefix"; prefix: number }
  | { s: "take"; need: number; got: number[]; done: (p: number[]) => void }
  | { s: "data"; left: number; buf: Uint8Array | undefined; at: number; done: (d: Uint8Array | undefined) => void }
  | { s: "nul"; max: number; got: number[]; done: (p: number[]) => void };

const GROUND: State = { s: "ground" };

function newReceipt(): PrintedReceipt {
  return { items: [], lines: [], qr: [], cut: false };
}

function styleOf(m: Mode): TextStyle {
  const s: TextStyle = {};
  if (m.emphasis || m.doubleStrike) s.bold = true;
  if (m.underline) s.underline = m.underline;
  if (m.width > 1) s.width = m.width;
  if (m.height > 1) s.height = m.height;
  if (m.inverse) s.inverse = true;
  if (m.font !== "A") s.font = m.font;
  return s;
}

const styleKey = (s: TextStyle) =>
  `${s.bold ?? 0}|${s.underline ?? 0}|${s.width ?? 1}|${s.height ?? 1}|${s.inverse ?? 0}|${s.font ?? "A"}`;

export class PrinterSimulator {
  readonly #columns: number;
  readonly #maxReceipts: number;
  readonly #maxLines: number;
  #paper: PaperStatus = "ok";
  #state: State = GROUND;
  /** Bytes of the command being parsed, for the skip count if it turns out malformed. */
  #cmdLen = 0;
  #mode: Mode = { ...DEFAULT_MODE };
  #table = 0;
  #tabs: number[] = DEFAULT_TABS;
  // The line being built.
  #runs: StyledRun[] = [];
  #runKey = "";
  #dots = 0;
  #lineAlign: Align | undefined;
  #stripes: Stripe[] = [];
  // Stored in the printer: 2D symbol data by cn, buffered graphics, NV and downloaded image sizes.
  #symbols = new Map<number, string>();
  #graphics: Stripe | undefined;
  #nv = new Map<number, { width: number; height: number }>();
  #downloaded: { width: number; height: number } | undefined;
  /** The image that the next chunk of the same kind and width continues. */
  #open: { image: PrintedImage; source: string } | undefined;
  #current: PrintedReceipt = newReceipt();
  #receipts: PrintedReceipt[] = [];
  #reply: number[] = [];
  readonly #listeners = new Set<(r: PrintedReceipt) => void>();
  readonly #statusListeners = new Set<(q: StatusQuery) => void>();
  readonly stats: SimulatorStats = { bytes: 0, commands: 0, skipped: 0, dropped: 0, replies: 0 };

  constructor(opts: PrinterSimulatorOptions = {}) {
    this.#columns = opts.columns ?? 42;
    this.#maxReceipts = opts.maxReceipts ?? 64;
    this.#maxLines = opts.maxLines ?? 1000;
    if (!Number.isInteger(this.#columns) || this.#columns < 2 || this.#columns > 255) {
      throw new RangeError(`columns must be an integer from 2 to 255, got ${this.#columns}`);
    }
  }

  /** Characters per line in font A at normal width. */
  get columns(): number {
    return this.#columns;
  }

  get paper(): PaperStatus {
    return this.#paper;
  }

  /** Loads, runs down or empties the roll. */
  setPaper(paper: PaperStatus): void {
    this.#paper = paper;
  }

  /** Receipts completed by a cut, oldest first. */
  get receipts(): readonly PrintedReceipt[] {
    return this.#receipts;
  }

  /** What has printed since the last cut (the partial line is not included). */
  get pending(): PrintedReceipt {
    return this.#current;
  }

  /** Returns and forgets the completed receipts. */
  takeReceipts(): PrintedReceipt[] {
    return this.#receipts.splice(0);
  }

  /** Calls `fn` on every cut; returns the unsubscribe. */
  onReceipt(fn: (r: PrintedReceipt) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Calls `fn` for every status query answered; returns the unsubscribe. */
  onStatus(fn: (q: StatusQuery) => void): () => void {
    this.#statusListeners.add(fn);
    return () => this.#statusListeners.delete(fn);
  }

  /** The next receipt to be cut. */
  nextReceipt(): Promise<PrintedReceipt> {
    return new Promise((resolve) => {
      const off = this.onReceipt((r) => {
        off();
        resolve(r);
      });
    });
  }

  /**
   * Listens on the printer's end of a link (the memory cable, a serial port on
   * a pty...): what comes in is decoded, status answers go back on it. Returns
   * the detach function.
   */
  attach(link: PrinterEnd): () => void {
    return link.onData((chunk) => {
      const reply = this.write(chunk);
      if (reply.length > 0) send(link, reply);
    });
  }

  /** Consumes bytes from the host; returns the status bytes the printer sends back. */
  write(bytes: Uint8Array): Uint8Array {
    for (let i = 0; i < bytes.length; ) {
      const st = this.#state;
      if (st.s === "data") {
        // Payloads are moved in bulk: a raster image is hundreds of kilobytes.
        const n = Math.min(st.left, bytes.length - i);
        if (st.buf) st.buf.set(bytes.subarray(i, i + n), st.at);
        st.at += n;
        st.left -= n;
        this.#cmdLen += n;
        i += n;
        if (st.left === 0) {
          this.#state = GROUND;
          st.done(st.buf);
        }
        continue;
      }
      this.#byte(bytes[i] as number);
      i++;
    }
    this.stats.bytes += bytes.length;
    const out = Uint8Array.from(this.#reply);
    this.#reply = [];
    return out;
  }

  // --- framing -------------------------------------------------------------

  #byte(b: number): void {
    const st = this.#state;
    switch (st.s) {
      case "ground":
        this.#ground(b);
        return;
      case "prefix":
        this.#cmdLen++;
        this.#afterPrefix(st.prefix, b);
        return;
      case "take":
        this.#cmdLen++;
        st.got.push(b);
        if (st.got.length === st.need) {
          this.#state = GROUND;
          st.done(st.got);
        }
        return;
      case "nul":
        if (b === 0) {
          this.#cmdLen++;
          this.#state = GROUND;
          st.done(st.got);
        } else if (st.got.length === st.max) {
          // No terminator where one must be: the command ends, the byte is data again.
          this.#state = GROUND;
          st.done(st.got);
          this.#byte(b);
        } else {
          this.#cmdLen++;
          st.got.push(b);
        }
        return;
      case "data":
        // write() moves payloads in bulk; this is only reached for a byte handed back by "nul".
        this.#cmdLen++;
        if (st.buf) st.buf[st.at] = b;
        st.at++;
        if (--st.left === 0) {
          this.#state = GROUND;
          st.done(st.buf);
        }
        return;
    }
  }

  /** Reads `n` parameter bytes, then calls `done` with them. */
  #take(n: number, done: (...p: number[]) => void): void {
    if (n === 0) done();
    else this.#state = { s: "take", need: n, got: [], done: (p) => done(...p) };
  }

  /** Reads bytes up to a NUL (at most `max` before it), then calls `done` with them. */
  #untilNul(max: number, done: (p: number[]) => void): void {
    this.#state = { s: "nul", max, got: [], done };
  }

  /** Reads `len` data bytes, kept only when `keep`, then calls `done`. */
  #data(len: number, keep: boolean, done: (d: Uint8Array | undefined) => void): void {
    const buf = keep ? new Uint8Array(len) : undefined;
    if (len === 0) done(buf);
    else this.#state = { s: "data", left: len, buf, at: 0, done };
  }

  #ok(): void {
    this.stats.commands++;
    this.#cmdLen = 0;
  }

  #bad(): void {
    this.stats.skipped += this.#cmdLen;
    this.#cmdLen = 0;
  }

  #ground(b: number): void {
    if (b === ESC || b === GS || b === DLE || b === FS) {
      this.#cmdLen = 1;
      this.#state = { s: "prefix", prefix: b };
    } else if (b === LF) {
      this.stats.commands++;
      this.#printLine(true);
    } else if (b === 0x0d) {
      // CR: ignored by TM printers unless auto line feed is strapped on.
    } else if (b === 0x09) {
      this.#tab();
    } else if (b < 0x20 || b === 0x7f) {
      this.stats.skipped++;
    } else {
      this.#char(charInTable(this.#table, b));
    }
  }

  #afterPrefix(prefix: number, b: number): void {
    const table =
      prefix === ESC ? ESC_COMMANDS : prefix === GS ? GS_COMMANDS : prefix === DLE ? DLE_COMMANDS : FS_COMMANDS;
    const shape: Shape | undefined = table[b];
    this.#state = GROUND;
    if (shape === undefined) {
      this.stats.skipped++;
      this.#cmdLen = 0;
      // A prefix byte may start the next real command; anything else went with the bad one.
      if (b === ESC || b === GS || b === DLE || b === FS) this.#ground(b);
      else this.stats.skipped++;
      return;
    }
    if (shape === "paren") {
      this.#take(3, (fn = 0, pL = 0, pH = 0) => this.#paren(prefix, fn, pL + pH * 256));
    } else if (shape === "special") {
      this.#special(prefix, b);
    } else {
      this.#take(shape, (...args) => (this.#command(prefix, b, args) ? this.#ok() : this.#bad()));
    }
  }

  /** `<prefix> ( fn pL pH` and its data; GS ( k and GS ( L are kept and acted on. */
  #paren(prefix: number, fn: number, len: number): void {
    if (len === 0) {
      this.#bad();
    } else if (prefix === GS && fn === 0x6b) {
      this.#data(len, len <= MAX_SYMBOL_PAYLOAD, (d) => (d && this.#symbol(d) ? this.#ok() : this.#bad()));
    } else if (prefix === GS && fn === 0x4c) {
      // Graphics beyond what an image keeps are still consumed; only their size is known then.
      this.#data(len, len <= MAX_IMAGE_BYTES + 16, (d) => (d && this.#graphicsFunction(d) ? this.#ok() : this.#bad()));
    } else {
      this.#data(len, false, () => this.#ok());
    }
  }

  /** Commands whose length depends on their parameters. */
  #special(prefix: number, cmd: number): void {
    switch ((prefix << 8) | cmd) {
      case (ESC << 8) | 0x2a: // ESC * m nL nH d1..dk
        this.#take(3, (m = 0, nL = 0, nH = 0) => {
          const n = nL + nH * 256;
          const rows = m === 0 || m === 1 ? 8 : m === 32 || m === 33 ? 24 : 0;
          if (rows === 0 || n < 1 || n > 2047) this.#bad();
          else
            this.#data((n * rows) / 8, true, (d = new Uint8Array(0)) => {
              this.#stripes.push({ width: n, height: rows, bits: columnsToRows(d, n, rows) });
              this.#ok();
            });
        });
        break;
      case (ESC << 8) | 0x44: // ESC D n1..nk NUL
        this.#untilNul(MAX_TAB_STOPS, (p) => {
          const stops: number[] = [];
          for (const n of p) if (n > (stops.at(-1) ?? 0)) stops.push(n);
          this.#tabs = stops;
          this.#ok();
        });
        break;
      case (ESC << 8) | 0x26: // ESC & y c1 c2, then x d1..d(y*x) for each character c1..c2
        this.#take(3, (y = 0, c1 = 0, c2 = 0) => {
          if (y < 1 || y > 3 || c1 < 32 || c2 > 126 || c1 > c2) this.#bad();
          else this.#userChars(y, c2 - c1 + 1);
        });
        break;
      case (GS << 8) | 0x2a: // GS * x y d1..d(x*y*8)
        this.#take(2, (x = 0, y = 0) => {
          if (x === 0 || y === 0) this.#bad();
          else
            this.#data(x * y * 8, false, () => {
              this.#downloaded = { width: x * 8, height: y * 8 };
              this.#ok();
            });
        });
        break;
      case (GS << 8) | 0x38: // GS 8 L / GS 8 k p1 p2 p3 p4: GS ( L / GS ( k with a 4-byte length
        this.#take(5, (fn = 0, p1 = 0, p2 = 0, p3 = 0, p4 = 0) => {
          const len = p1 + p2 * 0x100 + p3 * 0x10000 + p4 * 0x1000000;
          if ((fn !== 0x4c && fn !== 0x6b) || len < 2 || len > MAX_COMMAND_DATA) this.#bad();
          else this.#paren(GS, fn, len);
        });
        break;
      case (GS << 8) | 0x56: // GS V m [n]
        this.#take(1, (m = 0) => {
          if ([65, 66, 97, 98, 103, 104].includes(m)) this.#take(1, () => this.#cutCommand());
          else if ([0, 1, 48, 49].includes(m)) this.#cutCommand();
          else this.#bad();
        });
        break;
      case (GS << 8) | 0x6b: // GS k m ...
        this.#take(1, (m = 0) => this.#barcodeCommand(m));
        break;
      case (GS << 8) | 0x76: // GS v 0 m xL xH yL yH d1..dk
        this.#take(6, (zero = 0, m = 0, xL = 0, xH = 0, yL = 0, yH = 0) => {
          const xBytes = xL + xH * 256;
          const rows = yL + yH * 256;
          const len = xBytes * rows;
          if ((zero !== 48 && zero !== 0) || m % 48 > 3 || m > 51 || len < 1 || len > MAX_COMMAND_DATA) this.#bad();
          else
            this.#data(len, len <= MAX_IMAGE_BYTES, (d) => {
              if (this.#lineHasData()) this.#bad();
              else {
                this.#image("raster", xBytes * 8, rows, d);
                this.#ok();
              }
            });
        });
        break;
      case (DLE << 8) | 0x04: // DLE EOT n [a]
        this.#take(1, (n = 0) => {
          if (n === 7 || n === 8) this.#take(1, () => this.#ok());
          else if (this.#realtimeStatus(n)) this.#ok();
          else this.#bad();
        });
        break;
      case (DLE << 8) | 0x14: // DLE DC4 fn ...
        this.#take(1, (fn = 0) => {
          const need = DLE_DC4_ARGS[fn];
          if (need === undefined) this.#bad();
          else
            this.#take(need, () => {
              // fn 8: clear buffers — the unprinted line goes.
              if (fn === 8) this.#clearLine();
              this.#ok();
            });
        });
        break;
      case (FS << 8) | 0x32: // FS 2 c1 c2 d1..d72
        this.#take(2, () => this.#data(72, false, () => this.#ok()));
        break;
      case (FS << 8) | 0x67: // FS g 1 m a1-a4 nL nH d1..dk / FS g 2 m a1-a4 nL nH
        this.#take(1, (fn = 0) => {
          if (fn === 1) this.#take(7, (...p) => this.#data((p[5] ?? 0) + (p[6] ?? 0) * 256, false, () => this.#ok()));
          else if (fn === 2) this.#take(7, () => this.#ok());
          else this.#bad();
        });
        break;
      case (FS << 8) | 0x71: // FS q n [xL xH yL yH d1..dk]...
        this.#take(1, (n = 0) => {
          if (n === 0) this.#bad();
          else {
            this.#nv.clear();
            this.#nvImages(1, n);
          }
        });
        break;
      default:
        this.#bad();
    }
  }

  #userChars(y: number, left: number): void {
    if (left === 0) this.#ok();
    else
      this.#take(1, (x = 0) => {
        if (x > 12) this.#bad();
        else this.#data(y * x, false, () => this.#userChars(y, left - 1));
      });
  }

  #nvImages(i: number, n: number): void {
    if (i > n) this.#ok();
    else
      this.#take(4, (xL = 0, xH = 0, yL = 0, yH = 0) => {
        const x = xL + xH * 256;
        const y = yL + yH * 256;
        if (x < 1 || x > 1023 || y < 1 || y > 288) this.#bad();
        else
          this.#data(x * y * 8, false, () => {
            this.#nv.set(i, { width: x * 8, height: y * 8 });
            this.#nvImages(i + 1, n);
          });
      });
  }

  // --- commands --------------------------------------------------------------

  /** A fixed-length command; false when its parameters are out of range. */
  #command(prefix: number, cmd: number, args: number[]): boolean {
    const n = args[0] ?? 0;
    const m = this.#mode;
    if (prefix === ESC) {
      switch (cmd) {
        case 0x40: // ESC @
          this.#mode = { ...DEFAULT_MODE };
          this.#table = 0;
          this.#tabs = DEFAULT_TABS;
          this.#clearLine();
          this.#symbols.clear();
          this.#graphics = undefined;
          return true;
        case 0x74: // ESC t n: any table; one we cannot show prints '?' above 0x7F
          this.#table = n;
          return true;
        case 0x61: {
          const a = ALIGNS[n >= 48 ? n - 48 : n];
          if (!a) return false;
          m.align = a;
          return true;
        }
        case 0x45:
          m.emphasis = (n & 1) === 1;
          return true;
        case 0x47:
          m.doubleStrike = (n & 1) === 1;
          return true;
        case 0x21:
          m.font = n & 1 ? "B" : "A";
          m.emphasis = (n & 0x08) !== 0;
          m.height = n & 0x10 ? 2 : 1;
          m.width = n & 0x20 ? 2 : 1;
          m.underline = n & 0x80 ? 1 : 0;
          return true;
        case 0x2d: {
          const u = n >= 48 ? n - 48 : n;
          if (u > 2) return false;
          m.underline = u as 0 | 1 | 2;
          return true;
        }
        case 0x4d: {
          const f = FONTS[n];
          if (!f) return false;
          m.font = f;
          return true;
        }
        case 0x64: // ESC d n: print the buffer, then feed n lines
          if (n > 0 || this.#lineHasData()) this.#printLine(n > 0);
          for (let i = 1; i < n; i++) this.#printLine(true);
          return true;
        case 0x4a: // ESC J n: print the buffer, feed n dots
        case 0x4b: // ESC K n
        case 0x65: // ESC e n
          this.#printLine(false);
          return true;
        case 0x24: // ESC $: absolute position, in dots
          this.#moveTo(n + (args[1] as number) * 256);
          return true;
        case 0x5c: {
          // ESC \: relative position, signed dots; backwards is not modelled
          const d = n + (args[1] as number) * 256;
          if (d < 0x8000) this.#moveTo(this.#dots + d);
          return true;
        }
        default:
          return true; // known, no effect on what we model
      }
    }
    if (prefix === GS) {
      switch (cmd) {
        case 0x21: // GS ! n: bits 4-6 width, 0-2 height, each x1-x8
          if (n & 0x88) return false;
          m.width = ((n >> 4) & 7) + 1;
          m.height = (n & 7) + 1;
          return true;
        case 0x42:
          m.inverse = (n & 1) === 1;
          return true;
        case 0x72: // GS r n
          if (n !== 1 && n !== 49) return true;
          if (this.#paper !== "out") this.#answer("GS r 1 (paper sensor)", sensorPaperStatusByte(this.#paper));
          return true;
        case 0x2f: // GS / m: print the downloaded bit image
          if (!this.#downloaded || this.#lineHasData()) return false;
          this.#push({ type: "image", ...this.#downloaded, ref: "downloaded" });
          return true;
        default:
          return true;
      }
    }
    if (prefix === FS && cmd === 0x70) {
      // FS p n m: print NV bit image n
      if (this.#lineHasData()) return false;
      this.#push({ type: "image", ...(this.#nv.get(n) ?? { width: 0, height: 0 }), ref: `NV ${n}` });
      return true;
    }
    return true;
  }

  /** DLE EOT n: n = 1 printer (bit 3 offline), 2 offline cause (bit 5 paper-end stop), 3 error, 4 roll paper sensor. */
  #realtimeStatus(n: number): boolean {
    if (n < 1 || n > 4) return false;
    const out = this.#paper === "out";
    const byte =
      n === 4 ? realtimePaperStatusByte(this.#paper) : 0x12 | (out && n === 1 ? 0x08 : 0) | (out && n === 2 ? 0x20 : 0);
    const what = ["printer", "offline cause", "error cause", "paper sensor"][n - 1];
    this.#answer(`DLE EOT ${n} (${what})`, byte);
    return true;
  }

  #cutCommand(): void {
    if (this.#cut()) this.#ok();
    else this.#bad();
  }

  /** GS k m: function A (m 0-6) data up to NUL, function B (m 65-79) n then n bytes. */
  #barcodeCommand(m: number): void {
    const symbology = BARCODE_SYSTEMS[m];
    const print = (data: number[] | Uint8Array = []) => {
      if (symbology === undefined || data.length === 0 || this.#lineHasData()) {
        this.#bad();
      } else {
        this.#push({ type: "barcode", symbology, data: barcodeValue(m, data) });
        this.#ok();
      }
    };
    if (symbology === undefined) this.#bad();
    else if (m <= 6) this.#untilNul(255, print);
    else this.#take(1, (n = 0) => this.#data(n, true, print));
  }

  /** GS ( k: cn fn [m] data — QR (cn 49) and the other 2D symbols. */
  #symbol(p: Uint8Array): boolean {
    const [cn, fn, m] = p;
    if (cn === undefined || fn === undefined || p.length < 3) return false;
    const name = cn === 49 ? "QR" : SYMBOLS_2D[cn];
    if (name === undefined) return false;
    if (fn === 80) {
      // fn 180 (store): m is 48 for every symbol type
      if (m !== 48 || p.length < 4) return false;
      this.#symbols.set(cn, this.#symbolText(p.subarray(3)));
      return true;
    }
    if (fn === 81) {
      // fn 181 (print)
      const data = this.#symbols.get(cn);
      if (data === undefined || this.#lineHasData()) return false;
      this.#push(cn === 49 ? { type: "qr", data } : { type: "barcode", symbology: name, data });
      return true;
    }
    return true; // model, size, error correction, size info: understood, nothing printed
  }

  /** Symbol contents: UTF-8 when the bytes are UTF-8 (what scanners assume), else the code table's characters. */
  #symbolText(bytes: Uint8Array): string {
    try {
      return utf8.decode(bytes);
    } catch {
      let s = "";
      for (const b of bytes) s += b < 0x20 ? String.fromCharCode(b) : charInTable(this.#table, b);
      return s;
    }
  }

  /** GS ( L / GS 8 L: m fn ... — raster graphics to the print buffer (fn 112), printed by fn 50; NV/download graphics by key. */
  #graphicsFunction(p: Uint8Array): boolean {
    const [m, fn] = p;
    if (m !== 48) return false;
    switch (fn) {
      case 112: {
        // m fn a bx by c xL xH yL yH d1..dk
        if (p.length < 10) return false;
        const width = (p[6] as number) + (p[7] as number) * 256;
        const height = (p[8] as number) + (p[9] as number) * 256;
        const bytes = Math.ceil(width / 8) * height;
        if (p[2] !== 48 || width < 1 || height < 1 || p.length < 10 + bytes) return false;
        const keep = bytes <= MAX_IMAGE_BYTES;
        this.#graphics = { width, height, bits: keep ? p.slice(10, 10 + bytes) : undefined };
        return true;
      }
      case 2:
      case 50: {
        const g = this.#graphics;
        if (!g || this.#lineHasData()) return false;
        this.#image("graphics", g.width, g.height, g.bits);
        return true;
      }
      case 69: // print NV graphics kc1 kc2 x y
      case 85: {
        // print download graphics kc1 kc2 x y
        if (p.length < 4 || this.#lineHasData()) return false;
        const key = String.fromCharCode(p[2] as number, p[3] as number);
        this.#push({ type: "image", width: 0, height: 0, ref: `${fn === 69 ? "NV" : "download"} graphics ${key}` });
        return true;
      }
      default:
        return true;
    }
  }

  #answer(command: string, reply: number): void {
    this.#reply.push(reply);
    this.stats.replies++;
    for (const fn of [...this.#statusListeners]) {
      try {
        fn({ command, reply });
      } catch {
        // a failing listener must not break the decoder
      }
    }
  }

  // --- the line and the paper -------------------------------------------------

  #charDots(): number {
    const m = this.#mode;
    return (m.font === "A" || m.font === "special A" ? FONT_A_DOTS : 9) * m.width;
  }

  #char(ch: string): void {
    const w = this.#charDots();
    if (this.#dots > 0 && this.#dots + w > this.#columns * FONT_A_DOTS) this.#printLine(false);
    if (this.#lineAlign === undefined) this.#lineAlign = this.#mode.align;
    const style = styleOf(this.#mode);
    const key = styleKey(style);
    const last = this.#runs.at(-1);
    if (last && key === this.#runKey) last.text += ch;
    else this.#runs.push({ text: ch, ...style });
    this.#runKey = key;
    this.#dots += w;
  }

  /** Spaces in the current style up to dot `target`; nothing past the line's end. */
  #moveTo(target: number): void {
    if (target > this.#columns * FONT_A_DOTS) return;
    while (this.#dots < target) this.#char(" ");
  }

  /** HT: to the next tab stop (in font A columns); ignored past the last one. */
  #tab(): void {
    const col = Math.ceil(this.#dots / FONT_A_DOTS);
    const stop = this.#tabs.find((t) => t > col);
    if (stop !== undefined) this.#moveTo(stop * FONT_A_DOTS);
  }

  #lineHasData(): boolean {
    return this.#runs.length > 0 || this.#stripes.length > 0;
  }

  #clearLine(): void {
    this.#runs = [];
    this.#runKey = "";
    this.#dots = 0;
    this.#lineAlign = undefined;
    this.#stripes = [];
  }

  /** Prints the buffered line; `feed` also prints an empty buffer as a blank line. */
  #printLine(feed: boolean): void {
    if (!feed && !this.#lineHasData()) return;
    const runs = this.#runs;
    const stripes = this.#stripes;
    const align = this.#lineAlign ?? this.#mode.align;
    this.#clearLine();
    if (stripes.length > 0) {
      const s = joinStripes(stripes);
      this.#image("column", s.width, s.height, s.bits);
      if (runs.length === 0) return;
    }
    const visible = runs.filter((r) => r.text.trim().length > 0);
    const basis: TextStyle[] = visible.length > 0 ? visible : runs.length > 0 ? runs : [styleOf(this.#mode)];
    const line: PrintedLine = {
      text: runs.map((r) => r.text).join(""),
      align,
      bold: basis.every((r) => r.bold === true),
      doubleWidth: basis.every((r) => (r.width ?? 1) > 1),
      doubleHeight: basis.every((r) => (r.height ?? 1) > 1),
      runs,
    };
    this.#push({ type: "text", line });
  }

  /** An image chunk: continues the open image of the same kind and width, else starts one. */
  #image(source: string, width: number, height: number, bits: Uint8Array | undefined): void {
    const open = this.#open;
    if (open && open.source === source && open.image.width === width && this.#paper !== "out") {
      const img = open.image;
      const prev = img.bits;
      if (prev && bits && prev.length + bits.length <= MAX_IMAGE_BYTES) {
        const joined = new Uint8Array(prev.length + bits.length);
        joined.set(prev);
        joined.set(bits, prev.length);
        img.bits = joined;
      } else if (prev) {
        img.bits = undefined;
        this.stats.dropped++;
      }
      img.height += height;
      return;
    }
    const image: PrintedImage = { type: "image", width, height, ...(bits ? { bits } : {}) };
    if (this.#push(image)) this.#open = { image, source };
  }

  /** Puts an item on the paper; false when it did not print (paper out, caps). */
  #push(item: PrintedItem): boolean {
    this.#open = undefined;
    const r = this.#current;
    const full =
      item.type === "text"
        ? r.lines.length >= this.#maxLines
        : item.type === "image"
          ? r.items.filter((i) => i.type === "image").length >= MAX_IMAGES_PER_RECEIPT
          : r.items.length - r.lines.length >= MAX_SYMBOLS_PER_RECEIPT + MAX_IMAGES_PER_RECEIPT;
    if (this.#paper === "out" || full) {
      this.stats.dropped++;
      return false;
    }
    r.items.push(item);
    if (item.type === "text") r.lines.push(item.line);
    if (item.type === "qr") r.qr.push(item.data);
    return true;
  }

  /** GS V: only at the start of a line (standard mode). */
  #cut(): boolean {
    if (this.#lineHasData()) return false;
    this.#open = undefined;
    if (this.#paper === "out") {
      this.stats.dropped++;
      return true;
    }
    const done: PrintedReceipt = { ...this.#current, cut: true };
    this.#current = newReceipt();
    this.#receipts.push(done);
    if (this.#receipts.length > this.#maxReceipts) {
      this.#receipts.shift();
      this.stats.dropped++;
    }
    for (const fn of [...this.#listeners]) {
      try {
        fn(done);
      } catch {
        // a failing listener must not break the decoder
      }
    }
    return true;
  }
}

/** ESC * data (columns of 8 or 24 dots, top dot in the high bit) as rows. */
function columnsToRows(d: Uint8Array, width: number, height: number): Uint8Array {
  const stride = Math.ceil(width / 8);
  const out = new Uint8Array(stride * height);
  const perColumn = height / 8;
  for (let x = 0; x < width; x++) {
    for (let y = 0; y < height; y++) {
      const byte = d[x * perColumn + (y >> 3)] as number;
      if (byte & (0x80 >> (y & 7))) setBit(out, y * stride, x);
    }
  }
  return out;
}

/** Sets dot `x` of the row starting at `row`. */
function setBit(buf: Uint8Array, row: number, x: number): void {
  const i = row + (x >> 3);
  buf[i] = (buf[i] ?? 0) | (0x80 >> (x & 7));
}

/** Stripes printed side by side on one line, as one image. */
function joinStripes(stripes: Stripe[]): Stripe {
  if (stripes.length === 1) return stripes[0] as Stripe;
  const width = stripes.reduce((w, s) => w + s.width, 0);
  const height = Math.max(...stripes.map((s) => s.height));
  const stride = Math.ceil(width / 8);
  const bits = new Uint8Array(stride * height);
  let x0 = 0;
  for (const s of stripes) {
    const sStride = Math.ceil(s.width / 8);
    for (let y = 0; y < s.height; y++)
      for (let x = 0; x < s.width; x++)
        if ((s.bits?.[y * sStride + (x >> 3)] ?? 0) & (0x80 >> (x & 7))) setBit(bits, y * stride, x0 + x);
    x0 += s.width;
  }
  return { width, height, bits: width * height <= MAX_IMAGE_BYTES * 8 ? bits : undefined };
}

/**
 * The value a barcode encodes. CODE128 (m 73) data carries code set selectors:
 * {A {B {C switch sets, {S shifts, {1-{4 are FNC1-4 (shown as <FNC1>...), {{ is
 * a literal '{'; in code set C each byte is two digits.
 */
function barcodeValue(m: number, data: number[] | Uint8Array): string {
  if (m !== 73) return String.fromCharCode(...data);
  let set = "B";
  let out = "";
  for (let i = 0; i < data.length; i++) {
    const b = data[i] as number;
    if (b === 0x7b && i + 1 < data.length) {
      const c = String.fromCharCode(data[++i] as number);
      if (c === "A" || c === "B" || c === "C") set = c;
      else if (c === "{") out += "{";
      else if (c >= "1" && c <= "4") out += `<FNC${c}>`;
      // {S: the next character is read in the other set; A and B share the printable range.
      continue;
    }
    out += set === "C" ? String(b).padStart(2, "0") : String.fromCharCode(b);
  }
  return out;
}
