/**
 * The dashboard on a tablet and from the keyboard, in real Chromium: at 768
 * px the fleet fits the width (no page-wide horizontal scroll, the navigation
 * wraps), signing in and reaching a kiosk work with Tab and Enter only, the
 * focused element is visibly outlined, and live updates of the fleet do not
 * move the rows (fixed row heights).
 */
import * as assert from "uvu/assert";
import { dashboardSuite, openDashboard, screenshot } from "./dashboard-harness.ts";

const { test, ctx } = dashboardSuite("dashboard tablet and keyboard", { kiosks: ["k1", "k2"] });

test("at 768 px, signed in and on a kiosk with the keyboard only", async () => {
  const page = await openDashboard(ctx, { width: 768, height: 1024 });
  const op = ctx.operators.operator;
  await page.getByLabel("Username").waitFor();
  await page.keyboard.press("Tab");
  assert.is(await page.evaluate(() => document.activeElement?.getAttribute("name")), "username");
  await page.keyboard.type(op.username);
  await page.keyboard.press("Tab");
  await page.keyboard.type(op.password);
  await page.keyboard.press("Enter");
  await page.getByRole("navigation", { name: "Sections" }).waitFor();
  await page.locator('tr[data-device="k1"][data-state="online"]').waitFor();

  const width = await page.evaluate(() => ({
    page: document.documentElement.scrollWidth,
    view: document.documentElement.clientWidth,
  }));
  assert.ok(width.page <= width.view, `no horizontal scroll at 768 px: ${width.page} > ${width.view}`);

  // Tab from the top: the skip link first, then the navigation; the focus is outlined.
  await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
  await page.keyboard.press("Tab");
  assert.is(await page.evaluate(() => document.activeElement?.textContent), "Skip to content");
  await page.keyboard.press("Tab");
  const focused = await page.evaluate(() => {
    const el = document.activeElement as HTMLElement;
    const style = getComputedStyle(el);
    return { text: el.textContent, outline: style.outlineStyle, width: style.outlineWidth };
  });
  assert.is(focused.text, "Fleet");
  assert.is(focused.outline, "solid", "the focused link is outlined");
  assert.is(focused.width, "3px");

  // Through the page to the kiosk's link, and Enter opens it.
  const link = page.getByRole("link", { name: `${ctx.site.site}/k1` });
  for (let i = 0; i < 30 && !(await link.evaluate((el) => el === document.activeElement)); i++)
    await page.keyboard.press("Tab");
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "k1", level: 1 }).waitFor();
  await page.getByRole("heading", { name: "Send a command" }).waitFor();
  console.log(`  device at 768 px: ${await screenshot(ctx, page, "device-768")}`);
  assert.equal(ctx.problems, []);
});

test("a kiosk going offline changes its row in place: no row moves", async () => {
  const page = await openDashboard(ctx);
  const op = ctx.operators.viewer;
  await page.getByLabel("Username").fill(op.username);
  await page.getByLabel("Password").fill(op.password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator('tr[data-device="k2"][data-state="online"]').waitFor();
  const boxes = () =>
    page
      .locator("table.fleet tbody tr")
      .evaluateAll((rows) => rows.map((r) => JSON.stringify(r.getBoundingClientRect())));
  const before = await boxes();
  await ctx.site.kiosk("k2").stop();
  ctx.site.kiosks.delete("k2");
  await page.locator('tr[data-device="k2"][data-state="offline"]').waitFor({ timeout: 8000 });
  assert.equal(await boxes(), before);
  assert.equal(ctx.problems, []);
});

test.run();
