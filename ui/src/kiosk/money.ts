/**
 * Money on screen: amounts arrive as integer minor units (cents) with an ISO
 * 4217 currency and stay integers. The only decimal ever made is the string
 * handed to Intl.NumberFormat, built by splitting the integer's digits, so no
 * float arithmetic touches an amount.
 */

/** The kiosk speaks English today; prices read "€2.50". */
const LOCALE = "en";

const formats = new Map<string, Intl.NumberFormat>();

function formatter(currency: string, locale: string): Intl.NumberFormat {
  const key = `${locale}|${currency}`;
  let f = formats.get(key);
  if (!f) {
    f = new Intl.NumberFormat(locale, { style: "currency", currency });
    formats.set(key, f);
  }
  return f;
}

/** Digits after the decimal point of `currency`: 2 for EUR, 0 for JPY, 3 for KWD. */
export function minorDigits(currency: string): number {
  return formatter(currency, LOCALE).resolvedOptions().maximumFractionDigits ?? 2;
}

/**
 * "€2.50" for (250, "EUR"), "¥250" for (250, "JPY"). A currency code the
 * browser does not know, or an amount that is not a safe integer, is shown
 * plainly ("250 XXX minor units" would mislead less than a wrong price).
 */
export function formatMoney(amount: number, currency: string, locale: string = LOCALE): string {
  if (!Number.isSafeInteger(amount)) return `${amount} ${currency}`;
  let f: Intl.NumberFormat;
  try {
    f = formatter(currency, locale);
  } catch {
    return `${amount} ${currency} (minor units)`;
  }
  const digits = f.resolvedOptions().maximumFractionDigits ?? 2;
  const sign = amount < 0 ? "-" : "";
  const text = String(Math.abs(amount)).padStart(digits + 1, "0");
  const decimal = digits === 0 ? text : `${text.slice(0, -digits)}.${text.slice(-digits)}`;
  return f.format(`${sign}${decimal}` as Intl.StringNumericLiteral);
}

/**
 * The amount keypad, cash-register style: each digit typed shifts the amount
 * one place left in minor units, so 2, 5, 0 on a EUR kiosk is 250 (€2.50).
 * Returns the new amount, or undefined when the digit would pass `max`.
 */
export function typeDigit(amount: number, digit: number, max: number): number | undefined {
  if (!Number.isInteger(digit) || digit < 0 || digit > 9) return undefined;
  const next = amount * 10 + digit;
  return next <= max && Number.isSafeInteger(next) ? next : undefined;
}

/** The keypad's delete key: drops the last digit typed (250 -> 25). */
export function deleteDigit(amount: number): number {
  return (amount - (amount % 10)) / 10;
}
