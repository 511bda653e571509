/**
 * Conflicts: what kiosks decided on their own (offline, or online but from
 * their own replica and journal) that the cloud, seeing every kiosk, finds
 * inconsistent. They are computed from the event log when asked, never by
 * changing it: every entry stays as it was committed, so nothing is dropped
 * and the answer is the same whatever order the entries arrived in. The rules
 * are documented with examples in docs/conflicts.md.
 *
 * - duplicate-checkin: one member checked in more than once on the same
 *   site-local day (at two kiosks, or at one kiosk that lost its journal).
 *   The earliest wins; every other one is a duplicate of it.
 * - revoked-member: a check-in decided offline against a member replica older
 *   than the member's revocation.
 * - clock-skew: an entry whose device time is ahead of the cloud's receive
 *   time by more than the bound, or an online decision received more than the
 *   bound after its device time.
 *
 * - wallet-overdraft: a payment (offline, from kiosks that could not see
 *   each other's spending) drove a wallet below zero. Recorded by the ledger
 *   when it happens (one per wallet until a credit settles it); the wallet is
 *   blocked for offline spending meanwhile. `detail.settled` says whether it is.
 * - payment-unapplied: a journaled payment or top-up the ledger could not
 *   post (unknown member, wrong currency, a key reused for another amount).
 *
 * Ordering ("earliest"): by device time, except that an entry whose device
 * time is ahead of the cloud's receive time by more than the bound is placed
 * at its receive time (a clock running fast must not win); ties go to the
 * earlier receive time, then device id, then seq.
 */
import type { Queryable } from "./db/database.ts";

export const CONFLICT_KINDS = [
  "duplicate-checkin",
  "revoked-member",
  "clock-skew",
  "wallet-overdraft",
  "payment-unapplied",
] as const;
export type ConflictKind = (typeof CONFLICT_KINDS)[number];

export interface Conflict {
  kind: ConflictKind;
  site: string;
  device: string;
  seq: number;
  entryId: string;
  memberId: string;
  at: string;
  receivedAt: string;
  detail: Record<string, unknown>;
}

export interface ConflictQuery {
  site?: string;
  kind?: ConflictKind;
  /** Conflicts of entries with device time from here (default: 7 days before `until`). */
  since: Date;
  until: Date;
  limit: number;
  /** The clock-skew bound, seconds. */
  skewBoundSeconds: number;
}

const SQL = `WITH c AS (
    SELECT c.id, c.site_id, c.device_id, c.seq, c.member_id, c.at, c.received_at, c.offline, c.replica_version,
           s.timezone,
           c.at > c.received_at + make_interval(secs => $5) AS ahead,
           (NOT c.offline AND c.received_at > c.at + make_interval(secs => $5)) AS late
    FROM checkins c JOIN sites s ON s.id = c.site_id
    WHERE ($1::text IS NULL OR c.site_id = $1)
      -- a day earlier, so the winner of a day that starts before 'since' is still seen
      AND c.at >= $2::timestamptz - interval '1 day' AND c.at < $3::timestamptz + interval '1 day'
  ),
  ordered AS (
    SELECT c.*,
           first_value(c.device_id) OVER w AS winner_device,
           first_value(c.seq) OVER w AS winner_seq,
           first_value(c.at) OVER w AS winner_at,
           row_number() OVER w AS rank
    FROM c
    WINDOW w AS (
      PARTITION BY c.site_id, c.member_id, (c.at AT TIME ZONE c.timezone)::date
      ORDER BY CASE WHEN c.ahead THEN c.received_at ELSE c.at END, c.received_at, c.device_id, c.seq
    )
  ),
  found AS (
    SELECT 'duplicate-checkin' AS kind, o.id, o.site_id, o.device_id, o.seq, o.member_id, o.at, o.received_at,
           jsonb_build_object('winner', jsonb_build_object('device', o.winner_device, 'seq', o.winner_seq, 'at', o.winner_at),
                              'day', (o.at AT TIME ZONE o.timezone)::date) AS detail
    FROM ordered o WHERE o.rank > 1
    UNION ALL
    SELECT 'revoked-member', c.id, c.site_id, c.device_id, c.seq, c.member_id, c.at, c.received_at,
           jsonb_build_object('replicaVersion', c.replica_version, 'revokedAtVersion', m.version)
    FROM c JOIN members m ON m.site_id = c.site_id AND m.id = c.member_id
    WHERE c.offline AND m.status = 'revoked' AND m.version > c.replica_version
    UNION ALL
    SELECT 'clock-skew', c.id, c.site_id, c.device_id, c.seq, c.member_id, c.at, c.received_at,
           jsonb_build_object('skewSeconds', round(extract(epoch FROM c.at - c.received_at)),
                              'boundSeconds', $5, 'ahead', c.ahead)
    FROM c WHERE c.ahead OR c.late
    UNION ALL
    SELECT 'wallet-overdraft', l.id, o.site_id, coalesce(l.origin_device, 'operator:' || l.operator), coalesce(l.origin_seq, 0),
           o.member_id, l.at, l.recorded_at,
           jsonb_build_object('balanceAtOpen', o.balance_at_open, 'currency', l.currency, 'settled', o.settled_at IS NOT NULL,
                              'settledAt', o.settled_at, 'settledBy', o.settled_by, 'authorization', l."authorization")
    FROM wallet_overdrafts o JOIN ledger_entries l ON l.id = o.opened_by
    WHERE ($1::text IS NULL OR o.site_id = $1)
    UNION ALL
    SELECT 'payment-unapplied', x.entry_id::uuid, x.site_id, x.device_id, x.seq, coalesce(i.body ->> 'memberId', ''), x.at,
           x.recorded_at, jsonb_build_object('reason', x.reason, 'kind', i.kind)
    FROM ledger_exceptions x JOIN inbox i ON i.site_id = x.site_id AND i.device_id = x.device_id AND i.seq = x.seq
    WHERE ($1::text IS NULL OR x.site_id = $1)
  )
  SELECT * FROM found
  WHERE at >= $2 AND at < $3 AND ($4::text IS NULL OR kind = $4)
  ORDER BY at DESC, kind, device_id, seq
  LIMIT $6`;

export async function listConflicts(db: Queryable, q: ConflictQuery): Promise<Conflict[]> {
  const { rows } = await db.query<{
    kind: ConflictKind;
    id: string;
    site_id: string;
    device_id: string;
    seq: number;
    member_id: string;
    at: Date;
    received_at: Date;
    detail: Record<string, unknown>;
  }>(SQL, [q.site ?? null, q.since, q.until, q.kind ?? null, q.skewBoundSeconds, q.limit]);
  return rows.map((r) => ({
    kind: r.kind,
    site: r.site_id,
    device: r.device_id,
    seq: r.seq,
    entryId: r.id,
    memberId: r.member_id,
    at: r.at.toISOString(),
    receivedAt: r.received_at.toISOString(),
    detail: r.detail,
  }));
}
