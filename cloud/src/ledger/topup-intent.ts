/**
 * Top-up intents (`POST /api/v1/topups/intents`): before a kiosk charges a
 * bank card for a wallet top-up, the cloud issues an intent under the
 * top-up's key, for that kiosk, member, amount and currency. The journaled
 * `topup` that follows the terminal's approval credits the wallet only
 * against it, once (the ledger trigger, migration 007). So a kiosk's
 * credentials alone, replayed from a stolen SD card into the journal, credit
 * nothing; and every top-up is seen online before any card is charged, which
 * is where the per-kiosk velocity alert looks.
 */
import type { TopupIntentRequest, TopupIntentResponse } from "@paylane/protocol";
import type { Database } from "../db/database.ts";

export interface TopupIntentInput {
  site: string;
  device: string;
  request: TopupIntentRequest;
  now: Date;
}

export type TopupIntentOutcome =
  | { kind: "answered"; response: TopupIntentResponse; velocityAlert: boolean }
  /** The key was first used for another member, amount or currency. */
  | { kind: "mismatch" };

export function issueTopupIntent(db: Database, i: TopupIntentInput): Promise<TopupIntentOutcome> {
  const r = i.request;
  return db.transaction(async (tx) => {
    const { rows } = await tx.query<{ status: string; currency: string }>(
      `SELECT m.status, s.currency FROM members m JOIN sites s ON s.id = m.site_id WHERE m.site_id = $1 AND m.id = $2`,
      [i.site, r.memberId],
    );
    const member = rows[0];
    const refused = (reason: "unknown-member" | "member-revoked" | "currency-mismatch", message: string) =>
      ({
        kind: "answered",
        velocityAlert: false,
        response: { status: "refused", key: r.key, reason, message },
      }) as const;
    if (!member) return refused("unknown-member", "This card is not registered at this venue");
    if (member.status !== "active") return refused("member-revoked", "This card has been blocked; please ask staff");
    if (member.currency !== r.currency) {
      return refused("currency-mismatch", `This venue's wallets are in ${member.currency}, not ${r.currency}`);
    }
    await tx.query(
      `INSERT INTO topup_intents (site_id, device_id, key, member_id, amount, currency, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
      [i.site, i.device, r.key, r.memberId, r.amount, r.currency, i.now],
    );
    const held = await tx.query<{ member_id: string; amount: number; currency: string }>(
      "SELECT member_id, amount, currency FROM topup_intents WHERE site_id = $1 AND device_id = $2 AND key = $3",
      [i.site, i.device, r.key],
    );
    const intent = held.rows[0]!;
    if (intent.member_id !== r.memberId || Number(intent.amount) !== r.amount || intent.currency !== r.currency) {
      return { kind: "mismatch" };
    }
    const velocityAlert = await checkVelocity(tx, i);
    const { key, memberId, amount, currency } = r;
    return { kind: "answered", velocityAlert, response: { status: "open", key, memberId, amount, currency } };
  });
}

/**
 * More top-up intents (count or sum) from one kiosk in the past hour than the
 * site allows raises one `topup-velocity` alert for that kiosk and hour.
 * Returns whether this call raised it.
 */
async function checkVelocity(tx: Pick<Database, "query">, i: TopupIntentInput): Promise<boolean> {
  const { rows } = await tx.query<{ raised: boolean }>(
    `WITH recent AS (
       SELECT count(*)::int AS n, coalesce(sum(amount), 0)::bigint AS total
       FROM topup_intents WHERE site_id = $1 AND device_id = $2 AND created_at > $3::timestamptz - interval '1 hour'
     ),
     over AS (
       SELECT r.n, r.total, s.topup_velocity_count, s.topup_velocity_amount FROM recent r, sites s
       WHERE s.id = $1 AND (r.n > s.topup_velocity_count OR r.total > s.topup_velocity_amount)
     ),
     raised AS (
       INSERT INTO cloud_alerts (site_id, device_id, kind, bucket, detail, at)
       SELECT $1, $2, 'topup-velocity', date_trunc('hour', $3::timestamptz),
              jsonb_build_object('topupsLastHour', n, 'amountLastHour', total,
                                 'maxCount', topup_velocity_count, 'maxAmount', topup_velocity_amount),
              $3
       FROM over
       ON CONFLICT DO NOTHING
       RETURNING 1
     )
     SELECT EXISTS (SELECT 1 FROM raised) AS raised`,
    [i.site, i.device, i.now],
  );
  return rows[0]?.raised ?? false;
}
