/**
 * The ZVT messages this subset speaks (ZVT-Protokoll PA00P015), built and
 * parsed byte for byte:
 *
 *   ECR → PT   06 00 Registration      password (3 BCD), config byte, currency (2 BCD)
 *              06 01 Authorization     BMP 04 amount (6 BCD), BMP 49 currency (2 BCD)
 *              06 B0 Abort             (no data)
 *              06 50 End-of-Day        password (3 BCD)
 *   PT → ECR   04 FF Intermediate status   status byte
 *              04 0F Status information    BMPs: 27 result, 04 amount, 0B trace, 87 receipt, 22 PAN …
 *                                          (after End-of-Day: 04 the batch total, 60 the single totals)
 *              06 0F Completion
 *              06 1E Abort                 result code
 *   both       80 00 00 ACK, 84 XX 00 refused with result code XX
 *
 * Numbers are packed BCD. Variable fields are LLVAR / LLLVAR: the length as
 * 2 or 3 bytes F0..F9, one decimal digit each. The card number (BMP 22) is
 * BCD with 'E' nibbles for masked digits and an 'F' pad: this module only
 * ever derives the last four digits and a brand from it and keeps neither
 * the digits nor the bytes.
 */
import { type Apdu, encodeApdu, hexByte } from "./zvt-frame.ts";

type Code = { readonly cls: number; readonly ins: number };

export const Cmd = {
  registration: { cls: 0x06, ins: 0x00 },
  authorization: { cls: 0x06, ins: 0x01 },
  completion: { cls: 0x06, ins: 0x0f },
  abort: { cls: 0x06, ins: 0x1e },
  ecrAbort: { cls: 0x06, ins: 0xb0 },
  endOfDay: { cls: 0x06, ins: 0x50 },
  intermediateStatus: { cls: 0x04, ins: 0xff },
  statusInformation: { cls: 0x04, ins: 0x0f },
} as const satisfies Record<string, Code>;

export function isCmd(a: Apdu, c: Code): boolean {
  return a.cls === c.cls && a.ins === c.ins;
}

/** BMP tags used here. */
export const Bmp = {
  amount: 0x04,
  tlv: 0x06,
  trace: 0x0b,
  time: 0x0c,
  date: 0x0d,
  statusByte: 0x19,
  pan: 0x22,
  result: 0x27,
  terminalId: 0x29,
  approvalCode: 0x3b,
  currency: 0x49,
  singleTotals: 0x60,
  receipt: 0x87,
  turnover: 0x88,
  cardType: 0x8a,
  cardName: 0x8b,
} as const;

/** Data length of each BMP a terminal may send: fixed, LLVAR, LLLVAR or a BER-length TLV container. */
const BMP_LENGTHS = new Map<number, number | "LL" | "LLL" | "TLV">([
  [0x01, 1],
  [0x02, 1],
  [0x03, 1],
  [0x04, 6],
  [0x05, 1],
  [0x06, "TLV"],
  [0x0b, 3],
  [0x0c, 3],
  [0x0d, 2],
  [0x0e, 2],
  [0x17, 2],
  [0x19, 1],
  [0x22, "LL"],
  [0x23, "LL"],
  [0x24, "LLL"],
  [0x27, 1],
  [0x29, 4],
  [0x2a, 15],
  [0x2d, "LL"],
  [0x2e, "LLL"],
  [0x37, 3],
  [0x3a, 2],
  [0x3b, 8],
  [0x3c, "LLL"],
  [0x3d, 3],
  [0x49, 2],
  [0x60, "LLL"],
  [0x87, 2],
  [0x88, 3],
  [0x8a, 1],
  [0x8b, "LL"],
  [0x8c, 1],
  [0x92, "LLL"],
  [0x9a, "LLL"],
  [0xa0, 1],
  [0xa7, "LL"],
  [0xaa, 3],
  [0xaf, "LLL"],
  [0xba, 5],
]);

/**
 * Registration config byte: 0x08 the ECR wants intermediate status, 0x10 the
 * ECR controls payments (no amount entry on the terminal). Receipt bits 0x02 /
 * 0x04 are left clear: the terminal prints its own slips.
 */
export const REGISTRATION_CONFIG = 0x08 | 0x10;

/** ISO 4217 numeric codes (BMP 49 and Registration's currency). */
export const CURRENCY_CODES: Readonly<Record<string, number>> = {
  EUR: 978,
  GBP: 826,
  USD: 840,
  CHF: 756,
  DKK: 208,
  SEK: 752,
  NOK: 578,
  PLN: 985,
  CZK: 203,
};

export function currencyNumber(alpha: string): number | undefined {
  return Object.hasOwn(CURRENCY_CODES, alpha) ? CURRENCY_CODES[alpha] : undefined;
}

export function currencyAlpha(code: number): string | undefined {
  return Object.keys(CURRENCY_CODES).find((k) => CURRENCY_CODES[k] === code);
}

/** Six BCD bytes hold twelve digits. */
export const MAX_AMOUNT = 999_999_999_999;

// ---- result codes ------------------------------------------------------------

/** Result codes a customer or operator may meet, in words (codes 01..63 come from the card issuer or network). */
const RESULT_TEXT = new Map<number, string>([
  [0x00, "approved"],
  [0x64, "card not readable"],
  [0x65, "no card data (neither chip nor stripe found)"],
  [0x66, "card reader processing error"],
  [0x67, "function not allowed for girocard and Maestro cards"],
  [0x68, "function not allowed for credit cards"],
  [0x6a, "terminal turnover file full"],
  [0x6b, "terminal function deactivated (not registered)"],
  [0x6c, "aborted"],
  [0x6e, "card blocked"],
  [0x6f, "wrong currency"],
  [0x71, "insufficient credit on the card"],
  [0x72, "chip error"],
  [0x73, "card data incorrect"],
  [0x77, "end-of-day batch not possible"],
  [0x78, "card expired"],
  [0x79, "card not yet valid"],
  [0x7a, "card unknown"],
  [0x7d, "terminal communication error"],
  [0x83, "function not possible"],
  [0x85, "terminal key missing"],
  [0x89, "PIN pad defective"],
  [0x9a, "ZVT protocol error"],
  [0x9b, "terminal network error"],
  [0x9c, "terminal busy, please wait"],
  [0xa0, "receiver not ready"],
  [0xa1, "payment network does not respond"],
  [0xa3, "no connection to the payment network"],
  [0xb1, "terminal memory full"],
  [0xb4, "already reversed"],
  [0xb5, "reversal not possible"],
  [0xc3, "maximum amount exceeded"],
  [0xc5, "payment method not supported"],
  [0xc6, "currency not accepted"],
  [0xc8, "amount too small"],
  [0xcc, "terminal printer not ready"],
  [0xdc, "card still inserted"],
  [0xe2, "card reader defective"],
  [0xe4, "terminal activation required"],
  [0xec, "PIN processing not possible"],
  [0xed, "PIN pad defective"],
  [0xf0, "end-of-day batch pending"],
  [0xfc, "terminal device missing or defective"],
  [0xff, "terminal system error"],
]);

/** "card declined by issuer (result code 0x05)", "aborted (result code 0x6C)". */
export function resultText(code: number | undefined): string {
  if (code === undefined) return "no result code";
  const words = code >= 0x01 && code <= 0x63 ? "card declined by issuer" : (RESULT_TEXT.get(code) ?? "terminal error");
  return `${words} (result code 0x${hexByte(code)})`;
}

// ---- cards -------------------------------------------------------------------

/** ZVT card-type IDs (BMP 8A) of the schemes a kiosk meets. */
export const CARD_TYPES: ReadonlyMap<number, string> = new Map([
  [5, "girocard"],
  [6, "Mastercard"],
  [8, "American Express"],
  [10, "VISA"],
  [11, "VISA Electron"],
  [12, "Diners"],
  [13, "V PAY"],
  [14, "JCB"],
  [46, "Maestro"],
  [198, "UnionPay"],
  [232, "Discover"],
]);

/** The brand from the leading digits a masked PAN still shows (the IIN), if any. */
function brandFromIin(lead: string): string | undefined {
  const n = (k: number) => Number(lead.slice(0, k));
  if (lead.startsWith("4")) return "VISA";
  if (lead.length >= 2 && (n(2) === 34 || n(2) === 37)) return "American Express";
  if (lead.length >= 2 && n(2) >= 51 && n(2) <= 55) return "Mastercard";
  if (lead.length >= 4 && n(4) >= 2221 && n(4) <= 2720) return "Mastercard";
  if (lead.length >= 4 && (n(4) === 6011 || n(2) === 65)) return "Discover";
  if (lead.length >= 4 && n(4) >= 3528 && n(4) <= 3589) return "JCB";
  return undefined;
}

export interface PanSummary {
  /** The last four digits when the terminal left them unmasked. */
  last4?: string;
  /** The brand guessed from unmasked leading digits. */
  brand?: string;
}

/**
 * Reads a BMP 22 body (BCD, 'E' = masked digit, 'F' = pad) just far enough to
 * keep the last four digits and a brand. The digits themselves go no further
 * than this function.
 */
export function summarisePan(body: Uint8Array): PanSummary {
  let nibbles = "";
  for (const b of body) nibbles += (b >> 4).toString(16) + (b & 0x0f).toString(16);
  nibbles = nibbles.replace(/f+$/, "");
  if (!/^[0-9e]+$/.test(nibbles)) return {};
  const tail = nibbles.slice(-4);
  const lead = /^\d*/.exec(nibbles)?.[0] ?? "";
  const out: PanSummary = {};
  if (nibbles.length >= 8 && /^\d{4}$/.test(tail)) out.last4 = tail;
  // Only a masked PAN's visible head is read: a fully visible one is not a "lead".
  const brand = brandFromIin(lead.length === nibbles.length ? lead.slice(0, 6) : lead);
  if (brand) out.brand = brand;
  return out;
}

/** Packs a PAN masked the ZVT way: every digit but the last four as 'E', odd lengths padded with 'F'. */
export function maskedPanBody(pan: string): Uint8Array {
  if (!/^\d{12,19}$/.test(pan)) throw new RangeError("a PAN is 12 to 19 digits");
  let nibbles = "e".repeat(pan.length - 4) + pan.slice(-4);
  if (nibbles.length % 2 === 1) nibbles += "f";
  return Uint8Array.from(nibbles.match(/../g) ?? [], (h) => Number.parseInt(h, 16));
}

// ---- BCD and LLVAR -------------------------------------------------------------

export function encodeBcd(digits: string | number, bytes: number): Uint8Array {
  const text = String(digits).padStart(bytes * 2, "0");
  if (!/^\d+$/.test(text) || text.length > bytes * 2) {
    throw new RangeError(`${digits} does not fit ${bytes} BCD bytes`);
  }
  return Uint8Array.from(text.match(/../g) ?? [], (d) => Number.parseInt(d, 16));
}

/** The digits, or undefined if a nibble is not 0..9. */
export function decodeBcd(bytes: Uint8Array): string | undefined {
  let out = "";
  for (const b of bytes) {
    if (b >> 4 > 9 || (b & 0x0f) > 9) return undefined;
    out += (b >> 4).toString() + (b & 0x0f).toString();
  }
  return out;
}

function bcdNumber(bytes: Uint8Array): number | undefined {
  const d = decodeBcd(bytes);
  return d === undefined ? undefined : Number(d);
}

function encodeVar(body: Uint8Array, digits: 2 | 3): Uint8Array {
  const len = String(body.length).padStart(digits, "0");
  if (len.length > digits) throw new RangeError(`${body.length} bytes do not fit an ${"L".repeat(digits)}VAR`);
  return Uint8Array.from([...Array.from(len, (d) => 0xf0 | Number(d)), ...body]);
}

// ---- BMP walking ----------------------------------------------------------------

/**
 * Calls `visit` for each BMP in `data`, in order. Returns false when an
 * unknown tag or a truncated field stopped the walk (everything before it was
 * visited). Never throws.
 */
export function walkBmps(data: Uint8Array, visit: (tag: number, body: Uint8Array) => void): boolean {
  let at = 0;
  while (at < data.length) {
    const tag = data[at] ?? 0;
    const kind = BMP_LENGTHS.get(tag);
    if (kind === undefined) return false;
    at++;
    let length: number;
    if (typeof kind === "number") {
      length = kind;
    } else if (kind === "TLV") {
      // BER length: < 0x80 is the length; 0x81 / 0x82 say 1 / 2 length bytes follow.
      const first = data[at];
      if (first === undefined) return false;
      if (first < 0x80) {
        length = first;
        at += 1;
      } else if (first === 0x81 || first === 0x82) {
        const n = first & 0x7f;
        if (at + 1 + n > data.length) return false;
        length = n === 1 ? (data[at + 1] ?? 0) : ((data[at + 1] ?? 0) << 8) | (data[at + 2] ?? 0);
        at += 1 + n;
      } else {
        return false;
      }
    } else {
      const n = kind === "LL" ? 2 : 3;
      if (at + n > data.length) return false;
      length = 0;
      for (let i = 0; i < n; i++) {
        const b = data[at + i] ?? 0;
        if (b >> 4 !== 0x0f || (b & 0x0f) > 9) return false;
        length = length * 10 + (b & 0x0f);
      }
      at += n;
    }
    if (at + length > data.length) return false;
    visit(tag, data.subarray(at, at + length));
    at += length;
  }
  return true;
}

/** Printable ASCII from a fixed or variable text field, NUL padding and spaces trimmed. */
function ascii(body: Uint8Array): string {
  return Array.from(body, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : ""))
    .join("")
    .trim();
}

// ---- messages -------------------------------------------------------------------

export interface StatusInformation {
  /** BMP 27: 0 is success. */
  resultCode?: number;
  /** BMP 04, minor units. */
  amount?: number;
  /** BMP 49, ISO 4217 numeric. */
  currency?: number;
  /** BMP 0B, six digits. */
  traceNumber?: string;
  /** BMP 87, four digits. */
  receiptNumber?: string;
  /** BMP 88. */
  turnoverNumber?: string;
  /** BMP 29, eight digits. */
  terminalId?: string;
  /** BMP 3B: the AID / authorisation attribute, the approval code. */
  approvalCode?: string;
  /** BMP 8A: ZVT card-type ID. */
  cardType?: number;
  /** BMP 8B: the card's name as the terminal reports it, e.g. "VISA". */
  cardName?: string;
  /** From BMP 22: the last four digits, never more. */
  panLast4?: string;
  /** From BMP 22's unmasked leading digits: a brand, never the digits. */
  panBrand?: string;
  /** BMP 60, in the answer to End-of-Day: the batch's counts and turnovers per card group. */
  totals?: SingleTotals;
  /** False when an unknown or truncated BMP ended parsing early. */
  complete: boolean;
}

export function parseStatusInformation(data: Uint8Array): StatusInformation {
  const s: StatusInformation = { complete: false };
  s.complete = walkBmps(data, (tag, body) => {
    switch (tag) {
      case Bmp.result:
        s.resultCode = body[0];
        break;
      case Bmp.amount:
        s.amount = bcdNumber(body);
        break;
      case Bmp.currency:
        s.currency = bcdNumber(body);
        break;
      case Bmp.trace:
        s.traceNumber = decodeBcd(body);
        break;
      case Bmp.receipt:
        s.receiptNumber = decodeBcd(body);
        break;
      case Bmp.turnover:
        s.turnoverNumber = decodeBcd(body);
        break;
      case Bmp.terminalId:
        s.terminalId = decodeBcd(body);
        break;
      case Bmp.approvalCode:
        s.approvalCode = ascii(body) || undefined;
        break;
      case Bmp.cardType:
        s.cardType = body[0];
        break;
      case Bmp.cardName: {
        // A name is shown to members: never one that carries card digits.
        const name = ascii(body).slice(0, 24);
        if (name && !/\d{5}/.test(name)) s.cardName = name;
        break;
      }
      case Bmp.pan: {
        const p = summarisePan(body);
        s.panLast4 = p.last4;
        s.panBrand = p.brand;
        break;
      }
      case Bmp.singleTotals:
        s.totals = parseSingleTotals(body);
        break;
      // Track data (23, 24, 2D) and the TLV container are skipped unread.
    }
  });
  return s;
}

export function registration(password: string, config: number, currency: number): Uint8Array {
  if (!/^\d{6}$/.test(password)) throw new RangeError("the ZVT password is 6 digits");
  return encodeApdu(Cmd.registration.cls, Cmd.registration.ins, [
    ...encodeBcd(password, 3),
    config,
    ...encodeBcd(currency, 2),
  ]);
}

export interface RegistrationRequest {
  password: string;
  config: number;
  currency?: number;
}

export function parseRegistration(data: Uint8Array): RegistrationRequest | undefined {
  if (data.length < 4) return undefined;
  const password = decodeBcd(data.subarray(0, 3));
  if (password === undefined) return undefined;
  const currency = data.length >= 6 ? bcdNumber(data.subarray(4, 6)) : undefined;
  return { password, config: data[3] ?? 0, currency };
}

export function authorization(amount: number, currency: number): Uint8Array {
  if (!Number.isInteger(amount) || amount <= 0 || amount > MAX_AMOUNT) {
    throw new RangeError(`amount must be an integer 1..${MAX_AMOUNT} minor units, got ${amount}`);
  }
  return encodeApdu(Cmd.authorization.cls, Cmd.authorization.ins, [
    Bmp.amount,
    ...encodeBcd(amount, 6),
    Bmp.currency,
    ...encodeBcd(currency, 2),
  ]);
}

export function parseAuthorization(data: Uint8Array): { amount?: number; currency?: number } {
  const out: { amount?: number; currency?: number } = {};
  walkBmps(data, (tag, body) => {
    if (tag === Bmp.amount) out.amount = bcdNumber(body);
    if (tag === Bmp.currency) out.currency = bcdNumber(body);
  });
  return out;
}

export const ECR_ABORT: Uint8Array = encodeApdu(Cmd.ecrAbort.cls, Cmd.ecrAbort.ins);

export function intermediateStatus(status: number): Uint8Array {
  return encodeApdu(Cmd.intermediateStatus.cls, Cmd.intermediateStatus.ins, [status]);
}

/** Intermediate status bytes the simulator shows. */
export const IntermediateStatus = { insertCard: 0x0a, pleaseWait: 0x0e } as const;

export function completion(fields: { terminalId?: string; currency?: number } = {}): Uint8Array {
  const data: number[] = [];
  if (fields.terminalId) data.push(Bmp.terminalId, ...encodeBcd(fields.terminalId, 4));
  if (fields.currency) data.push(Bmp.currency, ...encodeBcd(fields.currency, 2));
  return encodeApdu(Cmd.completion.cls, Cmd.completion.ins, data);
}

/** 06 1E from the terminal: the transaction ended without success. */
export function terminalAbort(resultCode: number): Uint8Array {
  return encodeApdu(Cmd.abort.cls, Cmd.abort.ins, [resultCode]);
}

// ---- End-of-Day ------------------------------------------------------------------

/**
 * The card groups of BMP 60 ("single totals"), in their order on the wire:
 * after the first and last receipt numbers (2 BCD each), each group is its
 * count (1 byte, binary) and turnover (6 BCD).
 */
export const TOTALS_GROUPS = ["girocard", "jcb", "eurocard", "amex", "visa", "diners", "other"] as const;
export type TotalsGroup = (typeof TOTALS_GROUPS)[number];

export interface SingleTotals {
  /** Four digits each: the first and last receipt numbers of the batch. */
  receiptFrom: string;
  receiptTo: string;
  groups: Record<TotalsGroup, { count: number; amount: number }>;
}

const TOTALS_LENGTH = 4 + TOTALS_GROUPS.length * 7;

/** The card group a ZVT card-type ID (BMP 8A) is totalled under. */
export function totalsGroup(cardType: number | undefined): TotalsGroup {
  switch (cardType) {
    case 5:
      return "girocard";
    case 14:
      return "jcb";
    case 6:
      return "eurocard";
    case 8:
      return "amex";
    case 10:
    case 11:
    case 13:
      return "visa";
    case 12:
      return "diners";
    default:
      return "other";
  }
}

/** Undefined when the body is not the 53 bytes of BMP 60 or a field is not BCD. */
export function parseSingleTotals(body: Uint8Array): SingleTotals | undefined {
  if (body.length < TOTALS_LENGTH) return undefined;
  const receiptFrom = decodeBcd(body.subarray(0, 2));
  const receiptTo = decodeBcd(body.subarray(2, 4));
  if (receiptFrom === undefined || receiptTo === undefined) return undefined;
  const groups = {} as SingleTotals["groups"];
  let at = 4;
  for (const g of TOTALS_GROUPS) {
    const amount = bcdNumber(body.subarray(at + 1, at + 7));
    if (amount === undefined) return undefined;
    groups[g] = { count: body[at] ?? 0, amount };
    at += 7;
  }
  return { receiptFrom, receiptTo, groups };
}

export function encodeSingleTotals(t: SingleTotals): Uint8Array {
  const out: number[] = [...encodeBcd(t.receiptFrom, 2), ...encodeBcd(t.receiptTo, 2)];
  for (const g of TOTALS_GROUPS) {
    const { count, amount } = t.groups[g];
    if (!Number.isInteger(count) || count < 0 || count > 0xff)
      throw new RangeError(`${g} count ${count} does not fit a byte`);
    out.push(count, ...encodeBcd(amount, 6));
  }
  return Uint8Array.from(out);
}

/** 06 50: the terminal closes its batch and sends it to the acquirer; the password as in Registration. */
export function endOfDay(password: string): Uint8Array {
  if (!/^\d{6}$/.test(password)) throw new RangeError("the ZVT password is 6 digits");
  return encodeApdu(Cmd.endOfDay.cls, Cmd.endOfDay.ins, [...encodeBcd(password, 3)]);
}

/** The password of an End-of-Day, or undefined when it is not 3 BCD bytes. */
export function parseEndOfDay(data: Uint8Array): { password: string } | undefined {
  if (data.length < 3) return undefined;
  const password = decodeBcd(data.subarray(0, 3));
  return password === undefined ? undefined : { password };
}

export interface StatusFields {
  resultCode: number;
  amount: number;
  currency: number;
  traceNumber: number;
  receiptNumber?: number;
  turnoverNumber?: number;
  terminalId?: string;
  /** HHMMSS and MMDD as BMPs 0C and 0D. */
  at?: Date;
  /** A BMP 22 body (see maskedPanBody): never a clear PAN. */
  maskedPan?: Uint8Array;
  approvalCode?: string;
  cardType?: number;
  cardName?: string;
  /** BMP 60, in the answer to End-of-Day. */
  totals?: SingleTotals;
}

export function statusInformation(f: StatusFields): Uint8Array {
  const d: number[] = [Bmp.result, f.resultCode, Bmp.amount, ...encodeBcd(f.amount, 6)];
  d.push(Bmp.currency, ...encodeBcd(f.currency, 2), Bmp.trace, ...encodeBcd(f.traceNumber, 3));
  if (f.at) {
    const two = (n: number) => String(n).padStart(2, "0");
    const t = f.at;
    d.push(Bmp.time, ...encodeBcd(`${two(t.getUTCHours())}${two(t.getUTCMinutes())}${two(t.getUTCSeconds())}`, 3));
    d.push(Bmp.date, ...encodeBcd(`${two(t.getUTCMonth() + 1)}${two(t.getUTCDate())}`, 2));
  }
  if (f.terminalId) d.push(Bmp.terminalId, ...encodeBcd(f.terminalId, 4));
  if (f.maskedPan) d.push(Bmp.pan, ...encodeVar(f.maskedPan, 2));
  if (f.receiptNumber !== undefined) d.push(Bmp.receipt, ...encodeBcd(f.receiptNumber, 2));
  if (f.turnoverNumber !== undefined) d.push(Bmp.turnover, ...encodeBcd(f.turnoverNumber, 3));
  if (f.approvalCode !== undefined) {
    const code = Array.from(f.approvalCode.slice(0, 8), (c) => c.charCodeAt(0) & 0x7f);
    d.push(Bmp.approvalCode, ...code, ...new Array<number>(8 - code.length).fill(0));
  }
  if (f.cardType !== undefined) d.push(Bmp.cardType, f.cardType);
  if (f.totals) d.push(Bmp.singleTotals, ...encodeVar(encodeSingleTotals(f.totals), 3));
  if (f.cardName)
    d.push(
      Bmp.cardName,
      ...encodeVar(
        Uint8Array.from(f.cardName, (c) => c.charCodeAt(0) & 0x7f),
        2,
      ),
    );
  return encodeApdu(Cmd.statusInformation.cls, Cmd.statusInformation.ins, d);
}
