/**
 * Money in real Chromium against a real site: a member pays at a kiosk,
 * finance refunds the payment from the dashboard and sees the balance change
 * (one refund, with one Idempotency-Key, even when the button is clicked
 * twice); a viewer has no ledger entry in the navigation and the ledger's URL
 * says "Not allowed" instead of showing it.
 */
import * as assert from "uvu/assert";
import { demoCard } from "../../test/support/site.ts";
import { dashboardSuite, mainText, signIn } from "./dashboard-harness.ts";

const { test, ctx } = dashboardSuite("dashboard money", { kiosks: ["k1"] });

test("finance refunds a payment and sees the balance change", async () => {
  const k1 = ctx.site.kiosk("k1");
  await k1.payments.start({ kind: "purchase", itemId: "coffee" });
  const paid = await k1.tapToPay(demoCard("m-ada"));
  assert.is(paid.outcome, "approved");
  await ctx.site.drained("k1");

  const page = await signIn(ctx, "finance");
  await page.getByRole("link", { name: "Wallets & ledger" }).click();
  const ada = page.locator('tr[data-member="m-ada"] .balance');
  await ada.waitFor();
  // 25.00 opening balance, less a 2.50 coffee.
  assert.is((await ada.textContent()) ?? "", "€22.50");
  const refunds: string[] = [];
  page.on("request", (r) => {
    if (r.method() === "POST" && r.url().includes("/refunds")) refunds.push(r.headers()["idempotency-key"] ?? "");
  });
  await page.locator("tr[data-payment]").first().getByRole("button", { name: "Refund" }).click();
  await page.getByLabel("Reason").fill("coffee machine was broken");
  assert.is(await page.getByLabel(/Amount/).inputValue(), "2.50");
  // Clicked twice: the button is busy after the first, and a second send would carry the same key.
  await page.locator("form.refund").getByRole("button", { name: "Refund" }).dblclick();
  await page.getByText("Refunded €2.50 to m-ada; balance now €25.00.").waitFor();
  await page.locator('tr[data-member="m-ada"] .balance', { hasText: "€25.00" }).waitFor();
  assert.ok(refunds.length >= 1, "the refund was sent");
  assert.match(refunds[0]!, /^[0-9a-f-]{36}$/);
  assert.equal([...new Set(refunds)], [refunds[0]], "one Idempotency-Key for the one intent");
  const ledger = await ctx.site.operator("GET", `/api/v1/ledger?site=${ctx.site.site}&limit=50`);
  assert.is(ledger.status, 200);
  const entries = ledger.body.items as Array<{ kind: string; memberId: string }>;
  assert.is(entries.filter((e) => e.kind === "refund" && e.memberId === "m-ada").length, 1, "one refund");
  // The ledger shows the refund, with who made it: its table reloads after the balance, so wait for the row.
  const row = new RegExp(`refund m-ada €2\\.50 €25\\.00 ${ctx.operators.finance.username}`);
  await page.locator("main tr", { hasText: ctx.operators.finance.username }).first().waitFor();
  assert.match(await mainText(page), row);
  assert.equal(ctx.problems, []);
});

test("a viewer has no ledger in the navigation, and its URL says not allowed", async () => {
  const page = await signIn(ctx, "viewer");
  const nav = (await page.getByRole("navigation", { name: "Sections" }).textContent()) ?? "";
  assert.not.match(nav, /Wallets|ledger|Users|Audit/);
  const calls: string[] = [];
  page.on("request", (r) => calls.push(new URL(r.url()).pathname));
  await page.goto(`${ctx.base}#/money`);
  await page.getByRole("heading", { name: "Not allowed" }).waitFor();
  assert.match(await mainText(page), /needs the money:read permission.*viewer role/);
  assert.not.ok(
    calls.some((p) => /wallets|ledger|payments/.test(p)),
    "the page asks the cloud for no money data",
  );
  assert.not.match(await mainText(page), /€/);
  assert.equal(ctx.problems, []);
});

test.run();
