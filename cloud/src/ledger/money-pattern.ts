/**
 * What `formatMoney` (protocol/src/money-format.ts) makes of a currency, as
 * data the database can apply: `money_text(amount, pattern)` in
 * migrations/009_payment_authorize.sql writes a decline's amounts the way the
 * kiosk writes them, without a second round trip to format them here.
 */
export interface MoneyPattern {
  /** Digits after the decimal point: 2 for EUR, 0 for JPY, 3 for KWD. */
  digits: number;
  /** The text around the number, `#` standing for it: "€#", "CHF #". */
  positive: string;
  negative: string;
  /** Between groups of three integer digits, and before the fraction. */
  group: string;
  decimal: string;
}

const patterns = new Map<string, MoneyPattern>();

export function moneyPattern(currency: string, locale = "en"): MoneyPattern {
  const cacheKey = `${locale}\u0000${currency}`;
  let p = patterns.get(cacheKey);
  if (!p) {
    p = derive(currency, locale);
    patterns.set(cacheKey, p);
  }
  return p;
}

function derive(currency: string, locale: string): MoneyPattern {
  let f: Intl.NumberFormat;
  try {
    f = new Intl.NumberFormat(locale, { style: "currency", currency });
  } catch {
    // formatMoney's own fallback: the plain integer, named as minor units
    const plain = `# ${currency} (minor units)`;
    return { digits: 0, positive: plain, negative: `-${plain}`, group: "", decimal: "." };
  }
  const digits = f.resolvedOptions().maximumFractionDigits ?? 2;
  // A number with groups and a fraction shows every part the pattern needs.
  const shape = (sample: string) => {
    const parts = f.formatToParts(sample as Intl.StringNumericLiteral);
    const group = parts.find((x) => x.type === "group")?.value ?? "";
    const decimal = parts.find((x) => x.type === "decimal")?.value ?? ".";
    const text = parts
      .map((x) => (NUMBER_PARTS.has(x.type) ? "#" : x.value))
      .join("")
      .replace(/#+/g, "#");
    return { text, group, decimal };
  };
  const pos = shape("1234567.125");
  const neg = shape("-1234567.125");
  return { digits, positive: pos.text, negative: neg.text, group: pos.group, decimal: pos.decimal };
}

const NUMBER_PARTS = new Set<string>(["integer", "group", "decimal", "fraction"]);
