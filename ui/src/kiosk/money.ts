/**
 * Money on screen: amounts arrive as integer minor units (cents) with an ISO
 * 4217 currency and stay integers. Formatting is protocol's (zod-free, so
 * the bundle stays small); the keypad's arithmetic is the kiosk's own.
 */
export { formatMoney, minorDigits } from "@paylane/protocol/money-format";

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
