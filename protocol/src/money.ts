/**
 * Money: an integer amount of minor units (cents, pence) with an ISO 4217
 * currency. Never a float: 0.1 + 0.2 is not a price.
 */
import { z } from "zod";

export const CurrencySchema = z.string().regex(/^[A-Z]{3}$/, { error: "expected an ISO 4217 currency code like EUR" });

/** A positive amount in minor units (a price, a payment, a top-up); at most 10^10 minor units. */
export const AmountSchema = z
  .number({ error: "expected an integer number of minor units (e.g. 250 for 2.50)" })
  .int({ error: "expected an integer number of minor units (e.g. 250 for 2.50), not a decimal" })
  .min(1, { error: "expected an amount of at least 1 minor unit" })
  .max(10_000_000_000, { error: "expected at most 10,000,000,000 minor units" });

/** A balance or signed amount in minor units; may be negative (an offline overdraft). */
export const SignedAmountSchema = z.number().int().safe();

export const MoneySchema = z.object({ amount: SignedAmountSchema, currency: CurrencySchema });
export type Money = z.infer<typeof MoneySchema>;

const formats = new Map<string, Intl.NumberFormat>();

function format(currency: string, locale: string): Intl.NumberFormat {
  const key = `${locale}\u0000${currency}`;
  let f = formats.get(key);
  if (!f) {
    f = new Intl.NumberFormat(locale, { style: "currency", currency });
    formats.set(key, f);
  }
  return f;
}

/** Digits after the decimal point of `currency` (2 for EUR, 0 for JPY, 3 for KWD). */
export function minorDigits(currency: string): number {
  return format(currency, "en").resolvedOptions().maximumFractionDigits ?? 2;
}

/** "€2.50" for (250, "EUR"): the only place minor units become a decimal, and only for display. */
export function formatMoney(amount: number, currency: string, locale = "en"): string {
  const digits = minorDigits(currency);
  // Exact: the integer is split, not divided as a float.
  const negative = amount < 0;
  const abs = Math.abs(amount);
  const major = Math.trunc(abs / 10 ** digits);
  const minor = abs - major * 10 ** digits;
  const text = digits === 0 ? `${major}` : `${major}.${String(minor).padStart(digits, "0")}`;
  return format(currency, locale).format(Number(`${negative ? "-" : ""}${text}`));
}
