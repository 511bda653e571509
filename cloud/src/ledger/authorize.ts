/**
 * Online authorization of a kiosk purchase (`POST /api/v1/payments`).
 *
 * Under the payment's idempotency key, in one transaction: check the member,
 * the item's price and the wallet's balance (the wallet row is locked, so two
 * payments of one wallet cannot both spend the same money), post the
 * purchase, store the answer. A decline is an answer too, and is replayed
 * like an approval.
 */
import type { DeclineReason, PaymentRequest, PaymentResponse } from "@paylane/protocol";
import { formatMoney } from "@paylane/protocol";
import type { Database, Queryable } from "../db/database.ts";
import { type IdempotentOutcome, requestHash, withIdempotency } from "./idempotency.ts";
import { kioskRequestKey, post } from "./ledger.ts";

export interface AuthorizeInput {
  site: string;
  device: string;
  request: PaymentRequest;
  now: Date;
}

export function authorizePayment(db: Database, i: AuthorizeInput): Promise<IdempotentOutcome<PaymentResponse>> {
  return withIdempotency(db, idempotencyKey(i), i.now, async (tx) => ({ status: 200, body: await decide(tx, i) }));
}

/**
 * For a kiosk that lost track of a payment (it crashed after writing the
 * intent, before any answer): the answer the key already has, or, when it has
 * none, "voided" — stored under the key like any answer, so the original
 * request, if it arrives after all, gets the void and charges nothing. The
 * key decides once, whichever comes first.
 */
export function voidPayment(db: Database, i: AuthorizeInput): Promise<IdempotentOutcome<PaymentResponse>> {
  const r = i.request;
  return withIdempotency(db, idempotencyKey(i), i.now, async (tx) => {
    // Answered long ago (its stored answer purged), the ledger still knows it.
    const { rows } = await tx.query<{ id: string; balance_after: number; recorded_at: Date }>(
      "SELECT id, balance_after, recorded_at FROM ledger_entries WHERE site_id = $1 AND request_key = $2",
      [i.site, kioskRequestKey(i.device, r.key)],
    );
    const posted = rows[0];
    const body: PaymentResponse = posted
      ? {
          status: "approved",
          key: r.key,
          paymentId: posted.id,
          memberId: r.memberId,
          amount: r.amount,
          currency: r.currency,
          balance: Number(posted.balance_after),
          at: new Date(posted.recorded_at).toISOString(),
        }
      : {
          status: "declined",
          key: r.key,
          reason: "voided",
          message: "The kiosk gave this payment up before it was decided; nothing was charged",
          memberId: r.memberId,
          amount: r.amount,
          currency: r.currency,
          balance: null,
        };
    return { status: 200, body };
  });
}

function idempotencyKey(i: AuthorizeInput) {
  const r = i.request;
  return {
    site: i.site,
    scope: `device:${i.device}`,
    key: r.key,
    // `at` may differ between attempts; what is bought, by whom, for how much may not.
    requestHash: requestHash({ memberId: r.memberId, amount: r.amount, currency: r.currency, itemId: r.itemId }),
  };
}

async function decide(tx: Queryable, { site, device, request: r, now }: AuthorizeInput): Promise<PaymentResponse> {
  const { rows } = await tx.query<{ status: string; site_currency: string; price: number | null }>(
    `SELECT m.status, s.currency AS site_currency,
            (SELECT i.price FROM items i WHERE i.site_id = s.id AND i.id = $3 AND i.active) AS price
     FROM members m JOIN sites s ON s.id = m.site_id WHERE m.site_id = $1 AND m.id = $2`,
    [site, r.memberId, r.itemId],
  );
  const member = rows[0];
  const decline = (reason: DeclineReason, message: string, balance: number | null = null): PaymentResponse => ({
    status: "declined",
    key: r.key,
    reason,
    message,
    memberId: r.memberId,
    amount: r.amount,
    currency: r.currency,
    balance,
  });
  if (!member) return decline("unknown-member", "This card is not registered here");
  if (member.status !== "active") return decline("member-revoked", "This card is blocked");
  if (r.currency !== member.site_currency)
    return decline("currency-mismatch", `This venue takes ${member.site_currency}, not ${r.currency}`);
  if (r.itemId !== null) {
    if (member.price === null) return decline("unknown-item", "This item is no longer sold here");
    if (Number(member.price) !== r.amount)
      return decline(
        "price-mismatch",
        `The price changed to ${formatMoney(Number(member.price), r.currency)}; please choose the item again`,
      );
  }
  // Lock the wallet (created empty on first use) before reading the balance the decision rests on.
  await tx.query("INSERT INTO wallets (site_id, member_id, currency) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", [
    site,
    r.memberId,
    member.site_currency,
  ]);
  const wallet = await tx.query<{ balance: number }>(
    "SELECT balance FROM wallets WHERE site_id = $1 AND member_id = $2 FOR UPDATE",
    [site, r.memberId],
  );
  const balance = Number(wallet.rows[0]!.balance);
  const requestKey = kioskRequestKey(device, r.key);
  const earlier = await tx.query<{ id: string; amount: number; balance_after: number }>(
    "SELECT id, amount, balance_after FROM ledger_entries WHERE site_id = $1 AND request_key = $2",
    [site, requestKey],
  );
  // Already in the ledger under this key (its stored answer was purged, or it came through the journal first).
  const prior = earlier.rows[0];
  if (!prior && balance < r.amount) {
    return decline(
      "insufficient-funds",
      `Insufficient funds: the balance is ${formatMoney(balance, r.currency)}`,
      balance,
    );
  }
  const posted = prior
    ? { entryId: prior.id, balanceAfter: Number(prior.balance_after) }
    : await post(tx, {
        site,
        memberId: r.memberId,
        kind: "purchase",
        amount: -r.amount,
        currency: r.currency,
        requestKey,
        origin: { device },
        authorization: "online",
        itemId: r.itemId,
        at: new Date(r.at),
        recordedAt: now,
      });
  return {
    status: "approved",
    key: r.key,
    paymentId: posted.entryId,
    memberId: r.memberId,
    amount: r.amount,
    currency: r.currency,
    balance: posted.balanceAfter,
    at: now.toISOString(),
  };
}
