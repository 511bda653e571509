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

// Formatting lives apart, free of zod, so the kiosk UI can bundle it too.
export { formatMoney, minorDigits } from "./money-format.ts";
