/**
 * Check-ins as operators read them (REST `GET /api/v1/checkins`, GraphQL
 * `checkins`): newest first, by a keyset on (at, id), one query either way so
 * both doors answer the same rows.
 */
import type { Queryable } from "../db/database.ts";

export interface CheckinView {
  id: string;
  site: string;
  device: string;
  seq: number;
  memberId: string;
  memberName: string | null;
  credential: string;
  at: string;
  receivedAt: string;
  offline: boolean;
  replicaVersion: number;
}

export interface CheckinQuery {
  /** undefined: every site (an unscoped operator). */
  site?: string;
  device?: string;
  /** The (at, id) of the last check-in of the previous page. */
  before?: { at: string; id: string } | null;
  limit: number;
}

interface Row {
  id: string;
  site_id: string;
  device_id: string;
  seq: number;
  member_id: string;
  member_name: string | null;
  credential_type: string;
  at: Date;
  received_at: Date;
  offline: boolean;
  replica_version: number;
}

/** A check-in's place in its device's stream: what a commit notification names. */
export interface StreamPosition {
  site: string;
  device: string;
  seq: number;
}

const COLUMNS = `c.id, c.site_id, c.device_id, c.seq, c.member_id, m.name AS member_name, c.credential_type,
            c.at, c.received_at, c.offline, c.replica_version`;
const MEMBER = "LEFT JOIN members m ON m.site_id = c.site_id AND m.id = c.member_id";

export async function listCheckins(db: Queryable, q: CheckinQuery): Promise<CheckinView[]> {
  const { rows } = await db.query<Row>(
    `SELECT ${COLUMNS}
     FROM checkins c ${MEMBER}
     WHERE ($1::text IS NULL OR c.site_id = $1) AND ($2::text IS NULL OR c.device_id = $2)
       AND ($3::timestamptz IS NULL OR (c.at, c.id) < ($3::timestamptz, $4::uuid))
     ORDER BY c.at DESC, c.id DESC LIMIT $5`,
    [q.site ?? null, q.device ?? null, q.before?.at ?? null, q.before?.id ?? null, q.limit],
  );
  return rows.map(checkinView);
}

/** The check-ins at these stream positions (the live feed reads back what was just committed), in no order. */
export async function checkinsAt(db: Queryable, at: readonly StreamPosition[]): Promise<CheckinView[]> {
  if (at.length === 0) return [];
  const { rows } = await db.query<Row>(
    `SELECT ${COLUMNS}
     FROM unnest($1::text[], $2::text[], $3::bigint[]) AS k (site_id, device_id, seq)
     JOIN checkins c ON c.site_id = k.site_id AND c.device_id = k.device_id AND c.seq = k.seq
     ${MEMBER}`,
    streamColumns(at),
  );
  return rows.map(checkinView);
}

/** Positions as three arrays, for a join with unnest. */
export function streamColumns(at: readonly StreamPosition[]): [string[], string[], number[]] {
  return [at.map((p) => p.site), at.map((p) => p.device), at.map((p) => p.seq)];
}

function checkinView(r: Row): CheckinView {
  return {
    id: r.id,
    site: r.site_id,
    device: r.device_id,
    seq: r.seq,
    memberId: r.member_id,
    memberName: r.member_name,
    credential: r.credential_type,
    at: r.at.toISOString(),
    receivedAt: r.received_at.toISOString(),
    offline: r.offline,
    replicaVersion: r.replica_version,
  };
}
