/**
 * The alerts kiosks journaled and the cloud recorded (staff calls, journal
 * recoveries), newest first: REST `GET /api/v1/alerts` and GraphQL
 * `alertHistory`. The alerts firing now are the AlertStore's (alerts/store.ts).
 */
import type { Queryable } from "../db/database.ts";
import { type StreamPosition, streamColumns } from "./checkins.ts";

export interface JournaledAlert {
  id: string;
  kind: string;
  site: string;
  device: string;
  seq: number;
  detail: Record<string, unknown>;
  at: string;
  receivedAt: string;
}

interface Row {
  id: string;
  site_id: string;
  device_id: string;
  seq: number;
  kind: string;
  detail: Record<string, unknown>;
  at: Date;
  received_at: Date;
}

export async function listJournaledAlerts(
  db: Queryable,
  q: { site?: string; device?: string; limit: number },
): Promise<JournaledAlert[]> {
  const { rows } = await db.query<Row>(
    `SELECT id, site_id, device_id, seq, kind, detail, at, received_at FROM alerts
     WHERE ($1::text IS NULL OR site_id = $1) AND ($2::text IS NULL OR device_id = $2)
     ORDER BY at DESC, id DESC LIMIT $3`,
    [q.site ?? null, q.device ?? null, q.limit],
  );
  return rows.map(alertView);
}

/** The journaled alerts at these stream positions (the live feed reads back what was just committed), in no order. */
export async function journaledAlertsAt(db: Queryable, at: readonly StreamPosition[]): Promise<JournaledAlert[]> {
  if (at.length === 0) return [];
  const { rows } = await db.query<Row>(
    `SELECT a.id, a.site_id, a.device_id, a.seq, a.kind, a.detail, a.at, a.received_at
     FROM unnest($1::text[], $2::text[], $3::bigint[]) AS k (site_id, device_id, seq)
     JOIN alerts a ON a.site_id = k.site_id AND a.device_id = k.device_id AND a.seq = k.seq`,
    streamColumns(at),
  );
  return rows.map(alertView);
}

function alertView(r: Row): JournaledAlert {
  return {
    id: r.id,
    kind: r.kind,
    site: r.site_id,
    device: r.device_id,
    seq: r.seq,
    detail: r.detail,
    at: r.at.toISOString(),
    receivedAt: r.received_at.toISOString(),
  };
}
