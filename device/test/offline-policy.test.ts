/**
 * Offline authorization at every boundary: each cap exactly at its limit is
 * approved and one minor unit above it is declined, saying the limit.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { decideOffline, type OfflineFacts } from "../src/payments/offline-policy.ts";

const limits = { perPayment: 2000, perCardDaily: 5000, kioskExposure: 20_000 };
const facts = (f: Partial<OfflineFacts>): OfflineFacts => ({
  amount: 100,
  currency: "EUR",
  limits,
  available: 100_000,
  offlineBlocked: false,
  offlineSpentToday: 0,
  kioskExposure: 0,
  ...f,
});

test("per payment: the cap is allowed, a cent more is not", () => {
  assert.equal(decideOffline(facts({ amount: 2000 })), { approved: true });
  assert.equal(decideOffline(facts({ amount: 2001 })), {
    approved: false,
    reason: "offline-limit",
    message: "This kiosk is offline; payments above €20.00 are not possible right now.",
  });
});

test("per card per day: what is left of the card's daily cap is the limit", () => {
  assert.equal(decideOffline(facts({ amount: 1500, offlineSpentToday: 3500 })), { approved: true });
  const over = decideOffline(facts({ amount: 1501, offlineSpentToday: 3500 }));
  assert.ok(!over.approved && over.reason === "offline-limit");
  assert.match(!over.approved ? over.message : "", /above €15\.00/);
});

test("per kiosk: the exposure cap counts every unreconciled offline payment", () => {
  assert.equal(decideOffline(facts({ amount: 500, kioskExposure: 19_500 })), { approved: true });
  const over = decideOffline(facts({ amount: 501, kioskExposure: 19_500 }));
  assert.ok(!over.approved && over.reason === "offline-limit");
  assert.match(!over.approved ? over.message : "", /above €5\.00/);
  const full = decideOffline(facts({ amount: 1, kioskExposure: 20_000 }));
  assert.equal(full, {
    approved: false,
    reason: "offline-limit",
    message: "This kiosk is offline; payments are not possible right now.",
  });
});

test("the money must be there: the available balance is the limit, exactly", () => {
  assert.equal(decideOffline(facts({ amount: 700, available: 700 })), { approved: true });
  const short = decideOffline(facts({ amount: 701, available: 700 }));
  assert.equal(short, {
    approved: false,
    reason: "insufficient-funds",
    message: "Insufficient funds: the balance is €7.00.",
  });
  const negative = decideOffline(facts({ amount: 1, available: -400 }));
  assert.ok(!negative.approved && negative.reason === "insufficient-funds");
});

test("a card blocked after an overdraft cannot pay offline, whatever the amount", () => {
  const r = decideOffline(facts({ amount: 1, offlineBlocked: true }));
  assert.ok(!r.approved && r.reason === "wallet-blocked");
});

test("before its first sync a kiosk takes no offline payment (no limits, no balances)", () => {
  const r = decideOffline(facts({ limits: null }));
  assert.ok(!r.approved && r.reason === "offline-not-ready");
});

test("the limit named is the tightest of the three, in the site's currency", () => {
  const r = decideOffline(
    facts({ currency: "JPY", limits: { perPayment: 3000, perCardDaily: 2500, kioskExposure: 10_000 }, amount: 2600 }),
  );
  assert.match(!r.approved ? r.message : "", /above ¥2,500/);
});

test.run();
