/**
 * Money as text: an integer amount of minor units (cents) with an ISO 4217
 * currency. The only decimal ever made is the string handed to
 * Intl.NumberFormat, built by splitting the integer's digits, so no float
 * arithmetic touches an amount.
 *
 * No zod and no Node here: the kiosk UI bundles this file
 * (`@paylane/protocol/money-format`) as well as the daemon and the cloud.
 */

const formats = new Map<string, Intl.NumberFormat>();

function formatter(currency: string, locale: string): Intl.NumberFormat {
  const key = `${locale}\u0000${currency}`;
  let f = formats.get(key);
  if (!f) {
    f = new Intl.NumberFormat(locale, { style: "currency", currency });
    formats.set(key, f);
  }
  return f;
}

/** Digits after the decimal point of `currency`: 2 for EUR, 0 for JPY, 3 for KWD. */
export function minorDigits(currency: string): number {
  return formatter(currency, "en").resolvedOptions().maximumFractionDigits ?? 2;
}

/**
 * "€2.50" for (250, "EUR"), "¥250" for (250, "JPY"): the only place minor
 * units become a decimal, and only for display. Never throws: an amount that
 * is not a safe integer, or a currency code (or locale) Intl does not accept,
 * is shown plainly ("250 ZZ (minor units)" misleads less than a wrong price).
 */
export function formatMoney(amount: number, currency: string, locale = "en"): string {
  if (!Number.isSafeInteger(amount)) return `${amount} ${currency}`;
  let f: Intl.NumberFormat;
  try {
    f = formatter(currency, locale);
  } catch {
    return `${amount} ${currency} (minor units)`;
  }
  const digits = f.resolvedOptions().maximumFractionDigits ?? 2;
  // Exact: the integer's digits are split, not divided as a float.
  const sign = amount < 0 ? "-" : "";
  const text = String(Math.abs(amount)).padStart(digits + 1, "0");
  const decimal = digits === 0 ? text : `${text.slice(0, -digits)}.${text.slice(-digits)}`;
  return f.format(`${sign}${decimal}` as Intl.StringNumericLiteral);
}
