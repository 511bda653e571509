/**
 * The cloud's view of its backups, read at each scrape from the tables
 * paylane-dr writes (backup_runs, backup_schedules): when each type last
 * succeeded and how often it is due, so an alert rule can say
 * `time() - paylane_backup_last_success_timestamp_seconds > 1.5 * paylane_backup_schedule_seconds`.
 * A type never backed up has no last-success series (absent, not 0).
 *
 * And the WAL archiver of the cloud's own database (`pg_stat_archiver`), so
 * archiving that fails between two backups pages someone (WalArchivingFailing)
 * instead of leaving pg_wal to fill and the next restore short of its WAL.
 * Postgres keeps these counts across clean restarts (a crash resets them: a
 * counter reset to Prometheus). A database that has never archived (archiving
 * off, or nothing to archive yet) has no last-archived series; one whose view
 * cannot be read has none of the three, so a failed read never looks like a
 * counter reset to 0. Either way every series stays declared (`# TYPE`).
 */
import type { Logger } from "pino";
import { Counter, Gauge, type Registry } from "prom-client";
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
  registerArchiverMetrics(o);
}

interface ArchiverRow {
  archived: string | number;
  failed: string | number;
  last_archived: string | number | null;
}

/**
 * Three series from one read of pg_stat_archiver per scrape: each metric's
 * collect asks for it, and the reads of one scrape share the first's answer.
 */
function registerArchiverMetrics(o: BackupMetricsOptions): void {
  let pending: Promise<ArchiverRow | undefined> | undefined;
  const read = (): Promise<ArchiverRow | undefined> => {
    if (!pending) {
      pending = o.db
        .query<ArchiverRow>(
          "SELECT archived_count::text AS archived, failed_count::text AS failed," +
            " extract(epoch FROM last_archived_time)::text AS last_archived FROM pg_stat_archiver",
        )
        .then(
          ({ rows }) => rows[0],
          (err: Error) => {
            o.logger.warn({ err: err.message }, "backup metrics: pg_stat_archiver could not be read");
            return undefined;
          },
        )
        .finally(() => {
          // one scrape's three collects run together; the next scrape reads again
          setImmediate(() => {
            pending = undefined;
          });
        });
    }
    return pending;
  };
  const counter = (name: string, help: string, column: "archived" | "failed") =>
    new Counter({
      name,
      help,
      registers: [o.metrics],
      async collect() {
        const row = await read();
        this.reset();
        if (row) this.inc(Number(row[column]));
        else this.remove();
      },
    });
  counter(
    "paylane_postgres_wal_archived_total",
    "WAL files the cloud's Postgres has archived (pg_stat_archiver.archived_count)",
    "archived",
  );
  counter(
    "paylane_postgres_wal_archive_failures_total",
    "Failed attempts of the cloud's Postgres to archive a WAL file (pg_stat_archiver.failed_count)",
    "failed",
  );
  new Gauge({
    name: "paylane_postgres_wal_last_archived_timestamp_seconds",
    help: "When the cloud's Postgres last archived a WAL file, in Unix seconds; absent if never",
    registers: [o.metrics],
    async collect() {
      const row = await read();
      this.reset();
      if (row?.last_archived != null) this.set(Number(row.last_archived));
      else this.remove();
    },
  });
}
