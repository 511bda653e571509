/**
 * Alert state in Postgres (migrations/012_alert_states.sql): one row per
 * key, firing or resolved, so a restarted cloud knows what is firing (and
 * neither fires it again nor forgets to resolve it), and how far the scan
 * for event-like alerts has read.
 */
import type { Alert, AlertRule, AlertSeverity } from "@paylane/protocol";
import type { Queryable } from "../db/database.ts";

interface Row {
  key: string;
  rule: AlertRule;
  site_id: string;
  device_id: string | null;
  severity: AlertSeverity;
  state: "firing" | "resolved";
  summary: string;
  detail: Record<string, unknown> | null;
  fired_at: Date;
  resolved_at: Date | null;
  updated_at: Date;
}

const iso = (d: Date | string) => new Date(d).toISOString();

function toAlert(r: Row): Alert {
  return {
    key: r.key,
    rule: r.rule,
    severity: r.severity,
    state: r.state,
    site: r.site_id,
    ...(r.device_id ? { device: r.device_id } : {}),
    summary: r.summary,
    ...(r.detail ? { detail: r.detail } : {}),
    firedAt: iso(r.fired_at),
    ...(r.resolved_at ? { resolvedAt: iso(r.resolved_at) } : {}),
    at: iso(r.resolved_at ?? r.fired_at),
  };
}

export class AlertStore {
  constructor(readonly db: Queryable) {}

  /** The alerts firing now, of some sites or of every site, oldest first. */
  async firing(sites?: string | readonly string[]): Promise<Alert[]> {
    const list = sites === undefined ? null : typeof sites === "string" ? [sites] : [...sites];
    const { rows } = await this.db.query<Row>(
      `SELECT * FROM alert_states WHERE state = 'firing' AND ($1::text[] IS NULL OR site_id = ANY($1))
       ORDER BY fired_at, key`,
      [list],
    );
    return rows.map(toAlert);
  }

  async get(key: string): Promise<Alert | undefined> {
    const { rows } = await this.db.query<Row>("SELECT * FROM alert_states WHERE key = $1", [key]);
    return rows[0] ? toAlert(rows[0]) : undefined;
  }

  /** Each event-like key's newest source event already taken into account (epoch ms). */
  async lastEvents(): Promise<Map<string, number>> {
    const { rows } = await this.db.query<{ key: string; last_event_at: Date }>(
      "SELECT key, last_event_at FROM alert_states WHERE last_event_at IS NOT NULL",
    );
    return new Map(rows.map((r) => [r.key, new Date(r.last_event_at).getTime()]));
  }

  /** Records a firing (a key fires again: its row is reused and its count goes up). */
  async fire(a: Alert, eventAt?: Date): Promise<void> {
    await this.db.query(
      `INSERT INTO alert_states (key, rule, site_id, device_id, severity, state, summary, detail, fired_at,
                                 resolved_at, resolved_by, fired_count, last_event_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, 'firing', $6, $7::jsonb, $8, NULL, NULL, 1, $9, $10)
       ON CONFLICT (key) DO UPDATE SET severity = $5, state = 'firing', summary = $6, detail = $7::jsonb,
         fired_at = $8, resolved_at = NULL, resolved_by = NULL, fired_count = alert_states.fired_count + 1,
         last_event_at = coalesce($9, alert_states.last_event_at), updated_at = $10`,
      [
        a.key,
        a.rule,
        a.site,
        a.device ?? null,
        a.severity,
        a.summary,
        a.detail ? JSON.stringify(a.detail) : null,
        a.firedAt,
        eventAt ?? null,
        a.at,
      ],
    );
  }

  /** Resolves a firing alert; false when it was not firing (another instance resolved it first). */
  async resolve(a: Alert, by: string): Promise<boolean> {
    const { rows } = await this.db.query(
      `UPDATE alert_states SET state = 'resolved', resolved_at = $2, resolved_by = $3, updated_at = $2
       WHERE key = $1 AND state = 'firing' RETURNING key`,
      [a.key, a.resolvedAt ?? a.at, by],
    );
    return rows.length > 0;
  }

  /** A newer source event of a firing event-like alert (de-duplicated): remembered so it never fires it later. */
  async sawEvent(key: string, eventAt: Date): Promise<void> {
    await this.db.query(`UPDATE alert_states SET last_event_at = greatest(last_event_at, $2) WHERE key = $1`, [
      key,
      eventAt,
    ]);
  }

  /** Where the event scan `id` has read up to; set to `initial` on first use. */
  async mark(id: string, initial: Date): Promise<Date> {
    await this.db.query("INSERT INTO alert_scan_marks (id, at) VALUES ($1, $2) ON CONFLICT DO NOTHING", [id, initial]);
    const { rows } = await this.db.query<{ at: Date }>("SELECT at FROM alert_scan_marks WHERE id = $1", [id]);
    return new Date(rows[0]!.at);
  }

  async setMark(id: string, at: Date): Promise<void> {
    await this.db.query("UPDATE alert_scan_marks SET at = greatest(at, $2) WHERE id = $1", [id, at]);
  }
}
