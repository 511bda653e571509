/**
 * The ledger on a real Postgres (a schema of its own, dropped at the end):
 * idempotent online authorization, refunds, and the invariant — for any
 * sequence of top-ups, purchases (online and through the journal), refunds,
 * duplicates and replays, every balance is the sum of its entries and no
 * origin is posted twice.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { formatMoney, type PaymentRequest } from "@paylane/protocol";
import fc from "fast-check";
import pino from "pino";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { loud } from "../../test/support/hooks.ts";
import { Ingestor, type PendingEntry } from "../src/bridge/ingest.ts";
import type { Database, Queryable } from "../src/db/database.ts";
import { migrate } from "../src/db/migrate.ts";
import { openPg } from "../src/db/pg.ts";
import { AUTHORIZE_SQL, authorizePayment } from "../src/ledger/authorize.ts";
import { requestHash, withIdempotency } from "../src/ledger/idempotency.ts";
import { LedgerRefusal, operatorRequestKey, post } from "../src/ledger/ledger.ts";
import { walletSync } from "../src/ledger/wallet-sync.ts";
import { seedSite } from "../src/seed.ts";

const PG_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const SITE = "s1";
const KIOSKS = ["k1", "k2"];
const MEMBERS = ["m-a", "m-b", "m-c"];
const NOW = new Date("2026-11-25T10:00:00Z");

const ctx = { db: undefined as unknown as Database, schema: "" };
const Ledger = suite("ledger");

Ledger.before(
  loud("opening Postgres", async () => {
    ctx.schema = `t_ledger_${randomBytes(5).toString("hex")}`;
    ctx.db = await openPg({ url: PG_URL, schema: ctx.schema });
    await migrate(ctx.db);
  }),
);
Ledger.after(async () => {
  await ctx.db.query(`DROP SCHEMA IF EXISTS ${ctx.schema} CASCADE`);
  await ctx.db.close();
});
Ledger.before.each(
  loud("resetting the site", async () => {
    const db = ctx.db;
    await db.query(
      "TRUNCATE wallet_overdrafts, ledger_exceptions, idempotency_keys, ledger_entries, wallets, items, inbox, quarantine, device_streams, devices, members, sites CASCADE",
    );
    await seedSite(
      db,
      { id: SITE, name: "Test venue", timezone: "UTC" },
      MEMBERS.map((id, i) => ({ id, name: id, cardUid: `04A2B3C${i}`, code: `CODE${i}`, status: "active" as const })),
    );
    for (const k of KIOSKS) await db.query("INSERT INTO devices (site_id, id) VALUES ($1, $2)", [SITE, k]);
  }),
);

function payment(memberId: string, amount: number, extra: Partial<PaymentRequest> = {}): PaymentRequest {
  return { key: randomUUID(), memberId, amount, currency: "EUR", itemId: null, at: NOW.toISOString(), ...extra };
}

async function topup(memberId: string, amount: number, key: string = randomUUID()) {
  return withIdempotency(
    ctx.db,
    { site: SITE, scope: "operator:ops", key, requestHash: requestHash({ memberId, amount }) },
    NOW,
    async (tx) => {
      const p = await post(tx, {
        site: SITE,
        memberId,
        kind: "topup",
        amount,
        currency: "EUR",
        requestKey: operatorRequestKey("ops", key),
        origin: { operator: "ops" },
        at: NOW,
        recordedAt: NOW,
      });
      return { status: 201, body: p };
    },
  );
}

async function entries(memberId?: string) {
  const { rows } = await ctx.db.query<{ kind: string; amount: number; request_key: string }>(
    "SELECT kind, amount, request_key FROM ledger_entries WHERE $1::text IS NULL OR member_id = $1 ORDER BY member_id, n",
    [memberId ?? null],
  );
  return rows;
}

async function balance(memberId: string): Promise<number> {
  const { rows } = await ctx.db.query<{ balance: number }>(
    "SELECT balance FROM wallets WHERE site_id = $1 AND member_id = $2",
    [SITE, memberId],
  );
  return rows[0]?.balance ?? 0;
}

Ledger("the same key twice: one ledger entry, and the same answer again, marked as replayed", async () => {
  await topup("m-a", 1000);
  const req = payment("m-a", 250);
  const first = await authorizePayment(ctx.db, { site: SITE, device: "k1", request: req, now: NOW });
  const again = await authorizePayment(ctx.db, {
    site: SITE,
    device: "k1",
    request: req,
    now: new Date(NOW.getTime() + 5000),
  });
  assert.is(first.kind, "fresh");
  assert.is(again.kind, "replayed");
  assert.ok(first.kind !== "mismatch" && again.kind !== "mismatch");
  assert.equal(again.body, first.body);
  assert.is(first.body.status, "approved");
  assert.is(first.body.status === "approved" && first.body.balance, 750);
  assert.is((await entries("m-a")).filter((e) => e.kind === "purchase").length, 1);
  assert.is(await balance("m-a"), 750);
});

Ledger("the same key with a different amount is refused, and nothing more is charged", async () => {
  await topup("m-a", 1000);
  const req = payment("m-a", 250);
  await authorizePayment(ctx.db, { site: SITE, device: "k1", request: req, now: NOW });
  const other = await authorizePayment(ctx.db, {
    site: SITE,
    device: "k1",
    request: { ...req, amount: 900 },
    now: NOW,
  });
  assert.is(other.kind, "mismatch");
  assert.is(await balance("m-a"), 750);
});

Ledger("concurrent retries of one key: exactly one entry, every caller gets the same answer", async () => {
  await topup("m-a", 1000);
  const req = payment("m-a", 300);
  const answers = await Promise.all(
    Array.from({ length: 12 }, () => authorizePayment(ctx.db, { site: SITE, device: "k1", request: req, now: NOW })),
  );
  assert.is(answers.filter((a) => a.kind === "fresh").length, 1);
  const bodies = new Set(answers.map((a) => JSON.stringify(a.kind === "mismatch" ? null : a.body)));
  assert.is(bodies.size, 1);
  assert.is((await entries("m-a")).filter((e) => e.kind === "purchase").length, 1);
  assert.is(await balance("m-a"), 700);
});

Ledger("concurrent payments of one wallet never spend the same money twice", async () => {
  await topup("m-a", 1000);
  const answers = await Promise.all(
    Array.from({ length: 8 }, () =>
      authorizePayment(ctx.db, { site: SITE, device: "k1", request: payment("m-a", 300), now: NOW }),
    ),
  );
  const approved = answers.filter((a) => a.kind === "fresh" && a.body.status === "approved").length;
  assert.is(approved, 3);
  assert.is(await balance("m-a"), 100);
});

Ledger("insufficient funds: declined with the balance, nothing posted, and the decline is replayed", async () => {
  await topup("m-a", 200);
  const req = payment("m-a", 250);
  const first = await authorizePayment(ctx.db, { site: SITE, device: "k1", request: req, now: NOW });
  assert.ok(first.kind === "fresh" && first.body.status === "declined");
  assert.is(first.body.status === "declined" && first.body.reason, "insufficient-funds");
  assert.match(first.body.status === "declined" ? first.body.message : "", /€2\.00/);
  await topup("m-a", 1000);
  // the retry is the same request: it gets the same decline, not a new decision
  const again = await authorizePayment(ctx.db, { site: SITE, device: "k1", request: req, now: NOW });
  assert.ok(again.kind === "replayed" && again.body.status === "declined");
  assert.is(await balance("m-a"), 1200);
});

Ledger("an authorization is one statement, one round trip: fresh, declined, replayed or refused alike", async () => {
  await topup("m-a", 1000);
  const statements: string[] = [];
  const counted: Queryable = {
    query: (sql, params) => {
      statements.push(sql);
      return ctx.db.query(sql, params);
    },
  };
  const approved = payment("m-a", 250);
  const outcomes = [
    await authorizePayment(counted, { site: SITE, device: "k1", request: approved, now: NOW }),
    await authorizePayment(counted, { site: SITE, device: "k1", request: payment("m-a", 5000), now: NOW }),
    await authorizePayment(counted, { site: SITE, device: "k1", request: approved, now: NOW }),
    await authorizePayment(counted, { site: SITE, device: "k1", request: { ...approved, amount: 1 }, now: NOW }),
  ];
  assert.equal(
    outcomes.map((o) => (o.kind === "mismatch" ? o.kind : `${o.kind} ${o.body.status}`)),
    ["fresh approved", "fresh declined", "replayed approved", "mismatch"],
  );
  assert.equal(statements, [AUTHORIZE_SQL, AUTHORIZE_SQL, AUTHORIZE_SQL, AUTHORIZE_SQL]);
  const declined = outcomes[1]!;
  assert.is(
    declined.kind === "fresh" && declined.body.status === "declined" && declined.body.message,
    `Insufficient funds: the balance is ${formatMoney(750, "EUR")}`,
  );
});

Ledger("an item's price is the cloud's: a stale price is declined and says the new one", async () => {
  await topup("m-a", 1000);
  const r = await authorizePayment(ctx.db, {
    site: SITE,
    device: "k1",
    request: payment("m-a", 200, { itemId: "coffee" }),
    now: NOW,
  });
  assert.ok(r.kind === "fresh" && r.body.status === "declined");
  assert.is(r.body.status === "declined" && r.body.reason, "price-mismatch");
  assert.match(r.body.status === "declined" ? r.body.message : "", /€2\.50/);
  const ok = await authorizePayment(ctx.db, {
    site: SITE,
    device: "k1",
    request: payment("m-a", 250, { itemId: "coffee" }),
    now: NOW,
  });
  assert.is(ok.kind === "fresh" && ok.body.status, "approved");
});

Ledger("a refund is a new entry; refunds beyond the payment are refused by the ledger", async () => {
  await topup("m-a", 1000);
  const r = await authorizePayment(ctx.db, { site: SITE, device: "k1", request: payment("m-a", 400), now: NOW });
  assert.ok(r.kind === "fresh" && r.body.status === "approved");
  const paymentId = r.body.status === "approved" ? r.body.paymentId : "";
  const refund = (amount: number) =>
    ctx.db.transaction((tx) =>
      post(tx, {
        site: SITE,
        memberId: "m-a",
        kind: "refund",
        amount,
        currency: "EUR",
        requestKey: operatorRequestKey("ops", randomUUID()),
        origin: { operator: "ops" },
        refundOf: paymentId,
        at: NOW,
        recordedAt: NOW,
      }),
    );
  await refund(150);
  try {
    await refund(300);
    assert.unreachable("a refund beyond what is left was accepted");
  } catch (err) {
    assert.instance(err, LedgerRefusal);
    assert.is((err as LedgerRefusal).code, "refund-too-large");
  }
  await refund(250);
  assert.is(await balance("m-a"), 1000);
  const purchase = (await entries("m-a")).find((e) => e.kind === "purchase");
  assert.is(purchase?.amount, -400, "the purchase itself is never edited");
});

Ledger("the wallet sync: whole, then only what changed, with the kiosk's applied seq", async () => {
  await topup("m-a", 1000);
  await topup("m-b", 500);
  const full = await walletSync(ctx.db, SITE, "k1", undefined);
  assert.ok(full?.full);
  assert.equal(
    full!.wallets.map((w) => [w.memberId, w.balance]),
    [
      ["m-a", 1000],
      ["m-b", 500],
    ],
  );
  assert.equal(
    full!.items.find((i) => i.id === "coffee"),
    { id: "coffee", name: "Coffee", price: 250 },
  );
  await authorizePayment(ctx.db, { site: SITE, device: "k2", request: payment("m-b", 100), now: NOW });
  const delta = await walletSync(ctx.db, SITE, "k1", full!.version);
  assert.is(delta!.full, false);
  // A delta may repeat a wallet (a transaction elsewhere in the database, still open when the
  // first sync read, holds the version back) but never misses one, and what it says is current.
  const changed = new Map(delta!.wallets.map((w) => [w.memberId, w.balance]));
  assert.is(changed.get("m-b"), 400);
  if (changed.has("m-a")) assert.is(changed.get("m-a"), 1000);
  const future = await walletSync(ctx.db, SITE, "k1", full!.version + 1_000_000);
  assert.ok(future!.full, "a cursor from the future gets everything");
});

// ---- the invariant, property-based ------------------------------------------

type Op =
  | { op: "topup"; member: number; amount: number; key: number }
  | { op: "online"; member: number; amount: number; key: number; kiosk: number }
  | { op: "journal"; member: number; amount: number; key: number; kiosk: number; offline: boolean }
  | { op: "replay"; back: number }
  | { op: "refund"; back: number; amount: number };

const member = fc.integer({ min: 0, max: MEMBERS.length - 1 });
const amount = fc.integer({ min: 1, max: 1500 });
// a small key space, so the same key comes up again: retries, and online payments later journaled
const key = fc.integer({ min: 0, max: 12 });
const kiosk = fc.integer({ min: 0, max: KIOSKS.length - 1 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant("topup" as const), member, amount, key }),
  fc.record({ op: fc.constant("online" as const), member, amount, key, kiosk }),
  fc.record({ op: fc.constant("journal" as const), member, amount, key, kiosk, offline: fc.boolean() }),
  fc.record({ op: fc.constant("replay" as const), back: fc.nat(20) }),
  fc.record({ op: fc.constant("refund" as const), back: fc.nat(20), amount }),
);

Ledger("invariant: every balance is the sum of its entries, and no origin posts twice", async () => {
  const keys = Array.from({ length: 13 }, () => randomUUID());
  await fc.assert(
    fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 40 }), async (ops) => {
      await ctx.db.query(
        "TRUNCATE wallet_overdrafts, ledger_exceptions, ledger_journal_links, idempotency_keys, ledger_entries, wallets, inbox, device_streams CASCADE",
      );
      const ingestor = new Ingestor({
        db: ctx.db,
        now: () => NOW,
        logger: pino({ level: "silent" }),
        onCommitted: () => {},
      });
      const seqs = new Map<string, number>();
      const journaled: PendingEntry[] = [];
      const purchases: string[] = [];
      for (const o of ops) {
        if (o.op === "topup") {
          await topup(MEMBERS[o.member]!, o.amount, `t-${keys[o.key]}`);
        } else if (o.op === "online") {
          const r = await authorizePayment(ctx.db, {
            site: SITE,
            device: KIOSKS[o.kiosk]!,
            request: payment(MEMBERS[o.member]!, o.amount, { key: keys[o.key]! }),
            now: NOW,
          });
          if (r.kind !== "mismatch" && r.body.status === "approved") purchases.push(r.body.paymentId);
        } else if (o.op === "journal") {
          const device = KIOSKS[o.kiosk]!;
          const seq = (seqs.get(device) ?? 0) + 1;
          seqs.set(device, seq);
          const e: PendingEntry = {
            site: SITE,
            device,
            seq,
            entryId: randomUUID(),
            kind: "payment",
            applied: {
              at: NOW.toISOString(),
              body: JSON.stringify({
                key: keys[o.key],
                memberId: MEMBERS[o.member],
                amount: o.amount,
                currency: "EUR",
                itemId: null,
                authorization: o.offline ? "offline" : "online",
                walletVersion: 0,
              }),
            },
          };
          journaled.push(e);
          ingestor.add([e]);
          await ingestor.drain();
        } else if (o.op === "replay") {
          const e = journaled[journaled.length - 1 - (o.back % Math.max(1, journaled.length))];
          if (e) {
            ingestor.add([e]);
            await ingestor.drain();
          }
        } else {
          const { rows } = await ctx.db.query<{ id: string; member_id: string }>(
            "SELECT id, member_id FROM ledger_entries WHERE kind = 'purchase' ORDER BY recorded_at, n",
          );
          const target = rows[o.back % Math.max(1, rows.length)];
          if (target) {
            await ctx.db
              .transaction((tx) =>
                post(tx, {
                  site: SITE,
                  memberId: target.member_id,
                  kind: "refund",
                  amount: o.amount,
                  currency: "EUR",
                  requestKey: operatorRequestKey("ops", randomUUID()),
                  origin: { operator: "ops" },
                  refundOf: target.id,
                  at: NOW,
                  recordedAt: NOW,
                }),
              )
              .catch((err) => {
                if (!(err instanceof LedgerRefusal)) throw err;
              });
          }
        }
      }
      await ingestor.stop();
      // every balance is the sum of its entries, and each balance_after is the running sum
      const { rows: bad } = await ctx.db.query(
        `SELECT w.member_id FROM wallets w
         LEFT JOIN (SELECT member_id, sum(amount) AS total, count(*) AS n FROM ledger_entries GROUP BY member_id) l USING (member_id)
         WHERE w.balance <> coalesce(l.total, 0) OR w.entries <> coalesce(l.n, 0)
         UNION ALL
         SELECT member_id FROM (
           SELECT member_id, balance_after, sum(amount) OVER (PARTITION BY member_id ORDER BY n) AS running FROM ledger_entries
         ) x WHERE balance_after <> running`,
      );
      assert.equal(bad, [], "a balance disagrees with its entries");
      // no origin twice: one entry per request key and per journal (device, seq)
      const { rows: twice } = await ctx.db.query(
        `SELECT request_key FROM ledger_entries GROUP BY request_key HAVING count(*) > 1
         UNION ALL SELECT device || '/' || seq FROM (
           SELECT origin_device AS device, origin_seq AS seq FROM ledger_entries WHERE origin_seq IS NOT NULL
           UNION ALL SELECT device_id, seq FROM ledger_journal_links
         ) o GROUP BY device, seq HAVING count(*) > 1`,
      );
      assert.equal(twice, [], "an origin was posted twice");
      // every journaled payment is in the ledger, or raised as an exception (never silently dropped)
      const { rows: lost } = await ctx.db.query(
        `SELECT i.device_id, i.seq FROM inbox i
         WHERE i.kind = 'payment' AND NOT EXISTS (
           SELECT 1 FROM ledger_entries l WHERE l.request_key = 'kiosk:' || i.device_id || ':' || (i.body ->> 'key'))
         AND NOT EXISTS (SELECT 1 FROM ledger_exceptions x WHERE x.device_id = i.device_id AND x.seq = i.seq)`,
      );
      assert.equal(lost, [], "a journaled payment was dropped");
      // a negative balance always has an open overdraft conflict, and blocks offline spending
      const { rows: silent } = await ctx.db.query(
        `SELECT w.member_id FROM wallets w WHERE w.balance < 0 AND (NOT w.offline_blocked OR NOT EXISTS (
           SELECT 1 FROM wallet_overdrafts o WHERE o.member_id = w.member_id AND o.settled_at IS NULL))`,
      );
      assert.equal(silent, [], "an overdrawn wallet without its conflict");
      // every approval a kiosk was given stands in the ledger as a purchase
      const approvals = [...new Set(purchases)];
      const { rows: standing } = await ctx.db.query(
        "SELECT id FROM ledger_entries WHERE kind = 'purchase' AND id = ANY($1::uuid[])",
        [approvals],
      );
      assert.is(standing.length, approvals.length, "an approved payment is missing from the ledger");
    }),
    { numRuns: Number(process.env.LEDGER_PROPERTY_RUNS ?? 40) },
  );
});

Ledger.run();
