/**
 * The cloud's view of its backups, read at each scrape from the tables
 * paylane-dr writes (backup_runs, backup_schedules): when each type last
 * succeeded and how often it is due, so an alert rule can say
 * `time() - paylane_backup_last_success_timestamp_seconds > 1.5 * paylane_backup_schedule_seconds`.
 * A type never backed up has no last-success series (absent, not 0).
 */
import type { Logger } from "pino";
import { Gauge, type Registry } from "prom-client";
import type { Queryable } from "../db/database.ts";

export interface BackupMetricsOptions {
  db: Queryable;
  metrics: Registry;
  logger: Logger;
}

export function registerBackupMetrics(o: BackupMetricsOptions): void {
  /** A gauge per backup type, set anew at each scrape from one query's `type` and `value` columns. */
  const perType = (name: string, help: string, table: string, sql: string) =>
    new Gauge({
      name,
      help,
      labelNames: ["type"] as const,
      registers: [o.metrics],
      async collect() {
        try {
          const { rows } = await o.db.query<{ type: string; value: string | number }>(sql);
          this.reset();
          for (const r of rows) this.set({ type: r.type }, Number(r.value));
        } catch (err) {
          o.logger.warn({ err: (err as Error).message }, `backup metrics: ${table} could not be read`);
        }
      },
    });
  perType(
    "paylane_backup_last_success_timestamp_seconds",
    "When the newest successful backup of each type finished (paylane-dr backup), in Unix seconds",
    "backup_runs",
    "SELECT type, extract(epoch FROM max(finished_at))::text AS value FROM backup_runs GROUP BY type",
  );
  perType(
    "paylane_backup_schedule_seconds",
    "How often each backup type is due, in seconds, as paylane-dr setup recorded it",
    "backup_schedules",
    "SELECT type, interval_seconds AS value FROM backup_schedules",
  );
}
