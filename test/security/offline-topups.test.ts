/**
 * Issue 12, "Money and the ledger": offline top-ups are off by default; where
 * a site enables them they credit only up to a per-kiosk daily cap and stay
 * `pending` until matched against the payment terminal's end-of-day totals
 * (ZVT End-of-Day), which the kiosk reports.
 *
 * The real kiosk daemon with the real ZVT driver against the simulated
 * terminal on TCP; the cloud stopped to make the kiosk offline. The last test
 * is the attacker's: with the kiosk's stolen MQTT secret, forged offline
 * top-ups beyond the cap and a forged settlement credit nothing and raise an
 * alert. Before this work every offline top-up was declined ("Top-ups need a
 * connection"), and a journaled top-up without an intent was only ever an
 * exception: the tests below that expect pending and settled top-ups fail on
 * that main.
 */
import { randomUUID } from "node:crypto";
import { type Entry, type TerminalSettlementBody, topics } from "@paylane/protocol";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { KioskDaemon } from "../../device/src/daemon.ts";
import { loud } from "../support/hooks.ts";
import { batch, record } from "../support/probe.ts";
import { demoCard, TestSite } from "../support/site.ts";

const it = suite("offline top-ups");
const GRACE = demoCard("m-grace");
let site: TestSite;
let k1: KioskDaemon;

it.before(
  loud("offline top-ups site setup", async () => {
    site = new TestSite({
      db: "pg",
      presence: "memory",
      broker: "aedes",
      kiosks: ["k1"],
      probes: [],
      hardware: { k1: { printer: { type: "simulator" }, terminal: { type: "zvt-simulator" } } },
    });
    await site.start();
    k1 = site.kiosk("k1");
  }),
);
it.after(async () => {
  await site?.stop();
});

async function balance(memberId = "m-grace"): Promise<number> {
  const { rows } = await site.db.query<{ balance: string }>(
    "SELECT balance FROM wallets WHERE site_id = $1 AND member_id = $2",
    [site.site, memberId],
  );
  return Number(rows[0]?.balance ?? 0);
}

async function offlineTopups(): Promise<Array<{ amount: number; status: string; reference: string }>> {
  const { rows } = await site.db.query<{ amount: string; status: string; terminal_reference: string }>(
    "SELECT amount, status, terminal_reference FROM offline_topups WHERE site_id = $1 AND device_id = 'k1' ORDER BY seq",
    [site.site],
  );
  return rows.map((r) => ({ amount: Number(r.amount), status: r.status, reference: r.terminal_reference }));
}

async function kioskTopupCredits(): Promise<number> {
  return site.count(
    "SELECT count(*) AS n FROM ledger_entries WHERE site_id = $1 AND kind = 'topup' AND origin_device = 'k1'",
    [site.site],
  );
}

async function exceptions(): Promise<Array<{ seq: number; reason: string }>> {
  const { rows } = await site.db.query<{ seq: string; reason: string }>(
    "SELECT seq, reason FROM ledger_exceptions WHERE site_id = $1 AND device_id = 'k1' ORDER BY seq",
    [site.site],
  );
  return rows.map((r) => ({ seq: Number(r.seq), reason: r.reason }));
}

/** PUT the site's offline limits as an admin, and let the kiosk pull them. */
async function setLimits(topupDaily: number | undefined): Promise<void> {
  const res = await fetch(new URL(`/api/v1/sites/${site.site}/offline-limits`, site.cloud!.url), {
    method: "PUT",
    headers: {
      authorization: `Bearer ${await site.operatorToken("admin")}`,
      "content-type": "application/json",
    },
    body: JSON.stringify({
      perPayment: 2000,
      perCardDaily: 5000,
      kioskExposure: 20000,
      ...(topupDaily === undefined ? {} : { topupDaily }),
    }),
  });
  const body = (await res.json()) as Record<string, unknown>;
  assert.is(res.status, 200, JSON.stringify(body));
  if (topupDaily !== undefined) assert.is(body.topupDaily, topupDaily);
  // a pull already running (the kiosk pulls when the cloud comes back) may predate the PUT: a fresh one after it
  await k1.replicaSync.idle();
  await k1.replicaSync.syncNow();
}

async function cloudAway(): Promise<void> {
  await site.stopCloud();
  await site.signal.until(() => !k1.uplink.online, "k1 sees the cloud gone");
}

async function cloudBack(): Promise<void> {
  await site.startCloud();
  await site.signal.until(() => k1.uplink.online, "k1 sees the cloud back");
  await site.drained("k1");
}

async function topup(amount: number) {
  await k1.payments.start({ kind: "topup", amount });
  return k1.tapToPay(GRACE);
}

it("off by default: offline, the top-up is declined and the card is not charged", async () => {
  const charges = k1.terminalSimulator!.stats.charges;
  await cloudAway();
  const r = await topup(2000);
  assert.is(r.outcome, "declined");
  assert.is(r.reason, "offline");
  assert.match(r.message, /not been charged/);
  assert.is(k1.terminalSimulator!.stats.charges, charges, "the terminal was never asked");
  await cloudBack();
  assert.equal(await offlineTopups(), []);
});

it("enabled with a cap: within the cap approved as pending (balance unchanged, in the cloud too); one cent over declined", async () => {
  // an online top-up first: the terminal's batch will hold online and offline top-ups together
  const online = await topup(500);
  assert.is(online.outcome, "approved", online.message);
  assert.is(online.balance, 1500);
  await site.drained("k1");
  assert.is(await balance(), 1500);

  await setLimits(3000);
  await cloudAway();
  const first = await topup(2000);
  assert.is(first.outcome, "approved", first.message);
  assert.is(first.authorization, "offline");
  assert.is(first.pending, true);
  assert.match(first.message, /pending/);
  assert.is(first.balance, 1500, "the screen's balance does not include a pending top-up");
  assert.is(k1.terminalSimulator!.lastCharge?.amount, 2000, "the card was charged");

  const charges = k1.terminalSimulator!.stats.charges;
  const over = await topup(1001);
  assert.is(over.outcome, "declined", "2000 + 1001 is one cent over the 3000 cap");
  assert.is(over.reason, "offline-limit");
  assert.match(over.message, /top-ups above €10\.00 are not possible right now/);
  assert.is(k1.terminalSimulator!.stats.charges, charges, "and that card was not charged");

  const last = await topup(1000);
  assert.is(last.outcome, "approved", "2000 + 1000 is exactly the cap");
  assert.is(last.balance, 1500);

  await cloudBack();
  assert.equal(
    (await offlineTopups()).map((t) => [t.amount, t.status]),
    [
      [2000, "pending"],
      [1000, "pending"],
    ],
  );
  assert.is(await balance(), 1500, "the cloud credited nothing yet");
  assert.is(await kioskTopupCredits(), 1, "only the online top-up is in the ledger");
  assert.equal(await exceptions(), []);
});

it("the terminal's end-of-day, reported by the kiosk: the pending top-ups are credited once; a second settlement or a redelivery credits nothing more", async () => {
  // as a tool on the kiosk (or a daily timer) runs it: the local API, with the kiosk's token
  const res = await site.kioskPost("k1", "/api/terminal/end-of-day");
  const body = (await res.json()) as TerminalSettlementBody;
  assert.is(res.status, 200, JSON.stringify(body));
  assert.is(body.total, 3500, "the terminal's batch: 5.00 online + 20.00 + 10.00 offline");
  assert.is(body.count, 3);
  assert.is(body.references.length, 3);
  await site.drained("k1");
  assert.is(await balance(), 4500, "15.00 + 30.00 credited at settlement");
  assert.equal(
    (await offlineTopups()).map((t) => t.status),
    ["credited", "credited"],
  );
  assert.is(await kioskTopupCredits(), 3);
  const { rows } = await site.db.query<{ authorization: string; origin_seq: string }>(
    `SELECT "authorization", origin_seq FROM ledger_entries
     WHERE site_id = $1 AND kind = 'topup' AND origin_device = 'k1' AND "authorization" = 'offline'`,
    [site.site],
  );
  assert.is(rows.length, 2, "traceable: authorization offline, the top-up's own kiosk seq");

  // The kiosk runs end-of-day again: an empty batch, nothing to credit.
  const again = await k1.payments.settleTerminal();
  assert.equal([again.total, again.count, again.references], [0, 0, []]);
  await site.drained("k1");

  // The settlement entry delivered a second time (a republish after a lost ack): a duplicate, nothing applied.
  const entries = await k1.journal.entriesAfter(0, 10_000);
  const settlement = entries.find((e) => e.kind === "terminal-settlement")!;
  await publishAsKiosk([settlement]);
  assert.is(await balance(), 4500);
  assert.is(await kioskTopupCredits(), 3);
  assert.equal(await exceptions(), []);
});

it("with the kiosk's stolen secret: forged offline top-ups over the cap or with the cap off, and a forged settlement, credit nothing and raise alerts", async () => {
  // One more genuine offline top-up, pending.
  await setLimits(5000);
  await cloudAway();
  const pending = await topup(700);
  assert.is(pending.outcome, "approved", pending.message);
  await cloudBack();
  const held = (await offlineTopups()).at(-1)!;
  assert.equal([held.amount, held.status], [700, "pending"]);
  const before = await balance();

  // The thief stops the kiosk and publishes as it, at its next seqs.
  await k1.stop();
  site.kiosks.delete("k1");
  let seq = (
    await site.db.query<{ acked_seq: string }>(
      "SELECT acked_seq FROM device_streams WHERE site_id = $1 AND device_id = 'k1'",
      [site.site],
    )
  ).rows.map((r) => Number(r.acked_seq))[0]!;
  const entry = (kind: string, body: Record<string, unknown>): Entry => ({
    seq: ++seq,
    id: randomUUID(),
    kind,
    at: new Date().toISOString(),
    body,
  });
  const forgedTopup = (amount: number, reference: string) =>
    entry("topup", {
      key: randomUUID(),
      memberId: "m-grace",
      amount,
      currency: "EUR",
      terminal: { reference },
      authorization: "offline",
    });
  // 700 of today's 5000 is used: 4301 is one cent over.
  const overCap = forgedTopup(4301, "FORGED-OVER");
  // Dated a month back, to get a fresh day's cap: not held either.
  const backdated = {
    ...forgedTopup(100, "FORGED-BACKDATED"),
    at: new Date(Date.now() - 30 * 86_400_000).toISOString(),
  };
  // A forged settlement with totals that do not match: it claims 500.00 for the genuine pending top-up.
  const forgedSettlement = entry("terminal-settlement", {
    day: new Date().toISOString().slice(0, 10),
    period: { fromSeq: 0, toSeq: seq },
    total: 50_000,
    count: 1,
    currency: "EUR",
    references: [held.reference],
  });
  await publishAsKiosk([overCap, backdated, forgedSettlement]);

  // Offline top-ups off again: a forged one within any cap is not even held.
  await setAdminLimitsOff();
  const whileOff = forgedTopup(100, "FORGED-OFF");
  await publishAsKiosk([whileOff]);

  assert.is(await balance(), before, "nothing credited");
  assert.equal(
    (await offlineTopups()).map((t) => [t.amount, t.status]),
    [
      [2000, "credited"],
      [1000, "credited"],
      [700, "pending"],
    ],
    "the forged top-ups are not held; the genuine pending one stays pending",
  );
  const reasons = new Map((await exceptions()).map((e) => [e.seq, e.reason]));
  assert.match(reasons.get(overCap.seq) ?? "", /above the site's cap of 5000/);
  assert.match(reasons.get(backdated.seq) ?? "", /outside the week before its arrival/);
  assert.match(reasons.get(forgedSettlement.seq) ?? "", /terminal settlement does not match/);
  assert.match(reasons.get(forgedSettlement.seq) ?? "", /difference 49300/);
  assert.match(reasons.get(whileOff.seq) ?? "", /does not allow offline top-ups/);

  const r = await site.operator("GET", `/api/v1/alerts?site=${site.site}&limit=100`);
  assert.is(r.status, 200, JSON.stringify(r.body));
  const alerts = r.body.items as Array<{ kind: string; seq: number | null; detail: { reason?: string } }>;
  const raised = alerts.filter((a) => a.kind === "ledger-exception").map((a) => a.seq);
  for (const s of [overCap.seq, backdated.seq, forgedSettlement.seq, whileOff.seq])
    assert.ok(raised.includes(s), `alert for seq ${s}`);
  const { rows } = await site.db.query<{ matched: boolean; credited: number }>(
    "SELECT matched, credited FROM terminal_settlements WHERE site_id = $1 AND device_id = 'k1' AND seq = $2",
    [site.site, forgedSettlement.seq],
  );
  assert.equal(rows[0], { matched: false, credited: 0 });
});

async function setAdminLimitsOff(): Promise<void> {
  const res = await fetch(new URL(`/api/v1/sites/${site.site}/offline-limits`, site.cloud!.url), {
    method: "PUT",
    headers: { authorization: `Bearer ${await site.operatorToken("admin")}`, "content-type": "application/json" },
    body: JSON.stringify({ perPayment: 2000, perCardDaily: 5000, kioskExposure: 20000, topupDaily: 0 }),
  });
  assert.is(res.status, 200);
}

/** Connects with k1's own secret (as read from its SD card) and publishes `entries`; resolves on the cloud's ack. */
async function publishAsKiosk(entries: Entry[]): Promise<void> {
  const a = site.address("k1");
  const watcher = await site.opsClient();
  const acks = await record<{ upTo: number }>(watcher, topics.ack(a), site.signal);
  const thief = await site.rawDevice("k1");
  await thief.publishAsync(topics.events(a), batch("k1", entries), { qos: 1 });
  const last = Math.max(...entries.map((e) => e.seq));
  await site.signal.until(() => acks.some((x) => x.upTo >= last), "the cloud's ack of the published entries");
  await thief.endAsync();
  await watcher.endAsync();
}

it.run();
