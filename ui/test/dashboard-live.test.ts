/**
 * The live feed in real Chromium: a viewer has the feed open (a WebSocket the
 * session cookie authenticates), a card is tapped at a real kiosk, and the
 * check-in appears at the top of the open page without a reload; rows keep
 * one height, so nothing below a new row jumps by more than whole rows.
 */

import * as assert from "uvu/assert";
import { demoCard } from "../../test/support/site.ts";
import { dashboardSuite, signIn } from "./dashboard-harness.ts";

const { test, ctx } = dashboardSuite("dashboard live feed", { kiosks: ["k1"] });

test("a tap at a kiosk shows up in the open live feed, without a reload", async () => {
  const page = await signIn(ctx, "viewer");
  await page.getByRole("link", { name: "Live feed" }).click();
  await page
    .getByRole("status")
    .filter({ hasText: /^Live$/ })
    .waitFor();
  await page.getByText("Connected: events appear as they are committed.").waitFor();
  await page.evaluate(() => {
    (window as unknown as { marker: number }).marker = 1;
  });
  const log = page.getByRole("log", { name: "Live events" });
  assert.is(await log.getByText("Grace Hopper checked in").count(), 0);

  const tapped = await ctx.site.kiosk("k1").tap(demoCard("m-grace"));
  assert.is(tapped.outcome, "welcome");
  const row = log.locator(".feed-row", { hasText: "Grace Hopper checked in" });
  await row.waitFor({ timeout: 5000 });
  assert.match((await row.textContent()) ?? "", /k1/);
  assert.is(await page.evaluate(() => (window as unknown as { marker?: number }).marker), 1, "no reload");

  // A second tap goes on top; both rows have the one fixed height.
  await ctx.site.kiosk("k1").tap(demoCard("m-ada"));
  const first = log.locator(".feed-row").first();
  await first.filter({ hasText: "Ada Lovelace checked in" }).waitFor({ timeout: 5000 });
  const heights = await log
    .locator(".feed-row")
    .evaluateAll((rows) => rows.map((r) => r.getBoundingClientRect().height));
  assert.ok(heights.length >= 2 && heights.every((h) => h === heights[0]), `rows of one height: ${heights}`);
  // A viewer is not sent payments, and is not offered them as a filter.
  assert.is(await page.getByLabel("payment").count(), 0);
  assert.equal(ctx.problems, []);
});

test.run();
