/**
 * Payments end to end on real parts (Postgres, aedes, kiosk daemons with the
 * PN532 simulator): online authorization, offline authorization within the
 * site's limits while the cloud is away, reconciliation exactly once when it
 * returns, and two offline kiosks overdrawing one card.
 */
import { randomUUID } from "node:crypto";
import { PaymentIntents } from "@paylane/device";
import { type Telemetry, topics } from "@paylane/protocol";
import type { ReceiptNotice } from "@paylane/protocol/kiosk-api";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { loud } from "../support/hooks.ts";
import { record } from "../support/probe.ts";
import { demoCard as card, TestSite } from "../support/site.ts";

const it = suite("payments");
let site: TestSite;

it.before(
  loud("payments site setup", async () => {
    site = new TestSite({
      db: "pg",
      presence: "memory",
      broker: "aedes",
      kiosks: ["k1", "k2"],
      limits: { perPayment: 800, perCardDaily: 1000, kioskExposure: 5000 },
    });
    await site.start();
  }),
);
it.after(async () => {
  await site?.stop();
});

async function ledger(member: string) {
  const { rows } = await site.db.query<{
    kind: string;
    amount: number;
    authorization: string | null;
    origin_device: string;
  }>(
    `SELECT kind, amount, "authorization", origin_device FROM ledger_entries WHERE site_id = $1 AND member_id = $2 ORDER BY n`,
    [site.site, member],
  );
  return rows;
}

async function wallet(member: string) {
  const { rows } = await site.db.query<{ balance: number; offline_blocked: boolean }>(
    "SELECT balance, offline_blocked FROM wallets WHERE site_id = $1 AND member_id = $2",
    [site.site, member],
  );
  return rows[0]!;
}

async function cloudAway(): Promise<void> {
  await site.stopCloud("kill");
  for (const k of ["k1", "k2"]) {
    await site.signal.until(async () => !(await site.kiosk(k).state()).cloud, `${k} sees the cloud away`);
  }
}

async function cloudBack(): Promise<void> {
  await site.startCloud();
  for (const k of ["k1", "k2"]) {
    await site.signal.until(async () => (await site.kiosk(k).state()).online, `${k} sees the cloud back`);
  }
}

it("online: an item bought with a card is approved by the cloud with the new balance, and posted once", async () => {
  const k1 = site.kiosk("k1");
  const receipts: ReceiptNotice[] = [];
  k1.events.on("receipt-issued", (n) => receipts.push(n));
  const session = await k1.payments.start({ kind: "purchase", itemId: "coffee" });
  assert.is(session.amount, 250);
  const r = await k1.tapToPay(card("m-ada"));
  // this kiosk has no printer: the receipt is offered on screen as a QR code of the payment key
  const notice = await site.signal.until(() => receipts.find((n) => n.id === r.id), "the receipt notice");
  assert.ok(!notice.printed && notice.qr.startsWith("data:image/svg+xml;base64,"));
  assert.is(r.outcome, "approved", r.message);
  assert.is(r.authorization, "online");
  assert.is(r.balance, 2250);
  assert.is(r.message, "Thank you, Ada Lovelace");
  await site.drained("k1");
  const rows = await ledger("m-ada");
  assert.equal(
    rows.map((e) => [e.kind, e.amount, e.authorization]),
    [
      ["topup", 2500, null],
      ["purchase", -250, "online"],
    ],
    "the journal entry that followed the online approval posted nothing more",
  );
  assert.is((await wallet("m-ada")).balance, 2250);
  // authorized before it was journaled, the purchase still names its kiosk seq: the journal entry linked it
  const journaled = (await k1.journal.entriesAfter(0, 100)).find((e) => e.kind === "payment" && e.body.key === r.id);
  const entries = await site.operator("GET", `/api/v1/wallets/${site.site}/m-ada/entries`);
  const purchase = (entries.body.items as Array<{ kind: string; origin: unknown }>).find((e) => e.kind === "purchase");
  assert.equal(purchase?.origin, { device: "k1", seq: journaled?.seq });
  // ops count them: the kiosk by outcome and authorization, the cloud by answer
  const kioskMetrics = await (await fetch(`http://127.0.0.1:${k1.port}/metrics`)).text();
  assert.match(
    kioskMetrics,
    /paylane_device_payments_total\{kind="purchase",outcome="approved",authorization="online"\} 1/,
  );
  assert.match(kioskMetrics, /paylane_device_offline_exposure_minor 0/);
  const cloudMetrics = await site.cloudMetrics();
  assert.match(cloudMetrics, /paylane_cloud_payment_authorizations_total\{answer="approved",reason=""\} 1/);
});

it("a payment a crash left unanswered is voided, never charged later: the member left without an answer", async () => {
  const k1 = site.kiosk("k1");
  const key = randomUUID();
  const request = {
    key,
    memberId: "m-ada",
    amount: 250,
    currency: "EUR",
    itemId: "coffee",
    at: new Date().toISOString(),
  };
  // what a kiosk that died right after writing its intent, before asking, leaves behind
  const intents = await PaymentIntents.open(k1.journal);
  await intents.record({
    key,
    kind: "purchase",
    memberId: "m-ada",
    amount: 250,
    currency: "EUR",
    request,
    createdAt: request.at,
  });
  const before = (await wallet("m-ada")).balance;
  await k1.payments.resolvePending();
  assert.equal(await intents.pending(), []);
  assert.is((await ledger("m-ada")).length, 2, "no new entry");
  assert.is((await wallet("m-ada")).balance, before);
  const { rows } = await site.db.query<{ response: { reason: string } }>(
    "SELECT response FROM idempotency_keys WHERE site_id = $1 AND key = $2",
    [site.site, key],
  );
  assert.is(rows[0]?.response.reason, "voided", "the key is settled as void in the cloud");
});

it("online: insufficient funds is a decline that says the balance, and nothing is posted", async () => {
  const k1 = site.kiosk("k1");
  await k1.payments.start({ kind: "purchase", itemId: "day-pass" });
  const r = await k1.tapToPay(card("m-alan"));
  assert.is(r.outcome, "declined");
  assert.is(r.reason, "insufficient-funds");
  assert.match(r.message, /€1\.50/);
  assert.is((await ledger("m-alan")).length, 1, "only the opening balance");
});

it("a cancelled payment, or one left alone, charges nothing and the next tap checks in", async () => {
  const k1 = site.kiosk("k1");
  await k1.payments.start({ kind: "purchase", amount: 100 });
  assert.ok(k1.payments.cancel());
  const checkin = await k1.tap(card("m-katherine"));
  assert.is(checkin.outcome, "welcome");
  const busy = await k1.payments.start({ kind: "purchase", amount: 100 });
  const second = await k1.payments.start({ kind: "purchase", amount: 100 }).then(
    () => "started",
    (err: Error) => err.message,
  );
  assert.match(second, /already in progress/);
  assert.ok(k1.payments.cancel());
  assert.ok(busy.expiresAt > new Date().toISOString());
});

it("the cloud away: offline within the limits, each cap at its boundary, then reconciled once", async () => {
  // Katherine gets money from an operator first (idempotent: the retry changes nothing).
  const key = { "idempotency-key": "topup-katherine-1" };
  const first = await site.operator(
    "POST",
    `/api/v1/wallets/${site.site}/m-katherine/topups`,
    { amount: 3000, currency: "EUR" },
    key,
  );
  const again = await site.operator(
    "POST",
    `/api/v1/wallets/${site.site}/m-katherine/topups`,
    { amount: 3000, currency: "EUR" },
    key,
  );
  assert.is(first.status, 201);
  assert.equal(again.body, first.body);
  assert.is(again.headers.get("idempotent-replayed"), "true");
  await site.kiosk("k2").replicaSync.syncNow();
  await cloudAway();
  const k2 = site.kiosk("k2");
  const pay = async (amount: number) => {
    await k2.payments.start({ kind: "purchase", amount });
    return k2.tapToPay(card("m-katherine"));
  };
  const over = await pay(801);
  assert.is(over.outcome, "declined");
  assert.is(over.reason, "offline-limit");
  assert.is(over.message, "This kiosk is offline; payments above €8.00 are not possible right now.");
  const atCap = await pay(800);
  assert.is(atCap.outcome, "approved", atCap.message);
  assert.is(atCap.authorization, "offline");
  assert.is(atCap.balance, 2200);
  // the card's daily offline cap (10.00): 2.00 left of it
  const overDaily = await pay(201);
  assert.is(overDaily.reason, "offline-limit");
  assert.match(overDaily.message, /above €2\.00/);
  assert.is((await pay(200)).outcome, "approved");
  const exposure = await k2.payments.exposure();
  assert.equal(exposure, { currency: "EUR", offlineExposure: 1000, offlinePayments: 2, cap: 5000 });
  await cloudBack();
  await site.drained("k2");
  const rows = (await ledger("m-katherine")).filter((e) => e.kind === "purchase");
  assert.equal(
    rows.map((e) => [e.amount, e.authorization, e.origin_device]),
    [
      [-800, "offline", "k2"],
      [-200, "offline", "k2"],
    ],
  );
  assert.is((await wallet("m-katherine")).balance, 2000);
  assert.equal(await k2.payments.exposure(), { currency: "EUR", offlineExposure: 0, offlinePayments: 0, cap: 5000 });
});

it("two offline kiosks overdraw one card: both recorded, balance negative, one conflict, card blocked offline", async () => {
  await cloudAway();
  const grace = card("m-grace"); // 10.00 on her wallet
  for (const k of ["k1", "k2"]) {
    const kiosk = site.kiosk(k);
    await kiosk.payments.start({ kind: "purchase", amount: 700 });
    const r = await kiosk.tapToPay(grace);
    assert.is(r.outcome, "approved", `${k}: ${r.message}`);
    assert.is(r.balance, 300, `${k} alone saw 10.00 - 7.00`);
  }
  await cloudBack();
  await site.drained("k1");
  await site.drained("k2");
  const purchases = (await ledger("m-grace")).filter((e) => e.kind === "purchase");
  assert.equal(
    purchases.map((e) => e.amount),
    [-700, -700],
  );
  assert.equal(await wallet("m-grace"), { balance: -400, offline_blocked: true });
  const conflicts = await site.operator("GET", `/api/v1/conflicts?site=${site.site}&kind=wallet-overdraft`);
  const items = conflicts.body.items as Array<{
    memberId: string;
    detail: { settled: boolean; balanceAtOpen: number };
  }>;
  assert.is(items.length, 1, "one conflict for the wallet, not one per payment");
  assert.is(items[0]!.memberId, "m-grace");
  assert.is(items[0]!.detail.settled, false);

  // the kiosks learn the block, and refuse offline spending on that card until it is settled
  const k1 = site.kiosk("k1");
  await k1.replicaSync.syncNow();
  await cloudAway();
  await k1.payments.start({ kind: "purchase", amount: 100 });
  const blocked = await k1.tapToPay(grace);
  assert.is(blocked.outcome, "declined");
  assert.is(blocked.reason, "wallet-blocked");
  await cloudBack();
  const settle = await site.operator(
    "POST",
    `/api/v1/wallets/${site.site}/m-grace/topups`,
    { amount: 1000, currency: "EUR", note: "settles the overdraft" },
    { "idempotency-key": "settle-grace-1" },
  );
  assert.is(settle.status, 201);
  assert.equal(await wallet("m-grace"), { balance: 600, offline_blocked: false });
  const after = await site.operator("GET", `/api/v1/conflicts?site=${site.site}&kind=wallet-overdraft`);
  assert.is((after.body.items as Array<{ detail: { settled: boolean } }>)[0]!.detail.settled, true);
});

it("ops see each kiosk's offline exposure live on MQTT, and per kiosk and per site from the API", async () => {
  const ops = await site.opsClient();
  const seen = await record<Telemetry>(ops, topics.telemetry(site.address("k1")), site.signal);
  await cloudAway();
  const k1 = site.kiosk("k1");
  await k1.payments.start({ kind: "purchase", itemId: "water" });
  assert.is((await k1.tapToPay(card("m-ada"))).outcome, "approved");
  // the broker is up while the cloud is away: ops watching the topic see the exposure at once
  await k1.sendTelemetryNow();
  const live = await site.signal.until(() => seen.find((t) => (t.payments?.offlineExposure ?? 0) > 0), "live exposure");
  assert.equal(live.payments, { currency: "EUR", offlineExposure: 150, offlinePayments: 1, cap: 5000 });

  await cloudBack();
  await site.drained("k1");
  // each report re-checks the API, so this waits on the bridge's copy of the telemetry, not on a clock
  const reported = await site.signal.until(async () => {
    const e = await site.operator("GET", `/api/v1/exposure?site=${site.site}`);
    const kiosks = e.body.kiosks as Array<{ device: string; payments: { offlineExposure: number } | null }>;
    const mine = kiosks.find((k) => k.device === "k1");
    if (mine?.payments?.offlineExposure === 0) return e.body;
    await k1.sendTelemetryNow();
    return undefined;
  }, "exposure reconciled in the API");
  assert.equal(reported.totals, [{ currency: "EUR", offlineExposure: 0, offlinePayments: 0 }]);
  const anonymous = await fetch(new URL(`/api/v1/exposure?site=${site.site}`, site.cloud!.url));
  assert.is(anonymous.status, 401, "operator routes need a token");
  assert.is(anonymous.headers.get("content-type"), "application/problem+json");
});

it.run();
