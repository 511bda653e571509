/**
 * The printer side of the wire: a streaming ESC/POS decoder that turns the
 * bytes back into what would come out of the printer (lines with their styles,
 * QR contents, one receipt per cut), and answers DLE EOT 4 / GS r 1 with the
 * paper sensor bits. Tests assert on what a customer would hold in their hand.
 *
 * Robustness: any byte sequence is accepted. Unknown or malformed commands are
 * skipped and counted, never thrown; memory is bounded (one GS ( k payload of
 * at most 7092 bytes, one line, a capped list of receipts and lines).
 *
 * Modelled as an Epson TM printer does it (ESC/POS Command Reference):
 * - a line takes the alignment, emphasis and size in force at its first
 *   character (ESC a is only honoured at the start of a line anyway);
 * - text longer than the line wraps onto the next one (`columns` at normal width);
 * - ESC @ discards an unprinted partial line; GS V and QR print (fn 181) are
 *   ignored unless at the start of a line;
 * - while out of paper the printer is offline: nothing prints, GS r goes
 *   unanswered, only real-time DLE EOT is answered (data is dropped, not held).
 */

import { send } from "../serial/serial-link.ts";
import {
  type Align,
  type CodePage,
  DLE,
  decodeByte,
  ESC,
  GS,
  LF,
  type PaperStatus,
  realtimePaperStatusByte,
  sensorPaperStatusByte,
} from "./escpos.ts";
import type { PrinterEnd } from "./transport.ts";

export interface PrintedLine {
  text: string;
  align: Align;
  bold: boolean;
  doubleWidth: boolean;
  doubleHeight: boolean;
}

export interface PrintedReceipt {
  lines: PrintedLine[];
  qr: string[];
  cut: boolean;
}

export interface SimulatorStats {
  /** Bytes consumed. */
  bytes: number;
  /** Commands understood and acted on. */
  commands: number;
  /** Bytes skipped: garbage, unknown commands, bad parameters, commands in the wrong place. */
  skipped: number;
  /** Print output dropped while out of paper, or over the line/receipt caps. */
  dropped: number;
  /** Status bytes sent back. */
  replies: number;
}

export interface PrinterSimulatorOptions {
  /** Characters per line at normal width (42 for 80 mm, 32 for 58 mm). */
  columns?: number;
  /** Completed receipts kept (oldest dropped). */
  maxReceipts?: number;
  /** Lines kept per receipt. */
  maxLines?: number;
}

const ALIGNS: readonly Align[] = ["left", "center", "right"];
/** ESC t n values we can show; other tables decode as '?' for bytes >= 0x80. */
const CODE_PAGES: Readonly<Record<number, CodePage>> = { 0: "pc437", 16: "wpc1252" };
/** Largest GS ( k payload kept: (pL + pH*256) <= 7092 for QR store. */
const MAX_PAREN_PAYLOAD = 7092;
const MAX_QR_PER_RECEIPT = 32;

/** Parameter counts of ESC/GS/DLE commands we know; anything else is skipped. */
const ESC_ARGS: Readonly<Record<number, number>> = {
  64: 0, // @ initialise
  116: 1, // t code page
  97: 1, // a justification
  69: 1, // E emphasis
  100: 1, // d print and feed n lines
  33: 1, // ! print mode (bold bit 3, double height bit 4, double width bit 5)
  45: 1, // - underline
  50: 0, // 2 default line spacing
  51: 1, // 3 line spacing
  74: 1, // J print and feed
  77: 1, // M font
  82: 1, // R international set
  71: 1, // G double strike
  123: 1, // { upside down
  86: 1, // V rotate
  32: 1, // SP right spacing
  61: 1, // = select peripheral
  112: 3, // p pulse (drawer)
  99: 2, // c 3/4/5 n paper sensors, panel buttons
  105: 0, // i partial cut (old)
  109: 0, // m partial cut (old)
};
const GS_ARGS: Readonly<Record<number, number>> = {
  33: 1, // ! character size
  86: 1, // V cut (function B/C/D read one more)
  114: 1, // r transmit status
  66: 1, // B reverse
  97: 1, // a auto status back
  72: 1, // H HRI position
  104: 1, // h barcode height
  119: 1, // w barcode width
  102: 1, // f HRI font
  98: 1, // b smoothing
  73: 1, // I transmit printer ID
  76: 2, // L left margin
  87: 2, // W print area width
  80: 2, // P motion units
};
const DLE_ARGS: Readonly<Record<number, number>> = {
  4: 1, // EOT n real-time status
  5: 1, // ENQ n real-time request
  20: 3, // DC4 fn m t
};

type State =
  | { s: "ground" }
  | { s: "prefix"; prefix: number }
  | { s: "args"; prefix: number; cmd: number; need: number; args: number[] }
  | { s: "paren-head"; fn: number; head: number[] }
  | { s: "paren-data"; fn: number; left: number; keep: boolean };

interface Style {
  align: Align;
  bold: boolean;
  doubleWidth: boolean;
  doubleHeight: boolean;
}

const DEFAULT_STYLE: Style = { align: "left", bold: false, doubleWidth: false, doubleHeight: false };

export class PrinterSimulator {
  readonly #columns: number;
  readonly #maxReceipts: number;
  readonly #maxLines: number;
  #paper: PaperStatus = "ok";
  #state: State = { s: "ground" };
  #style: Style = { ...DEFAULT_STYLE };
  #codePage: CodePage = "pc437";
  #line = "";
  #lineStyle: Style | undefined;
  #lineUnits = 0;
  #qrData: string | undefined;
  #paren = new Uint8Array(MAX_PAREN_PAYLOAD);
  #parenLen = 0;
  #current: PrintedReceipt = { lines: [], qr: [], cut: false };
  #receipts: PrintedReceipt[] = [];
  #reply: number[] = [];
  readonly #listeners = new Set<(r: PrintedReceipt) => void>();
  readonly stats: SimulatorStats = { bytes: 0, commands: 0, skipped: 0, dropped: 0, replies: 0 };

  constructor(opts: PrinterSimulatorOptions = {}) {
    this.#columns = opts.columns ?? 42;
    this.#maxReceipts = opts.maxReceipts ?? 64;
    this.#maxLines = opts.maxLines ?? 1000;
    if (!Number.isInteger(this.#columns) || this.#columns < 2 || this.#columns > 255) {
      throw new RangeError(`columns must be an integer from 2 to 255, got ${this.#columns}`);
    }
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
    for (let i = 0; i < bytes.length; i++) this.#byte(bytes[i] as number);
    this.stats.bytes += bytes.length;
    const out = Uint8Array.from(this.#reply);
    this.#reply = [];
    return out;
  }

  #byte(b: number): void {
    const st = this.#state;
    switch (st.s) {
      case "ground":
        this.#ground(b);
        return;
      case "prefix":
        this.#afterPrefix(st.prefix, b);
        return;
      case "args":
        st.args.push(b);
        if (st.args.length === st.need) {
          this.#state = { s: "ground" };
          this.#run(st.prefix, st.cmd, st.args);
        }
        return;
      case "paren-head":
        st.head.push(b);
        if (st.head.length === 2) {
          const len = (st.head[0] as number) + (st.head[1] as number) * 256;
          this.#parenLen = 0;
          if (len === 0) {
            this.#state = { s: "ground" };
            this.stats.skipped += 5;
          } else {
            this.#state = { s: "paren-data", fn: st.fn, left: len, keep: st.fn === 0x6b && len <= MAX_PAREN_PAYLOAD };
          }
        }
        return;
      case "paren-data":
        // Unkept payloads are only counted, so memory stays bounded whatever pL pH claim.
        if (st.keep) this.#paren[this.#parenLen] = b;
        this.#parenLen++;
        st.left--;
        if (st.left === 0) {
          this.#state = { s: "ground" };
          if (st.keep) this.#qrFunction(this.#paren.subarray(0, this.#parenLen));
          else this.stats.skipped += 5 + this.#parenLen;
        }
        return;
    }
  }

  #ground(b: number): void {
    if (b === ESC || b === GS || b === DLE) {
      this.#state = { s: "prefix", prefix: b };
    } else if (b === LF) {
      this.stats.commands++;
      this.#printLine(true);
    } else if (b === 0x0d) {
      // CR: ignored by TM printers unless auto line feed is strapped on.
    } else if (b === 0x09) {
      this.#char(" ");
    } else if (b < 0x20 || b === 0x7f) {
      this.stats.skipped++;
    } else {
      this.#char(decodeByte(b, this.#codePage));
    }
  }

  #afterPrefix(prefix: number, b: number): void {
    if (prefix === GS && b === 0x28) {
      this.#state = { s: "prefix", prefix: 0x28 };
      return;
    }
    if (prefix === 0x28) {
      // GS ( <fn> pL pH payload: every GS ( function has this shape, so unknown ones skip cleanly.
      this.#state = { s: "paren-head", fn: b, head: [] };
      return;
    }
    const table = prefix === ESC ? ESC_ARGS : prefix === GS ? GS_ARGS : DLE_ARGS;
    const need = table[b];
    if (need === undefined) {
      this.#state = { s: "ground" };
      this.stats.skipped++;
      // A prefix byte may start the next real command; anything else went with the bad one.
      if (b === ESC || b === GS || b === DLE) this.#ground(b);
      else this.stats.skipped++;
      return;
    }
    if (need === 0) {
      this.#state = { s: "ground" };
      this.#run(prefix, b, []);
    } else {
      this.#state = { s: "args", prefix, cmd: b, need, args: [] };
    }
  }

  /** Runs a complete command and counts it as understood or skipped. */
  #run(prefix: number, cmd: number, args: number[]): void {
    const outcome = this.#command(prefix, cmd, args);
    if (outcome === "ok") this.stats.commands++;
    else if (outcome === "bad") this.stats.skipped += 2 + args.length;
  }

  /** "more": the command reads another parameter byte first. */
  #command(prefix: number, cmd: number, args: number[]): "ok" | "bad" | "more" {
    const n = args[0] ?? 0;
    if (prefix === ESC) {
      switch (cmd) {
        case 0x40: // ESC @
          this.#style = { ...DEFAULT_STYLE };
          this.#codePage = "pc437";
          this.#line = "";
          this.#lineStyle = undefined;
          this.#lineUnits = 0;
          this.#qrData = undefined;
          return "ok";
        case 0x74: {
          const page = CODE_PAGES[n];
          if (!page) return "bad";
          this.#codePage = page;
          return "ok";
        }
        case 0x61: {
          const a = ALIGNS[n >= 48 ? n - 48 : n];
          if (!a) return "bad";
          this.#style.align = a;
          return "ok";
        }
        case 0x45:
          this.#style.bold = (n & 1) === 1;
          return "ok";
        case 0x21:
          this.#style.bold = (n & 0x08) !== 0;
          this.#style.doubleHeight = (n & 0x10) !== 0;
          this.#style.doubleWidth = (n & 0x20) !== 0;
          return "ok";
        case 0x64: // ESC d n: print the buffer, then feed n lines
          if (n > 0 || this.#line.length > 0) this.#printLine(n > 0);
          for (let i = 1; i < n; i++) this.#printLine(true);
          return "ok";
        default:
          return "ok"; // known, no effect on what we model
      }
    }
    if (prefix === GS) {
      switch (cmd) {
        case 0x21: // GS ! n: any magnification counts as double
          this.#style.doubleHeight = (n & 0x07) !== 0;
          this.#style.doubleWidth = (n & 0x70) !== 0;
          return "ok";
        case 0x56:
          if ([65, 66, 97, 98, 103, 104].includes(n) && args.length === 1) {
            this.#state = { s: "args", prefix, cmd, need: 2, args };
            return "more";
          }
          if (![0, 1, 48, 49, 65, 66, 97, 98, 103, 104].includes(n)) return "bad";
          return this.#cut() ? "ok" : "bad";
        case 0x72: // GS r n
          if (n !== 1 && n !== 49) return "ok";
          if (this.#paper !== "out") this.#send(sensorPaperStatusByte(this.#paper));
          return "ok";
        default:
          return "ok";
      }
    }
    // DLE
    if (cmd === 0x04) {
      if (n === 7 || n === 8) {
        // ink / peripheral status take one more byte; not modelled
        if (args.length > 1) return "ok";
        this.#state = { s: "args", prefix, cmd, need: 2, args };
        return "more";
      }
      if (n < 1 || n > 4) return "bad";
      const out = this.#paper === "out";
      // n = 1 printer (bit 3 offline), 2 offline cause (bit 5 paper-end stop), 3 error, 4 roll paper sensor.
      const byte =
        n === 4
          ? realtimePaperStatusByte(this.#paper)
          : 0x12 | (out && n === 1 ? 0x08 : 0) | (out && n === 2 ? 0x20 : 0);
      this.#send(byte);
      return "ok";
    }
    return "ok";
  }

  /** GS ( k with cn = 49 (QR Code). */
  #qrFunction(p: Uint8Array): void {
    if (this.#qr(p)) this.stats.commands++;
    else this.stats.skipped += 5 + p.length;
  }

  #qr(p: Uint8Array): boolean {
    const [cn, fn, m] = p;
    if (cn !== 49) return false;
    switch (fn) {
      case 65: // fn 165 model
      case 67: // fn 167 module size
      case 69: // fn 169 error correction
        return p.length >= 3;
      case 80: {
        // fn 180 store
        if (m !== 48 || p.length < 4) return false;
        let s = "";
        for (const b of p.subarray(3)) s += decodeByte(b, this.#codePage);
        this.#qrData = s;
        return true;
      }
      case 81: // fn 181 print
        if (m !== 48 || this.#line.length > 0 || this.#qrData === undefined) return false;
        if (this.#paper === "out") {
          this.stats.dropped++;
        } else if (this.#current.qr.length < MAX_QR_PER_RECEIPT) {
          this.#current.qr.push(this.#qrData);
        } else {
          this.stats.dropped++;
        }
        return true;
      default:
        return true; // other QR functions (fn 182 size info): understood, nothing printed
    }
  }

  #char(ch: string): void {
    const w = this.#style.doubleWidth ? 2 : 1;
    if (this.#lineUnits > 0 && this.#lineUnits + w > this.#columns) this.#printLine(false);
    if (this.#line.length === 0) this.#lineStyle = { ...this.#style };
    this.#line += ch;
    this.#lineUnits += w;
  }

  /** Prints the buffered line; `feed` also prints an empty buffer as a blank line. */
  #printLine(feed: boolean): void {
    if (!feed && this.#line.length === 0) return;
    const style = this.#lineStyle ?? { ...this.#style };
    const line: PrintedLine = { text: this.#line, ...style };
    this.#line = "";
    this.#lineStyle = undefined;
    this.#lineUnits = 0;
    if (this.#paper === "out" || this.#current.lines.length >= this.#maxLines) {
      this.stats.dropped++;
      return;
    }
    this.#current.lines.push(line);
  }

  /** GS V: only at the start of a line (standard mode). */
  #cut(): boolean {
    if (this.#line.length > 0) return false;
    if (this.#paper === "out") {
      this.stats.dropped++;
      return true;
    }
    const done: PrintedReceipt = { ...this.#current, cut: true };
    this.#current = { lines: [], qr: [], cut: false };
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

  #send(byte: number): void {
    this.#reply.push(byte);
    this.stats.replies++;
  }
}
