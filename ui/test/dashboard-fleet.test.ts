/**
 * The dashboard's front door and fleet in real Chromium against a real site:
 * the cloud serves it under a strict CSP, an admin signs in through the form
 * and sees the site's kiosks online, a reload keeps the session (refresh
 * cookie, access token in memory only), and a kiosk that stops turns offline
 * on the open page without a reload. Screenshot of the fleet kept.
 */
import { copyFile, mkdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import * as assert from "uvu/assert";
import { dashboardSuite, mainText, openDashboard, screenshot, signIn } from "./dashboard-harness.ts";

const { test, ctx } = dashboardSuite("dashboard fleet");

test("the cloud serves the dashboard under a strict CSP; / leads to it", async () => {
  const root = await fetch(ctx.site.cloud!.url, { redirect: "manual" });
  assert.is(root.status, 302);
  assert.is(root.headers.get("location"), "/dashboard/");
  const page = await fetch(ctx.base);
  assert.is(page.status, 200);
  const csp = page.headers.get("content-security-policy") ?? "";
  for (const d of ["default-src 'self'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"])
    assert.ok(csp.includes(d), `CSP has ${d}: ${csp}`);
  assert.not.match(csp, /unsafe-inline|unsafe-eval/);
  const html = await page.text();
  assert.not.match(html, /<script>|https?:\/\//, "no inline script, nothing from elsewhere");
  const outside = await fetch(`${ctx.base}..%2f..%2fpackage.json`);
  assert.is(outside.status, 404, "no file outside the dashboard's folder");
});

test("an admin signs in and sees every kiosk online; the access token is in no storage", async () => {
  const page = await signIn(ctx, "admin");
  const fleet = page.locator("table.fleet");
  await fleet.locator('tr[data-device="k1"][data-state="online"]').waitFor();
  await fleet.locator('tr[data-device="k2"][data-state="online"]').waitFor();
  const text = await mainText(page);
  assert.match(text, /2 of 2 kiosks online/);
  // Every section of the admin role is in the navigation.
  const nav = (await page.getByRole("navigation", { name: "Sections" }).textContent()) ?? "";
  for (const s of ["Fleet", "Live feed", "Alerts", "Conflicts", "Wallets & ledger", "Users", "Audit log"])
    assert.ok(nav.includes(s), `nav has ${s}: ${nav}`);
  const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
  assert.is(stored, "{}{}", "nothing kept in web storage");
  const cookies = await page.context().cookies();
  assert.ok(cookies.length > 0 && cookies.every((c) => c.httpOnly), "session cookies are httpOnly");
  console.log(`  fleet: ${await screenshot(ctx, page, "fleet")}`);
  if (process.env.README_SCREENSHOT) await readmeScreenshot(page);

  // A reload keeps the session: the refresh cookie gives a new access token.
  await page.reload();
  await fleet.locator('tr[data-device="k1"]').waitFor();
  assert.is(await page.getByLabel("Password").count(), 0, "no login form after a reload");
  assert.equal(ctx.problems, []);
});

test("a kiosk that stops turns offline on the open page, without a reload", async () => {
  const page = await signIn(ctx, "viewer");
  await page.locator('tr[data-device="k2"][data-state="online"]').waitFor();
  await page.evaluate(() => {
    (window as unknown as { marker: number }).marker = 1;
  });
  await ctx.site.kiosk("k2").stop();
  ctx.site.kiosks.delete("k2");
  await page.locator('tr[data-device="k2"][data-state="offline"]').waitFor({ timeout: 8000 });
  assert.match(await mainText(page), /1 of 2 kiosks online/);
  assert.is(await page.evaluate(() => (window as unknown as { marker?: number }).marker), 1, "same page, no reload");
  assert.equal(ctx.problems, []);
});

test("signing out ends the session: a reload shows the login form again", async () => {
  const page = await signIn(ctx, "viewer");
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("button", { name: "Sign in" }).waitFor();
  await page.reload();
  await page.getByRole("button", { name: "Sign in" }).waitFor();
  assert.is(await page.getByRole("navigation", { name: "Sections" }).count(), 0);
  assert.equal(ctx.problems, []);
});

test("a wrong password is refused on the form, and says so", async () => {
  const page = await openDashboard(ctx);
  await page.getByLabel("Username").fill(ctx.operators.viewer.username);
  await page.getByLabel("Password").fill("not-the-password");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").filter({ hasText: "Wrong username or password" }).waitFor();
  ctx.problems.length = 0; // the 401 of the login call is a console error by Chromium's own logging
});

/**
 * README_SCREENSHOT=1: the README's picture (docs/img/dashboard-fleet.png) from this run, once the
 * kiosks report telemetry (every second, set through the config API) so every column is filled in.
 */
async function readmeScreenshot(page: import("playwright-core").Page): Promise<void> {
  for (const k of ["k1", "k2"]) {
    const res = await ctx.site.operator("PUT", `/api/v1/devices/${ctx.site.site}/${k}/config`, {
      settings: { telemetryIntervalSeconds: 1 },
    });
    assert.is(res.status, 200, JSON.stringify(res.body));
  }
  await page.locator('tr[data-device="k2"] td.num', { hasText: /^\d/ }).waitFor({ timeout: 20_000 });
  await page.locator('tr[data-device="k1"] td', { hasText: "in-service" }).waitFor({ timeout: 20_000 });
  const target = fileURLToPath(new URL("../../docs/img/dashboard-fleet.png", import.meta.url));
  await mkdir(fileURLToPath(new URL("../../docs/img/", import.meta.url)), { recursive: true });
  await copyFile(await screenshot(ctx, page, "readme-fleet"), target);
  console.log(`  README screenshot: ${target}`);
}

test.run();
