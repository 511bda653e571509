/** Money on the kiosk's screens: integer minor units in, formatted text out, no float in between. */
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { deleteDigit, formatMoney, minorDigits, typeDigit } from "../src/kiosk/money.ts";

const format = suite("formatMoney");

format("splits the integer by the currency's digits", () => {
  assert.is(formatMoney(250, "EUR"), "€2.50");
  assert.is(formatMoney(5, "EUR"), "€0.05");
  assert.is(formatMoney(0, "EUR"), "€0.00");
  assert.is(formatMoney(-50, "EUR"), "-€0.50");
  assert.is(formatMoney(123_456_789, "EUR"), "€1,234,567.89");
  assert.is(formatMoney(250, "JPY"), "¥250");
  assert.is(formatMoney(1234, "KWD"), "KWD\u00a01.234");
  assert.is(formatMoney(2000, "GBP"), "£20.00");
});

format("exact where floats are not: 0.1 + 0.2 is 30 cents", () => {
  assert.is(formatMoney(10 + 20, "EUR"), "€0.30");
  // 2^53 - 1 minor units: a float division would round the last digit.
  assert.is(formatMoney(Number.MAX_SAFE_INTEGER, "EUR"), "€90,071,992,547,409.91");
});

format("what is not an amount is not dressed up as a price", () => {
  assert.is(formatMoney(2.5, "EUR"), "2.5 EUR");
  assert.is(formatMoney(250, "ZZ"), "250 ZZ (minor units)");
});

format("minorDigits", () => {
  assert.is(minorDigits("EUR"), 2);
  assert.is(minorDigits("JPY"), 0);
  assert.is(minorDigits("KWD"), 3);
});

format.run();

const keypad = suite("keypad digits");

keypad("2, 5, 0 is 250 minor units", () => {
  let amount = 0;
  for (const d of [2, 5, 0]) amount = typeDigit(amount, d, 5000) ?? amount;
  assert.is(amount, 250);
  assert.is(formatMoney(amount, "EUR"), "€2.50");
});

keypad("a digit past the maximum is refused", () => {
  assert.is(typeDigit(5000, 0, 5000), undefined);
  assert.is(typeDigit(500, 1, 5000), undefined);
  assert.is(typeDigit(500, 0, 5000), 5000);
  assert.is(typeDigit(0, 0, 5000), 0, "leading zeros change nothing");
  assert.is(typeDigit(1, 10, 5000), undefined);
  assert.is(typeDigit(1, 1.5, 5000), undefined);
});

keypad("delete drops the last digit", () => {
  assert.is(deleteDigit(250), 25);
  assert.is(deleteDigit(9), 0);
  assert.is(deleteDigit(0), 0);
});

keypad.run();
