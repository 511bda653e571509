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
  const last = new Gauge({
    name: "paylane_backup_last_success_timestamp_seconds",
    help: "When the newest successful backup of each type finished (paylane-dr backup), in Unix seconds",
    labelNames: ["type"] as const,
    registers: [o.metrics],
    async collect() {
      try {
        const { rows } = await o.db.query<{ type: string; at: string }>(
          "SELECT type, extract(epoch FROM max(finished_at))::text AS at FROM backup_runs GROUP BY type",
        );
        this.reset();
        for (const r of rows) this.set({ type: r.type }, Number(r.at));
      } catch (err) {
        o.logger.warn({ err: (err as Error).message }, "backup metrics: backup_runs could not be read");
      }
    },
  });
  new Gauge({
    name: "paylane_backup_schedule_seconds",
    help: "How often each backup type is due, in seconds, as paylane-dr setup recorded it",
    labelNames: ["type"] as const,
    registers: [o.metrics],
    async collect() {
      try {
        const { rows } = await o.db.query<{ type: string; interval_seconds: number }>(
          "SELECT type, interval_seconds FROM backup_schedules",
        );
        this.reset();
        for (const r of rows) this.set({ type: r.type }, Number(r.interval_seconds));
      } catch (err) {
        o.logger.warn({ err: (err as Error).message }, "backup metrics: backup_schedules could not be read");
      }
    },
  });
  void last;
}
