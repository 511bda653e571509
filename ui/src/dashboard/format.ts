/** Text for times, sizes and money as the dashboard shows them. */
import { formatMoney, minorDigits } from "@paylane/protocol/money-format";

export { formatMoney };

/** "12 s", "5 min", "3 h", "2 d": how long ago `iso` was (or "—"). */
export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return "—";
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86_400)} d`;
}

/** The local date and time, to the second. */
export function when(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(undefined, { hour12: false });
}

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return "—";
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} kB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MB`;
  return `${(n / 1024 ** 3).toFixed(2)} GB`;
}

/**
 * "2.50" → 250 minor units of EUR, exactly (the digits are split, never a
 * float multiplied); undefined when it is not an amount of that currency.
 */
export function parseAmount(text: string, currency: string): number | undefined {
  const digits = minorDigits(currency);
  const m = /^\s*(\d{1,9})(?:[.,](\d*))?\s*$/.exec(text);
  if (!m) return undefined;
  const fraction = m[2] ?? "";
  if (fraction.length > digits) return undefined;
  const n = Number(m[1] + fraction.padEnd(digits, "0"));
  return Number.isSafeInteger(n) ? n : undefined;
}

/** Minor units as the plain decimal a person types ("2.50"). */
export function plainAmount(amount: number, currency: string): string {
  const digits = minorDigits(currency);
  if (digits === 0) return String(amount);
  const text = String(Math.abs(amount)).padStart(digits + 1, "0");
  return `${amount < 0 ? "-" : ""}${text.slice(0, -digits)}.${text.slice(-digits)}`;
}
