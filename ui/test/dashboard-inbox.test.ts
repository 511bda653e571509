/**
 * Inboxes and admin pages in real Chromium against a real site: a staff call
 * at a kiosk appears in the alerts inbox and an operator resolves it there; a
 * member checked in at two kiosks shows in the conflicts inbox with the rule
 * that decided it;
 * an admin adds an account on the Users page, the new account signs in with
 * only its role's navigation, and the audit log shows who added it.
 */
import * as assert from "uvu/assert";
import { demoCard } from "../../test/support/site.ts";
import { dashboardSuite, mainText, signIn } from "./dashboard-harness.ts";

const { test, ctx } = dashboardSuite("dashboard inboxes and admin", { kiosks: ["k1", "k2"] });

test("a staff call shows in the alerts inbox and an operator resolves it", async () => {
  const page = await signIn(ctx, "operator");
  await page.getByRole("link", { name: "Alerts" }).click();
  await page.getByRole("heading", { name: "Firing now" }).waitFor();
  const call = await ctx.site.kioskPost("k1", "/api/call-staff");
  assert.ok(call.ok, `call-staff answered ${call.status}`);
  const item = page.locator(".inbox-item", { hasText: "staff-called" });
  await item.waitFor({ timeout: 12_000 });
  assert.match(await mainText(page), /k1/);
  await item.getByRole("button", { name: "Resolve" }).click();
  await item.waitFor({ state: "detached", timeout: 8000 });
  // The journaled staff call stays in the kiosk's list below.
  await page.locator(".events li", { hasText: "staff" }).first().waitFor();
  assert.equal(ctx.problems, []);
});

test("a member checked in at two kiosks shows as a conflict, with the rule that decided it", async () => {
  const first = await ctx.site.kiosk("k2").tap(demoCard("m-alan"));
  const second = await ctx.site.kiosk("k1").tap(demoCard("m-alan"));
  assert.is(first.outcome, "welcome");
  assert.is(second.outcome, "welcome", "each kiosk checks only its own journal");
  await ctx.site.drained("k1");
  await ctx.site.drained("k2");
  const page = await signIn(ctx, "viewer");
  await page.getByRole("link", { name: "Conflicts" }).click();
  const row = page.locator("tr", { hasText: "duplicate-checkin" });
  await row.waitFor();
  const text = (await row.textContent()) ?? "";
  assert.match(text, /m-alan/);
  assert.match(text, /k1/);
  assert.match(text, /the earliest check-in of the site-local day wins/);
  assert.equal(ctx.problems, []);
});

test("an admin adds an account; it signs in with its role's navigation; the audit log says who", async () => {
  const page = await signIn(ctx, "admin");
  await page.getByRole("link", { name: "Users" }).click();
  const form = page.getByRole("form", { name: "Add a user" });
  await form.getByLabel("Username").fill("grace-ops");
  await form.getByLabel(/Password/).fill("a long enough passphrase");
  await form.getByLabel("Role").selectOption("finance");
  await form.getByRole("button", { name: "Add" }).click();
  await page.getByText("Added grace-ops (finance).").waitFor();
  await page.locator("tr", { hasText: "grace-ops" }).waitFor();

  await page.getByRole("link", { name: "Audit log" }).click();
  const row = page.locator("tr", { hasText: "POST /api/v1/users" }).first();
  await row.waitFor();
  assert.match((await row.textContent()) ?? "", new RegExp(ctx.operators.admin.username));
  assert.not.match(await mainText(page), /a long enough passphrase/, "no password in the audit log");

  ctx.operators.finance = { username: "grace-ops", password: "a long enough passphrase", role: "finance" };
  const grace = await signIn(ctx, "finance");
  const nav = (await grace.getByRole("navigation", { name: "Sections" }).textContent()) ?? "";
  assert.match(nav, /Wallets & ledger/);
  assert.not.match(nav, /Users|Audit log/);
  await grace.goto(`${ctx.base}#/users`);
  await grace.getByRole("heading", { name: "Not allowed" }).waitFor();
  assert.equal(ctx.problems, []);
});

test.run();
