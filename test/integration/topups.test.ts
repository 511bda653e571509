/**
 * Top-ups at the kiosk through the card terminal: the real ZVT driver against
 * the simulated terminal on TCP. Approved, the money reaches the wallet once;
 * declined, dropped mid-transaction or cancelled, nothing is added and the
 * member reads why. (A terminal that never answers is the driver's timeout,
 * tested with injected timers in device/test/hardware/terminal-zvt.test.ts.)
 */
import { PaymentIntents, type PaymentProgress } from "@paylane/device";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { loud } from "../support/hooks.ts";
import { demoCard, TestSite } from "../support/site.ts";

const it = suite("topups");
const GRACE = demoCard("m-grace");
let site: TestSite;

it.before(
  loud("topups site setup", async () => {
    site = new TestSite({
      db: "pg",
      presence: "memory",
      broker: "aedes",
      kiosks: ["k1"],
      probes: [],
      hardware: { k1: { printer: { type: "simulator" }, terminal: { type: "zvt-simulator" } } },
    });
    await site.start();
  }),
);
it.after(async () => {
  await site?.stop();
});

async function topups(): Promise<Array<{ amount: number; note: string }>> {
  const { rows } = await site.db.query<{ amount: number; note: string }>(
    "SELECT amount, note FROM ledger_entries WHERE site_id = $1 AND member_id = 'm-grace' AND kind = 'topup' AND origin_device IS NOT NULL ORDER BY n",
    [site.site],
  );
  return rows;
}

it("approved at the terminal: the wallet is credited once, the receipt names the card by brand and last four", async () => {
  const k1 = site.kiosk("k1");
  const session = await k1.payments.start({ kind: "topup", amount: 2000 });
  assert.is(session.state, "awaiting-card");
  const r = await k1.tapToPay(GRACE);
  assert.is(r.outcome, "approved", r.message);
  assert.is(r.kind, "topup");
  assert.is(r.balance, 3000, "10.00 + 20.00");
  assert.is(k1.terminalSimulator!.lastCharge?.amount, 2000);
  await site.drained("k1");
  const rows = await topups();
  assert.is(rows.length, 1);
  assert.is(rows[0]!.amount, 2000);
  assert.match(rows[0]!.note, /^terminal /);
  const receipt = JSON.stringify(k1.peripherals.simulators.printer!.receipts.at(-1));
  assert.match(receipt, /Wallet top-up \(VISA •••• 4242\)/);
});

it("declined by the card's bank: nothing added, and the member reads that the card was declined", async () => {
  const k1 = site.kiosk("k1");
  k1.terminalSimulator!.nextOutcome("decline");
  await k1.payments.start({ kind: "topup", amount: 1000 });
  const r = await k1.tapToPay(GRACE);
  assert.is(r.outcome, "declined");
  assert.is(r.reason, "terminal-declined");
  assert.match(r.message, /card was declined/);
  assert.equal(await (await PaymentIntents.open(k1.journal)).pending(), []);
  await site.drained("k1");
  assert.is((await topups()).length, 1, "still only the first top-up");
});

it("the terminal drops the link mid-transaction: nothing added, and the member is told no money moved to the wallet", async () => {
  const k1 = site.kiosk("k1");
  k1.terminalSimulator!.nextOutcome("disconnect");
  await k1.payments.start({ kind: "topup", amount: 1000 });
  const r = await k1.tapToPay(GRACE);
  assert.is(r.outcome, "declined");
  assert.is(r.reason, "terminal-disconnected");
  assert.match(r.message, /Nothing was added to your wallet/);
  // the next top-up reconnects and works
  await k1.payments.start({ kind: "topup", amount: 500 });
  assert.is((await k1.tapToPay(GRACE)).outcome, "approved");
  await site.drained("k1");
  assert.equal(
    (await topups()).map((t) => t.amount),
    [2000, 500],
  );
});

it("cancelled while the terminal waits for the card: the terminal aborts, nothing is charged or added", async () => {
  const k1 = site.kiosk("k1");
  k1.terminalSimulator!.nextOutcome("timeout"); // the terminal would wait for a card that never comes
  await k1.payments.start({ kind: "topup", amount: 1000 });
  const waiting = new Promise<void>((resolve) => {
    const onSession = (p: PaymentProgress) => {
      if (p.step !== "session" || p.session.state !== "awaiting-terminal") return;
      k1.events.off("payment-progressed", onSession);
      resolve();
    };
    k1.events.on("payment-progressed", onSession);
  });
  const answer = k1.tapToPay(GRACE);
  await waiting;
  assert.ok(k1.payments.cancel());
  const r = await answer;
  assert.is(r.outcome, "declined");
  assert.is(r.reason, "cancelled");
  await site.drained("k1");
  assert.is((await topups()).length, 2);
  assert.equal(await (await PaymentIntents.open(k1.journal)).pending(), []);
});

it.run();
