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
    const body = posted
      ? approved(r, posted.id, posted.balance_after, posted.recorded_at)
      : declined(r, "voided", "The kiosk gave this payment up before it was decided; nothing was charged");
    return { status: 200, body };
  });
}

function approved(r: PaymentRequest, paymentId: string, balance: number, at: Date): PaymentResponse {
  const { key, memberId, amount, currency } = r;
  return { status: "approved", key, paymentId, memberId, amount, currency, balance, at: at.toISOString() };
}

function declined(
  r: PaymentRequest,
  reason: DeclineReason,
  message: string,
  balance: number | null = null,
): PaymentResponse {
  const { key, memberId, amount, currency } = r;
  return { status: "declined", key, reason, message, memberId, amount, currency, balance };
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
  if (!member) return declined(r, "unknown-member", "This card is not registered here");
  if (member.status !== "active") return declined(r, "member-revoked", "This card is blocked");
  if (r.currency !== member.site_currency)
    return declined(r, "currency-mismatch", `This venue takes ${member.site_currency}, not ${r.currency}`);
  if (r.itemId !== null) {
    if (member.price === null) return declined(r, "unknown-item", "This item is no longer sold here");
    if (member.price !== r.amount)
      return declined(
        r,
        "price-mismatch",
        `The price changed to ${formatMoney(member.price, r.currency)}; please choose the item again`,
      );
  }
  // Lock the wallet (created empty on first use) before reading the balance the decision rests on;
  // ledger_post locks it again, a no-op in this transaction but its guard for every other caller.
  await tx.query("INSERT INTO wallets (site_id, member_id, currency) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", [
    site,
    r.memberId,
    member.site_currency,
  ]);
  const requestKey = kioskRequestKey(device, r.key);
  const wallet = await tx.query<{ balance: number; prior_id: string | null; prior_balance: number | null }>(
    `SELECT w.balance, l.id AS prior_id, l.balance_after AS prior_balance
     FROM wallets w LEFT JOIN ledger_entries l ON l.site_id = w.site_id AND l.request_key = $3
     WHERE w.site_id = $1 AND w.member_id = $2 FOR UPDATE OF w`,
    [site, r.memberId, requestKey],
  );
  const { balance, prior_id, prior_balance } = wallet.rows[0]!;
  // Already in the ledger under this key (its stored answer was purged, or it came through the journal first).
  const prior = prior_id === null ? undefined : { entryId: prior_id, balanceAfter: prior_balance! };
  if (!prior && balance < r.amount) {
    return declined(
      r,
      "insufficient-funds",
      `Insufficient funds: the balance is ${formatMoney(balance, r.currency)}`,
      balance,
    );
  }
  const posted =
    prior ??
    (await post(tx, {
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
    }));
  return approved(r, posted.entryId, posted.balanceAfter, now);
}
