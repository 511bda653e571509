/**
 * Online authorization of a kiosk purchase (`POST /api/v1/payments`).
 *
 * Under the payment's idempotency key, in one statement and so one database
 * round trip (`payment_authorize`, migrations/009_payment_authorize.sql):
 * check the member, the item's price and the wallet's balance (the wallet row
 * is locked, so two payments of one wallet cannot both spend the same money),
 * post the purchase, store the answer. A decline is an answer too, and is
 * replayed like an approval.
 */
import type { DeclineReason, PaymentRequest, PaymentResponse } from "@paylane/protocol";
import type { Database, Queryable } from "../db/database.ts";
import { type IdempotentOutcome, requestHash, withIdempotency } from "./idempotency.ts";
import { kioskRequestKey, ledgerError } from "./ledger.ts";
import { moneyPattern } from "./money-pattern.ts";

export interface AuthorizeInput {
  site: string;
  device: string;
  request: PaymentRequest;
  now: Date;
}

/** The one statement; `db` may be a pool (autocommit: the statement is its own transaction) or a transaction. */
export const AUTHORIZE_SQL = "SELECT * FROM payment_authorize($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

export async function authorizePayment(db: Queryable, i: AuthorizeInput): Promise<IdempotentOutcome<PaymentResponse>> {
  const r = i.request;
  const k = idempotencyKey(i);
  let row: { outcome: "fresh" | "replayed" | "mismatch"; http_status: number | null; body: PaymentResponse | null };
  try {
    const { rows } = await db.query<typeof row>(AUTHORIZE_SQL, [
      i.site,
      i.device,
      r.key,
      k.requestHash,
      r.memberId,
      r.amount,
      r.currency,
      r.itemId,
      new Date(r.at),
      i.now,
      // declines name amounts in the request's currency, written as the kiosk writes them
      JSON.stringify(moneyPattern(r.currency)),
    ]);
    row = rows[0]!;
  } catch (err) {
    throw ledgerError(err);
  }
  if (row.outcome === "mismatch") return { kind: "mismatch" };
  return { kind: row.outcome, status: row.http_status!, body: row.body! };
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
