/**
 * Browser test of the kiosk's payment flow: the built UI in Chromium against
 * the fake daemon, asserting what a member at the kiosk sees and what reaches
 * the daemon.
 *
 *   node --import tsx ui/test/kiosk-payments.test.ts
 *
 * Needs Chromium at /usr/bin/chromium (Debian's `chromium` package), or CHROMIUM=path.
 * Waits on the DOM with Playwright's waiting; the 60 s idle timeout runs on
 * Playwright's fake clock. Never sleeps.
 */

import type { PaymentResult, PaymentSession } from "@paylane/protocol/kiosk-api";
import type { Page } from "playwright-core";
import * as assert from "uvu/assert";
import {
  type KioskCtx as Ctx,
  exactly,
  kioskSuite,
  RECEIPT_QR,
  screenshot,
  seeScreen,
  syncLive,
} from "./kiosk-harness.ts";

// Chromium logs every 4xx answer; the refusals these tests provoke are expected.
const { test, it } = kioskSuite("kiosk payments", /status of (400|409|503)/);

/** Load the UI, count shown payment results in `window.paymentResults`, set result-ms / idle-ms. */
async function open(ctx: Ctx, attrs: { resultMs?: number; idleMs?: number } = {}): Promise<void> {
  await ctx.page.goto(ctx.base);
  await ctx.page.evaluate(({ resultMs, idleMs }) => {
    const w = window as unknown as { paymentResults: unknown[] };
    w.paymentResults = [];
    document.addEventListener("paylane-payment-result", (e) => w.paymentResults.push((e as CustomEvent).detail));
    const app = document.querySelector("paylane-kiosk");
    if (resultMs !== undefined) app?.setAttribute("result-ms", String(resultMs));
    if (idleMs !== undefined) app?.setAttribute("idle-ms", String(idleMs));
  }, attrs);
  await seeScreen(ctx.page, "attract", "Tap your card");
}

async function shownPaymentResults(page: Page): Promise<number> {
  return page.evaluate(() => (window as unknown as { paymentResults: unknown[] }).paymentResults.length);
}

/** The text of a test id, trimmed. */
async function text(page: Page, testId: string): Promise<string> {
  return ((await page.getByTestId(testId).textContent()) ?? "").replace(/\s+/g, " ").trim();
}

/** Pay → an item: the "tap your card" screen for its session. */
async function payFor(ctx: Ctx, itemId: string, prompt: string): Promise<PaymentSession> {
  await ctx.page.getByTestId("pay").click();
  await seeScreen(ctx.page, "pay");
  await ctx.page.getByTestId(`item-${itemId}`).click();
  await seeScreen(ctx.page, "payment", prompt);
  const session = ctx.daemon.session;
  assert.ok(session, "the daemon has a session");
  return session;
}

function resultFor(session: PaymentSession, extra: Partial<PaymentResult>): PaymentResult {
  return {
    sessionId: session.id,
    kind: session.kind,
    outcome: "approved",
    message: "Paid",
    amount: session.amount,
    currency: session.currency,
    ...(session.itemName ? { itemName: session.itemName } : {}),
    at: new Date().toISOString(),
    ...extra,
  };
}

it("Pay and Top up are offered only once the catalog is ready; check-in stays the default", async (ctx) => {
  ctx.daemon.catalog.ready = false;
  await open(ctx);
  assert.match(await text(ctx.page, "hint"), /to check in/);
  assert.is(await ctx.page.getByTestId("pay").count(), 0, "no Pay before the first sync");
  assert.is(await ctx.page.getByTestId("topup").count(), 0);

  ctx.daemon.catalog.ready = true;
  ctx.daemon.setState({ backlog: 1 }); // a state change makes the UI look at the catalog again
  await ctx.page.getByRole("button", { name: "Pay", exact: true }).waitFor();
  await ctx.page.getByRole("button", { name: "Top up", exact: true }).waitFor();
  for (const id of ["pay", "topup"]) {
    const box = await ctx.page.getByTestId(id).boundingBox();
    assert.ok(box && box.height >= 64, `${id} is ${box?.height}px high`);
  }
  await screenshot(ctx, "kiosk-attract-pay");

  // The terminal unplugged: no Top up until it is back, pushed with the kiosk's state (no catalog poll needed).
  ctx.daemon.setState({ terminal: "disconnected" });
  await ctx.page.getByTestId("topup").waitFor({ state: "detached" });
  assert.is(await ctx.page.getByTestId("pay").count(), 1, "paying from the wallet needs no terminal");
  ctx.daemon.setState({ terminal: "ready" });
  await ctx.page.getByRole("button", { name: "Top up", exact: true }).waitFor();

  // No payment terminal: no Top up.
  ctx.daemon.catalog.topups = false;
  ctx.daemon.setState({ backlog: 2 });
  await ctx.page.getByTestId("topup").waitFor({ state: "detached" });
  assert.is(await ctx.page.getByTestId("pay").count(), 1);
  await seeScreen(ctx.page, "attract", "Tap your card");
});

it("the price list shows each item with its price in the catalog's currency", async (ctx) => {
  await open(ctx);
  await ctx.page.getByTestId("pay").click();
  await seeScreen(ctx.page, "pay");
  assert.is(await text(ctx.page, "item-coffee"), "Coffee €2.50");
  assert.is(await text(ctx.page, "item-day-pass"), "Day pass €12.00");
  assert.is(await text(ctx.page, "item-towel"), "Towel €3.00");
  await screenshot(ctx, "kiosk-pay-menu");
  await ctx.page.getByTestId("back").click();
  await seeScreen(ctx.page, "attract", "Tap your card");
  assert.equal(ctx.daemon.paymentRequests, [], "looking at prices starts nothing");
});

it("pick an item, tap a card: approved, with the amount, the item and the new balance", async (ctx) => {
  await open(ctx);
  const session = await payFor(ctx, "coffee", "Tap your card to pay €2.50");
  assert.equal(ctx.daemon.paymentRequests, [{ path: "/api/payments", body: { itemId: "coffee" } }]);
  assert.is(await text(ctx.page, "hint"), "Coffee");
  await ctx.page.getByRole("button", { name: "Cancel" }).waitFor();
  await screenshot(ctx, "kiosk-pay-tap");

  // The simulated reader answers a tap during a session with the payment's result (and pushes it too).
  ctx.daemon.onTap = () => ({
    status: 200,
    push: true,
    body: resultFor(session, {
      message: "Paid €2.50 — new balance €7.50",
      name: "Ada Lovelace",
      balance: 750,
      authorization: "online",
      id: "7d0f9a2e-4b1c-4e8a-9f3d-1a2b3c4d5e6f",
    }),
  });
  await ctx.page.getByTestId("sim-uid").fill("04A1B2C3");
  await ctx.page.getByTestId("sim-tap").click();
  await seeScreen(ctx.page, "approved", "Paid €2.50 — new balance €7.50");
  assert.equal(ctx.daemon.taps, ["04A1B2C3"]);
  assert.is(await text(ctx.page, "amount"), "€2.50");
  assert.is(await text(ctx.page, "item"), "Coffee");
  assert.is(await text(ctx.page, "balance"), "New balance €7.50");
  assert.is(await ctx.page.getByTestId("offline-note").count(), 0);
  await ctx.page.getByRole("status").filter({ hasText: "New balance €7.50" }).waitFor();
  await screenshot(ctx, "kiosk-pay-approved");
  await syncLive(ctx, 1);
  assert.is(await shownPaymentResults(ctx.page), 1, "the HTTP answer and the push are one result");
});

it("declined for insufficient funds: the daemon's message and what it means", async (ctx) => {
  await open(ctx);
  const session = await payFor(ctx, "day-pass", "Tap your card to pay €12.00");
  // The card was tapped: the daemon is asking the cloud.
  ctx.daemon.pushPayment({ ...session, state: "authorizing" });
  await seeScreen(ctx.page, "payment", "Authorizing…");
  assert.is(await ctx.page.getByTestId("cancel").count(), 0, "no cancelling while authorizing");
  await screenshot(ctx, "kiosk-pay-authorizing");

  ctx.daemon.pushPaymentResult(
    resultFor(session, {
      outcome: "declined",
      reason: "insufficient-funds",
      message: "Insufficient funds: balance €1.00",
      balance: 100,
    }),
  );
  await seeScreen(ctx.page, "declined", "Insufficient funds: balance €1.00");
  const alert = ctx.page.getByRole("alert");
  await alert.waitFor();
  assert.match((await alert.textContent()) ?? "", /Insufficient funds: balance €1\.00/);
  assert.match(await text(ctx.page, "reason"), /balance is too low/);
  assert.is(await text(ctx.page, "amount"), "€12.00");
  assert.is(await ctx.page.getByTestId("balance").count(), 0, "no 'new balance' for a decline");
  await screenshot(ctx, "kiosk-pay-declined");
});

it("declined above the offline limit says the kiosk is offline", async (ctx) => {
  await open(ctx);
  ctx.daemon.setState({ online: false, cloud: false });
  await ctx.page.getByTestId("offline-badge").waitFor();
  const session = await payFor(ctx, "day-pass", "Tap your card to pay €12.00");
  const message = "This kiosk is offline; payments above €20.00 are not possible right now";
  ctx.daemon.pushPaymentResult(resultFor(session, { outcome: "declined", reason: "offline-limit", message }));
  await seeScreen(ctx.page, "declined", message);
  assert.match(await text(ctx.page, "reason"), /offline.*smaller amount/);
  await screenshot(ctx, "kiosk-pay-offline-limit");
});

it("approved offline: the new balance is marked (offline)", async (ctx) => {
  await open(ctx);
  const session = await payFor(ctx, "towel", "Tap your card to pay €3.00");
  ctx.daemon.pushPaymentResult(
    resultFor(session, { message: "Paid €3.00", balance: -50, authorization: "offline", id: "p-offline" }),
  );
  await seeScreen(ctx.page, "approved", "Paid €3.00");
  assert.is(await text(ctx.page, "balance"), "New balance -€0.50 (offline)");
  assert.match(await text(ctx.page, "offline-note"), /offline/);
});

it("Cancel cancels the session at the daemon and returns to the start", async (ctx) => {
  await open(ctx);
  await payFor(ctx, "coffee", "Tap your card to pay €2.50");
  await ctx.page.getByTestId("cancel").click();
  await seeScreen(ctx.page, "attract", "Tap your card");
  assert.is(ctx.daemon.cancels, 1);
  assert.is(ctx.daemon.session, undefined, "nothing left for the next card to pay");
  await syncLive(ctx, 1);
  await seeScreen(ctx.page, "attract", "Tap your card"); // the pushed payment-ended changes nothing
});

it("Cancel answered 409 (the card is already being authorized) waits for the result", async (ctx) => {
  await open(ctx);
  const session = await payFor(ctx, "coffee", "Tap your card to pay €2.50");
  ctx.daemon.session = { ...session, state: "authorizing" }; // the UI has not heard yet
  await ctx.page.getByTestId("cancel").click();
  await seeScreen(ctx.page, "payment", "Authorizing…");
  assert.is(ctx.daemon.cancels, 1);
  assert.is(await ctx.page.getByTestId("cancel").count(), 0);
  ctx.daemon.pushPaymentResult(resultFor(session, { message: "Paid €2.50", balance: 0, id: "p-409" }));
  await seeScreen(ctx.page, "approved", "Paid €2.50");
});

it("a session the daemon ends (timeout) returns to the start; one it pushes is shown", async (ctx) => {
  await open(ctx);
  // A session the page did not start (e.g. the page was reloaded mid-payment) is shown all the same.
  const session: PaymentSession = {
    id: "s-pushed",
    kind: "purchase",
    amount: 480,
    currency: "EUR",
    state: "awaiting-card",
    expiresAt: new Date(Date.now() + 60_000).toISOString(),
  };
  ctx.daemon.pushPayment(session);
  await seeScreen(ctx.page, "payment", "Tap your card to pay €4.80");
  ctx.daemon.pushPaymentEnded(session.id, "timeout");
  await seeScreen(ctx.page, "attract", "Tap your card");
  assert.is(ctx.daemon.cancels, 0);
});

it("idle on a payment screen for 60 s cancels the session and returns to the start", async (ctx) => {
  await ctx.page.clock.install();
  await open(ctx);
  await payFor(ctx, "coffee", "Tap your card to pay €2.50");
  await ctx.page.clock.fastForward(50_000);
  await syncLive(ctx, 1);
  await seeScreen(ctx.page, "payment", "Tap your card to pay €2.50");
  assert.is(ctx.daemon.cancels, 0, "not before a minute");
  await ctx.page.clock.fastForward(11_000);
  await seeScreen(ctx.page, "attract", "Tap your card");
  assert.is(ctx.daemon.cancels, 1);
  assert.is(ctx.daemon.session, undefined);
});

it("a touch restarts the idle countdown; an idle menu just goes back", async (ctx) => {
  await ctx.page.clock.install();
  await open(ctx);
  await ctx.page.getByTestId("pay").click();
  await seeScreen(ctx.page, "pay");
  await ctx.page.clock.fastForward(50_000);
  await ctx.page.getByTestId("message").click(); // a touch anywhere on the screen
  await ctx.page.clock.fastForward(50_000);
  await syncLive(ctx, 1);
  await seeScreen(ctx.page, "pay");
  await ctx.page.clock.fastForward(11_000);
  await seeScreen(ctx.page, "attract", "Tap your card");
  assert.is(ctx.daemon.cancels, 0, "no session to cancel");
});

it("idle-ms shortens the idle timeout", async (ctx) => {
  // The page's clock, paused: an installed clock still runs with the wall, and on a busy machine 300 real ms
  // can pass between the pay screen and the click on an item (the menu went back under the click).
  await ctx.page.clock.install();
  await open(ctx, { idleMs: 300 });
  await ctx.page.clock.pauseAt(Date.now() + 1_000);
  await payFor(ctx, "coffee", "Tap your card to pay €2.50");
  assert.is(ctx.daemon.cancels, 0, "nothing idles while the page's clock stands still");
  await ctx.page.clock.fastForward(400);
  await seeScreen(ctx.page, "attract", "Tap your card");
  assert.is(ctx.daemon.cancels, 1);
});

it("top-up: an amount, the member card, the terminal prompt, then the new balance", async (ctx) => {
  await open(ctx);
  await ctx.page.getByTestId("topup").click();
  await seeScreen(ctx.page, "topup", "Top up your wallet");
  await screenshot(ctx, "kiosk-topup-menu");
  assert.is(await text(ctx.page, "topup-1000"), "€10.00");
  assert.is(await text(ctx.page, "topup-5000"), "€50.00");
  await ctx.page.getByTestId("topup-2000").click();
  await seeScreen(ctx.page, "payment", "Tap your member card");
  assert.is(await text(ctx.page, "hint"), "to top up €20.00");
  assert.equal(ctx.daemon.paymentRequests, [{ path: "/api/topups", body: { amount: 2000 } }]);
  const session = ctx.daemon.session;
  assert.ok(session && session.kind === "topup");

  ctx.daemon.pushPayment({ ...session, state: "awaiting-terminal" });
  await seeScreen(ctx.page, "payment", "Pay €20.00 at the card terminal");
  await screenshot(ctx, "kiosk-topup-terminal");
  ctx.daemon.pushPaymentResult(
    resultFor(session, {
      message: "Topped up €20.00 — new balance €27.50",
      balance: 2750,
      authorization: "online",
      id: "t-1",
    }),
  );
  await seeScreen(ctx.page, "approved", "Topped up €20.00 — new balance €27.50");
  assert.is(await text(ctx.page, "balance"), "New balance €27.50");
  assert.is(await text(ctx.page, "amount"), "€20.00");
});

it("other amount: 2, 5, 0 on the keypad is 250 minor units, €2.50", async (ctx) => {
  await open(ctx);
  await ctx.page.getByTestId("pay").click();
  await ctx.page.getByTestId("other-amount").click();
  await seeScreen(ctx.page, "amount", "Other amount");
  assert.is(await text(ctx.page, "amount"), "€0.00");
  assert.ok(await ctx.page.getByTestId("amount-pay").isDisabled(), "nothing to pay yet");
  for (const d of [2, 5, 0]) await ctx.page.getByTestId(`key-${d}`).click();
  assert.is(await text(ctx.page, "amount"), "€2.50");
  assert.is(await text(ctx.page, "amount-pay"), "Pay €2.50");
  await screenshot(ctx, "kiosk-pay-keypad");
  for (const id of ["key-1", "key-delete", "amount-pay"]) {
    const box = await ctx.page.getByTestId(id).boundingBox();
    assert.ok(box && box.height >= 64, `${id} is ${box?.height}px high`);
  }
  await ctx.page.getByTestId("amount-pay").click();
  await seeScreen(ctx.page, "payment", "Tap your card to pay €2.50");
  assert.equal(ctx.daemon.paymentRequests, [{ path: "/api/payments", body: { amount: 250 } }]);
});

it("the keypad stops at maxAmount and can delete and clear", async (ctx) => {
  await open(ctx);
  await ctx.page.getByTestId("pay").click();
  await ctx.page.getByTestId("other-amount").click();
  for (const d of [5, 0, 0, 0]) await ctx.page.getByTestId(`key-${d}`).click();
  assert.is(await text(ctx.page, "amount"), "€50.00");
  await ctx.page.getByTestId("key-0").click(); // €500.00 is over the €50.00 limit
  assert.is(await text(ctx.page, "amount"), "€50.00");
  assert.match(await text(ctx.page, "amount-limit"), /€50\.00/);
  await ctx.page.getByTestId("key-delete").click();
  assert.is(await text(ctx.page, "amount"), "€5.00");
  await ctx.page.getByTestId("key-clear").click();
  assert.is(await text(ctx.page, "amount"), "€0.00");
  await ctx.page.getByTestId("back").click();
  await seeScreen(ctx.page, "pay");
});

it("a currency without minor units: 2, 5, 0 is ¥250", async (ctx) => {
  ctx.daemon.catalog = { ...ctx.daemon.catalog, currency: "JPY", items: [], maxAmount: 10_000 };
  await open(ctx);
  await ctx.page.getByTestId("pay").click();
  await ctx.page.getByTestId("other-amount").click();
  for (const d of [2, 5, 0]) await ctx.page.getByTestId(`key-${d}`).click();
  assert.is(await text(ctx.page, "amount"), "¥250");
  await ctx.page.getByTestId("amount-pay").click();
  await seeScreen(ctx.page, "payment", "Tap your card to pay ¥250");
  assert.equal(ctx.daemon.paymentRequests, [{ path: "/api/payments", body: { amount: 250 } }]);
});

it("a problem+json answer to a payment shows its detail and stays on the price list", async (ctx) => {
  const detail = "Payments are paused while the kiosk syncs its price list.";
  ctx.daemon.onPayment = () => ({
    status: 503,
    body: { type: "https://paylane.dev/problems/not-ready", title: "Not ready", status: 503, detail },
  });
  await open(ctx);
  await ctx.page.getByTestId("pay").click();
  await ctx.page.getByTestId("item-coffee").click();
  const error = ctx.page.getByRole("alert").filter({ hasText: exactly(detail) });
  await error.waitFor();
  await seeScreen(ctx.page, "pay");
  assert.is(ctx.daemon.session, undefined);
});

it("a payment's printed receipt is announced with its result, not another's", async (ctx) => {
  await open(ctx);
  const session = await payFor(ctx, "coffee", "Tap your card to pay €2.50");
  ctx.daemon.pushPaymentResult(resultFor(session, { message: "Paid €2.50", balance: 500, id: "pay-1" }));
  await seeScreen(ctx.page, "approved", "Paid €2.50");
  assert.is(await ctx.page.getByTestId("receipt").count(), 0, "nothing about a receipt before the printer answers");
  ctx.daemon.pushReceipt({ id: "someone-else", printed: true });
  await syncLive(ctx, 1);
  assert.is(await ctx.page.getByTestId("receipt").count(), 0, "another transaction's receipt is not this one");
  ctx.daemon.pushReceipt({ id: "pay-1", printed: true });
  await ctx.page.getByTestId("receipt").filter({ hasText: "Please take your receipt" }).waitFor();
});

it("a payment's receipt the printer could not print is offered as a QR code", async (ctx) => {
  await open(ctx);
  const session = await payFor(ctx, "towel", "Tap your card to pay €3.00");
  ctx.daemon.pushPaymentResult(resultFor(session, { message: "Paid €3.00", balance: 200, id: "pay-2" }));
  await seeScreen(ctx.page, "approved", "Paid €3.00");
  ctx.daemon.pushReceipt({ id: "pay-2", printed: false, reason: "paper-out", qr: RECEIPT_QR });
  const img = ctx.page.getByTestId("receipt-qr");
  await img.waitFor();
  assert.is(await img.getAttribute("src"), RECEIPT_QR);
  assert.match(await text(ctx.page, "receipt"), /out of paper/);
  await screenshot(ctx, "kiosk-pay-receipt-qr");
});

it("a payment result goes back to the start after result-ms", async (ctx) => {
  await open(ctx, { resultMs: 200 });
  const session = await payFor(ctx, "coffee", "Tap your card to pay €2.50");
  const pushed = Date.now();
  ctx.daemon.pushPaymentResult(resultFor(session, { message: "Paid €2.50", balance: 0 }));
  await seeScreen(ctx.page, "approved", "Paid €2.50");
  await seeScreen(ctx.page, "attract", "Tap your card");
  assert.ok(Date.now() - pushed >= 200, "the result stayed up for result-ms");
});

test.run();
