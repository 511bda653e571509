/**
 * A decline's amounts are written by the database (`money_text`, migration
 * 009) from what Intl makes of the currency (`moneyPattern`): it must be the
 * very text `formatMoney` writes on the kiosk, for any amount.
 */
import { formatMoney } from "@paylane/protocol";
import fc from "fast-check";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { migrate } from "../src/db/migrate.ts";
import { openPglite } from "../src/db/pglite.ts";
import { moneyPattern } from "../src/ledger/money-pattern.ts";

const CURRENCIES = ["EUR", "USD", "GBP", "CHF", "SEK", "JPY", "KWD", "INR", "XYZ"];

test("money_text writes what formatMoney writes, for every currency shape and any amount", async () => {
  const db = await openPglite();
  try {
    await migrate(db);
    const amounts = fc.sample(fc.integer({ min: -10_000_000_000, max: 10_000_000_000 }), 60);
    const edges = [0, 1, -1, 9, 10, 99, 100, 999, 1000, 1001, 123456, -100000, 10_000_000_000];
    for (const currency of CURRENCIES) {
      const pattern = JSON.stringify(moneyPattern(currency));
      for (const amount of [...edges, ...amounts]) {
        const { rows } = await db.query<{ text: string }>("SELECT money_text($1, $2) AS text", [amount, pattern]);
        assert.is(rows[0]!.text, formatMoney(amount, currency), `${amount} ${currency}`);
      }
    }
  } finally {
    await db.close();
  }
});

test("moneyPattern reads the currency's shape: symbol, digits, separators", () => {
  assert.equal(moneyPattern("EUR"), { digits: 2, positive: "€#", negative: "-€#", group: ",", decimal: "." });
  assert.is(moneyPattern("JPY").digits, 0);
  assert.is(moneyPattern("KWD").digits, 3);
});

test.run();
