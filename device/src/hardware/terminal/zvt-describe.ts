/**
 * One ZVT APDU in words, for a person watching the line (`paylane-sim
 * terminal`): "Authorisation (06 01) 12.50 EUR", "Status information (04 0F)
 * 12.50 EUR approved, card VISA ****4242, trace 000001". Passwords are shown
 * as ******, a card number by its last four digits at most: the same rules
 * as the logs.
 */
import { type Apdu, apduName, hexByte, isAck, isNegativeAck } from "./zvt-frame.ts";
import {
  CARD_TYPES,
  Cmd,
  currencyAlpha,
  isCmd,
  parseAuthorization,
  parseEndOfDay,
  parseRegistration,
  parseStatusInformation,
  resultText,
} from "./zvt-messages.ts";

const INTERMEDIATE: ReadonlyMap<number, string> = new Map([
  [0x0a, "insert card"],
  [0x0e, "please wait"],
]);

export function describeApdu(a: Apdu): string {
  const code = `(${apduName(a)})`;
  if (isAck(a)) return `ACK ${code}`;
  if (isNegativeAck(a)) return `Negative ACK (84 ${hexByte(a.ins)}): ${resultText(a.ins)}`;
  if (isCmd(a, Cmd.registration)) {
    const r = parseRegistration(a.data);
    if (!r) return `Registration ${code} malformed`;
    const currency = r.currency !== undefined ? `, currency ${currencyName(r.currency)}` : "";
    return `Registration ${code} password ******${currency}, config 0x${hexByte(r.config)}`;
  }
  if (isCmd(a, Cmd.authorization)) {
    const r = parseAuthorization(a.data);
    return `Authorisation ${code} ${money(r.amount, r.currency)}`;
  }
  if (isCmd(a, Cmd.statusInformation)) {
    const s = parseStatusInformation(a.data);
    const parts: string[] = [];
    if (s.amount !== undefined) parts.push(money(s.amount, s.currency));
    parts.push(s.resultCode === 0 ? "approved" : resultText(s.resultCode));
    const brand = s.cardName ?? (s.cardType !== undefined ? CARD_TYPES.get(s.cardType) : undefined) ?? s.panBrand;
    if (brand || s.panLast4) parts.push(`card ${[brand, s.panLast4 ? `****${s.panLast4}` : ""].join(" ").trim()}`);
    if (s.traceNumber) parts.push(`trace ${s.traceNumber}`);
    if (s.approvalCode) parts.push(`approval code ${s.approvalCode}`);
    if (s.totals) {
      const count = Object.values(s.totals.groups).reduce((n, g) => n + g.count, 0);
      parts.push(`batch of ${count} (receipts ${s.totals.receiptFrom}-${s.totals.receiptTo})`);
    }
    return `Status information ${code} ${parts.join(", ")}`;
  }
  if (isCmd(a, Cmd.intermediateStatus)) {
    const b = a.data[0];
    return `Intermediate status ${code} ${b === undefined ? "" : (INTERMEDIATE.get(b) ?? `0x${hexByte(b)}`)}`.trim();
  }
  if (isCmd(a, Cmd.completion)) return `Completion ${code}`;
  if (isCmd(a, Cmd.abort)) return `Abort ${code} ${resultText(a.data[0])}`;
  if (isCmd(a, Cmd.ecrAbort)) return `Abort request ${code}`;
  if (isCmd(a, Cmd.endOfDay)) return `End-of-Day ${code}${parseEndOfDay(a.data) ? " password ******" : " malformed"}`;
  return `APDU ${code}, ${a.data.length} data bytes`;
}

function currencyName(code: number | undefined): string {
  if (code === undefined) return "(no currency)";
  return currencyAlpha(code) ?? String(code);
}

/** Minor units as "12.50 EUR" (two decimals: the currencies this subset knows). */
function money(amount: number | undefined, currency: number | undefined): string {
  if (amount === undefined) return "(no amount)";
  return `${Math.floor(amount / 100)}.${String(amount % 100).padStart(2, "0")} ${currencyName(currency)}`;
}
