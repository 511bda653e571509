/**
 * The network between a kiosk and the cloud's API cut before, during and
 * after an online authorization (a FaultProxy in between; MQTT stays up, so
 * the kiosk believes it is online and tries). Whatever the cut, every retry
 * carries the payment's one key, and the ledger charges each payment once.
 */
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { FaultProxy } from "../support/fault-proxy.ts";
import { loud } from "../support/hooks.ts";
import { demoCard, TestSite } from "../support/site.ts";

const it = suite("payments-cut");
const ADA = demoCard("m-ada");
let site: TestSite;
let proxy: FaultProxy;
const attempts: Array<{ key: string; attempt: number }> = [];

it.before(
  loud("payments-cut site setup", async () => {
    site = new TestSite({
      db: "pg",
      presence: "memory",
      broker: "aedes",
      kiosks: [],
      probes: ["k1"],
      onPaymentAttempt: (_device, key, attempt) => attempts.push({ key, attempt }),
    });
    await site.start();
    proxy = new FaultProxy({ target: { host: "127.0.0.1", port: site.cloud!.port } });
    await proxy.start();
    // a short per-attempt timeout: a lost answer makes the kiosk wait twice this before it decides offline
    await site.startKiosk("k1", { cloudUrl: proxy.url(site.cloud!.url), payments: { onlineTimeoutMs: 400 } });
  }),
);
it.after(async () => {
  await site?.stop();
  await proxy?.stop();
});
it.before.each(() => {
  attempts.length = 0;
  proxy.heal();
});

/** Pays 1.00 with Ada's card; the result and the keys of every online attempt made for it. */
async function pay() {
  const k1 = site.kiosk("k1");
  await k1.payments.start({ kind: "purchase", amount: 100 });
  const result = await k1.tapToPay(ADA);
  return { result, keys: new Set(attempts.map((a) => a.key)), tries: attempts.length };
}

async function settled(): Promise<void> {
  proxy.heal();
  await site.drained("k1");
}

async function charges(key: string) {
  const { rows } = await site.db.query<{ amount: number; authorization: string }>(
    `SELECT amount, "authorization" FROM ledger_entries WHERE site_id = $1 AND request_key = $2`,
    [site.site, `kiosk:k1:${key}`],
  );
  return rows;
}

it("cut before the call (connections refused): offline with the same key, charged once when it lands", async () => {
  proxy.refuse(true);
  proxy.reset();
  const { result, keys, tries } = await pay();
  assert.is(result.outcome, "approved", result.message);
  assert.is(result.authorization, "offline");
  assert.is(tries, 2, "one retry before deciding offline");
  assert.is(keys.size, 1);
  assert.is([...keys][0], result.id, "the retry and the journal carry the key written before the first attempt");
  await settled();
  assert.equal(await charges(result.id!), [{ amount: -100, authorization: "offline" }]);
});

it("cut during the call (the request torn half-way): the retry with the same key is approved, charged once", async () => {
  proxy.cutAfter(60, "up");
  const { result, keys, tries } = await pay();
  assert.is(result.outcome, "approved", result.message);
  assert.is(result.authorization, "online");
  assert.is(tries, 2);
  assert.is(keys.size, 1);
  await settled();
  assert.equal(await charges(result.id!), [{ amount: -100, authorization: "online" }]);
});

it("cut after the call (the answer lost once): the retry gets the stored answer, nothing charged twice", async () => {
  proxy.cutAfter(1, "down");
  const before = await balance();
  const { result, keys, tries } = await pay();
  assert.is(result.outcome, "approved", result.message);
  assert.is(result.authorization, "online");
  assert.is(tries, 2);
  assert.is(keys.size, 1);
  assert.is(result.balance, before - 100, "the replayed answer has the balance of the one charge");
  await settled();
  assert.equal(await charges(result.id!), [{ amount: -100, authorization: "online" }]);
});

it("cut after every attempt (the cloud charged, no answer ever came): offline with the same key, still one charge", async () => {
  proxy.blackhole("down");
  const before = await balance();
  const { result, keys, tries } = await pay();
  assert.is(result.outcome, "approved", result.message);
  assert.is(result.authorization, "offline", "no answer: the kiosk decided offline");
  assert.is(tries, 2);
  assert.is(keys.size, 1);
  await settled();
  assert.equal(
    await charges(result.id!),
    [{ amount: -100, authorization: "online" }],
    "the cloud's online charge stands; the journal's offline entry with the same key posted nothing",
  );
  assert.is(await balance(), before - 100);
});

it("across all the cuts: no double charge, every payment exactly once", async () => {
  const { rows } = await site.db.query<{ n: number; total: number; keys: number }>(
    `SELECT count(*)::int AS n, coalesce(sum(amount), 0)::int AS total, count(DISTINCT request_key)::int AS keys
     FROM ledger_entries WHERE site_id = $1 AND member_id = 'm-ada' AND kind = 'purchase'`,
    [site.site],
  );
  assert.equal(rows[0], { n: 4, total: -400, keys: 4 });
  const { rows: journaled } = await site.db.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM inbox WHERE site_id = $1 AND kind = 'payment'",
    [site.site],
  );
  assert.is(journaled[0]!.n, 4, "each payment also journaled once");
  assert.is(await balance(), 2100);
});

async function balance(): Promise<number> {
  const { rows } = await site.db.query<{ balance: number }>(
    "SELECT balance FROM wallets WHERE site_id = $1 AND member_id = 'm-ada'",
    [site.site],
  );
  return rows[0]!.balance;
}

it.run();
