/**
 * Check-in and payment receipts, laid out for a fixed number of columns and
 * rendered as ESC/POS. Layout is kept apart from the bytes (receiptLayout) so
 * the same lines can be shown on screen when the printer is out of paper.
 */
import { minorDigits } from "@paylane/protocol";
import { type Align, type CodePage, EscPosBuilder, printable } from "./escpos.ts";

/** An amount in integer minor units of an ISO 4217 currency (1250 EUR = EUR 12.50). */
export interface Money {
  minor: number;
  currency: string;
}

interface ReceiptBase {
  venue: string;
  kiosk: string;
  at: Date;
  /** IANA zone of the site, e.g. "Europe/Berlin": receipts show the site's wall clock. */
  timeZone: string;
  memberName: string;
  transactionId: string;
  /** Printed masked: only the last 4 characters show. */
  cardUid?: string;
}

export interface CheckInReceipt extends ReceiptBase {
  kind: "checkin";
}

export interface PaymentReceipt extends ReceiptBase {
  kind: "payment";
  item: string;
  amount: Money;
  newBalance: Money;
}

export type Receipt = CheckInReceipt | PaymentReceipt;

export interface ReceiptStyle {
  align: Align;
  bold: boolean;
  doubleWidth: boolean;
  doubleHeight: boolean;
}

export type LayoutItem = ({ type: "text"; text: string } & ReceiptStyle) | { type: "qr"; data: string };

export interface RenderOptions {
  /** Characters per line at normal width: 42 for 80 mm paper, 32 for 58 mm. */
  columns?: number;
  codePage?: CodePage;
  /** QR module size in dots (GS ( k fn 167), 1-16. */
  qrModuleSize?: number;
}

export const COLUMNS_80MM = 42;
export const COLUMNS_58MM = 32;

const PLAIN: ReceiptStyle = { align: "left", bold: false, doubleWidth: false, doubleHeight: false };

/** "EUR 12.50": ISO code, then the amount with the currency's own minor digits (JPY 0, BHD 3). */
export function formatMoney(m: Money): string {
  if (!/^[A-Z]{3}$/.test(m.currency))
    throw new RangeError(`currency must be an ISO 4217 code like "EUR", got "${m.currency}"`);
  if (!Number.isSafeInteger(m.minor)) throw new RangeError(`amount must be an integer of minor units, got ${m.minor}`);
  const digits = minorDigits(m.currency);
  const abs = Math.abs(m.minor);
  const scale = 10 ** digits;
  const whole = Math.floor(abs / scale);
  const frac = digits > 0 ? `.${String(abs % scale).padStart(digits, "0")}` : "";
  return `${m.currency} ${m.minor < 0 ? "-" : ""}${whole}${frac}`;
}

/** All but the last 4 characters starred (and never more than half of a short UID shown). */
export function maskUid(uid: string): string {
  const s = uid.trim();
  const show = Math.min(4, Math.floor(s.length / 2));
  return "*".repeat(s.length - show) + s.slice(s.length - show);
}

const timeFormats = new Map<string, Intl.DateTimeFormat>();

/** "2024-05-01 11:00" on the site's wall clock. */
export function formatSiteTime(at: Date, timeZone: string): string {
  let fmt = timeFormats.get(timeZone);
  if (!fmt) {
    try {
      fmt = new Intl.DateTimeFormat("en-CA", {
        timeZone,
        year: "numeric",
        month: "2-digit",
        day: "2-digit",
        hour: "2-digit",
        minute: "2-digit",
        hourCycle: "h23",
      });
    } catch {
      throw new RangeError(`timeZone must be an IANA zone like "Europe/Berlin", got "${timeZone}"`);
    }
    timeFormats.set(timeZone, fmt);
  }
  const p = Object.fromEntries(fmt.formatToParts(at).map((x) => [x.type, x.value]));
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}`;
}

/**
 * Word-wraps to `width` columns; words longer than a line are split. Past
 * `maxLines` the last line ends in "..." so a cut-off is visible.
 */
export function wrap(text: string, width: number, maxLines = Number.POSITIVE_INFINITY): string[] {
  if (!Number.isInteger(width) || width < 4) throw new RangeError(`wrap width must be an integer >= 4, got ${width}`);
  const lines: string[] = [];
  let cur = "";
  for (const word of text.split(" ").filter((w) => w.length > 0)) {
    let w = word;
    if (cur.length > 0 && cur.length + 1 + w.length <= width) {
      cur += ` ${w}`;
      continue;
    }
    if (cur.length > 0) lines.push(cur);
    while (w.length > width) {
      lines.push(w.slice(0, width));
      w = w.slice(width);
    }
    cur = w;
  }
  if (cur.length > 0 || lines.length === 0) lines.push(cur);
  if (lines.length <= maxLines) return lines;
  const kept = lines.slice(0, maxLines);
  const last = kept[maxLines - 1] ?? "";
  kept[maxLines - 1] = `${last.length + 3 <= width ? last : last.slice(0, width - 3).trimEnd()}...`;
  return kept;
}

/** "Label        value" across the line; a value that does not fit goes under the label, indented. */
function labelled(label: string, value: string, width: number, maxValueLines = 3): string[] {
  if (label.length + 1 + value.length <= width)
    return [label + " ".repeat(width - label.length - value.length) + value];
  return [label, ...wrap(value, width - 2, maxValueLines).map((l) => `  ${l}`)];
}

/** The receipt as styled lines and QR symbols, before any bytes. */
export function receiptLayout(r: Receipt, opts: RenderOptions = {}): LayoutItem[] {
  const width = opts.columns ?? COLUMNS_80MM;
  if (!Number.isInteger(width) || width < 16 || width > 255) {
    throw new RangeError(`columns must be an integer from 16 to 255, got ${width}`);
  }
  const page = opts.codePage ?? "wpc1252";
  const clean = (s: string) => printable(s, page).replace(/ +/g, " ").trim();
  const txId = clean(r.transactionId);
  if (txId.length === 0) throw new RangeError("transactionId must not be empty");

  const out: LayoutItem[] = [];
  const text = (t: string, style: Partial<ReceiptStyle> = {}) =>
    out.push({ type: "text", text: t, ...PLAIN, ...style });

  for (const l of wrap(clean(r.venue), width, 2)) text(l, { align: "center", bold: true, doubleHeight: true });
  text(`Kiosk ${clean(r.kiosk)}`, { align: "center" });
  text("");
  const title = r.kind === "checkin" ? "CHECK-IN" : "PAYMENT";
  text(title, { align: "center", bold: true, doubleWidth: true, doubleHeight: true });
  text("");
  for (const l of labelled("Time", formatSiteTime(r.at, r.timeZone), width)) text(l);
  for (const l of labelled("Member", clean(r.memberName), width, 2)) text(l);
  if (r.cardUid !== undefined) for (const l of labelled("Card", maskUid(clean(r.cardUid)), width)) text(l);
  if (r.kind === "payment") {
    for (const l of labelled("Item", clean(r.item), width)) text(l);
    text("-".repeat(width));
    for (const l of labelled("Amount", formatMoney(r.amount), width)) text(l, { bold: true });
    for (const l of labelled("New balance", formatMoney(r.newBalance), width)) text(l);
  }
  text("");
  text("Transaction", { align: "center" });
  // Never truncated: staff read it back to find the record.
  for (const l of wrap(txId, width)) text(l, { align: "center" });
  out.push({ type: "qr", data: txId });
  return out;
}

/** The receipt as one ESC/POS job: initialise, lines, QR, feed, partial cut. */
export function renderReceipt(r: Receipt, opts: RenderOptions = {}): Uint8Array {
  const b = new EscPosBuilder(opts.codePage ?? "wpc1252").initialize();
  let style: ReceiptStyle = PLAIN;
  const apply = (next: ReceiptStyle) => {
    if (next.align !== style.align) b.align(next.align);
    if (next.bold !== style.bold) b.emphasis(next.bold);
    if (next.doubleWidth !== style.doubleWidth || next.doubleHeight !== style.doubleHeight) b.size(next);
    style = next;
  };
  for (const item of receiptLayout(r, opts)) {
    if (item.type === "text") {
      apply(item);
      b.line(item.text);
    } else {
      apply({ ...PLAIN, align: "center" });
      b.qr(item.data, { moduleSize: opts.qrModuleSize ?? 6 });
      b.line();
    }
  }
  apply(PLAIN);
  // ESC d then GS V 66: feed past the cutter so the QR is not sliced.
  return b.feed(3).cut({ partial: true, feed: 0 }).bytes();
}
