/**
 * Telemetry history: every report the bridge decodes is queued here and
 * written in batches, one multi-row INSERT per flush, so thousands of kiosks
 * reporting every few seconds cost a statement a second, not one per report.
 * The bridge's listener only pushes onto a bounded queue and returns: a slow
 * database never holds up acks. When the queue is full the oldest reports are
 * dropped (counted in paylane_telemetry_dropped_total): history may lose a
 * point under overload, the fleet's ingest never waits for it.
 *
 * The newest report of each device also goes to the latest-value store
 * (Redis or in process), once per flush. Old rows are deleted past the
 * retention, on the injected timers.
 */
import { type DeviceAddress, realTimers, type Telemetry, type Timers } from "@paylane/protocol";
import type { Logger } from "pino";
import { Counter, type Registry as MetricsRegistry } from "prom-client";
import type { Queryable } from "../db/database.ts";
import type { LatestTelemetryStore, LatestTelemetryUpdate } from "./latest-store.ts";

export interface TelemetryRecorderOptions {
  db: Queryable;
  latest: LatestTelemetryStore;
  logger: Logger;
  metrics?: MetricsRegistry;
  now?: () => Date;
  timers?: Timers;
  /** How often queued reports are written (ms). */
  flushMs?: number;
  /** A flush starts at once when this many reports are queued; also the most rows one INSERT carries. */
  batchRows?: number;
  /** Reports queued beyond this drop the oldest. */
  maxQueued?: number;
  /** Rows older than this many days are deleted. */
  retentionDays: number;
  /** How often the retention delete runs (ms). */
  purgeEveryMs?: number;
  /**
   * Whether this instance writes the history and purges it (default always). Every cloud instance
   * hears every report; only the leader (bridge/leader.ts) writes it, so N instances make one row.
   */
  writes?: () => boolean;
}

interface Row {
  device: DeviceAddress;
  telemetry: Telemetry;
  receivedAt: Date;
}

/** The columns of device_telemetry after site, device and time, from a report. */
const COLUMNS = [
  ["uptime_s", (t: Telemetry) => t.uptimeSeconds],
  ["backlog", (t: Telemetry) => t.backlog],
  ["oldest_unacked_age_s", (t: Telemetry) => t.oldestUnackedAgeSeconds],
  ["replica_age_s", (t: Telemetry) => t.replicaAgeSeconds],
  ["rss_bytes", (t: Telemetry) => t.memory?.rssBytes],
  ["mem_free_bytes", (t: Telemetry) => t.memory?.freeBytes],
  ["disk_free_bytes", (t: Telemetry) => t.disk?.freeBytes],
  ["disk_total_bytes", (t: Telemetry) => t.disk?.totalBytes],
  ["cpu_temp_c", (t: Telemetry) => t.cpuTemperatureC],
] as const;

const PER_ROW = 5 + COLUMNS.length; // site, device, at, received_at, report + the numeric columns

export class TelemetryRecorder {
  readonly #o: Required<Omit<TelemetryRecorderOptions, "metrics" | "writes">>;
  readonly #writes: () => boolean;
  readonly #queue: Row[] = [];
  readonly #inserted: Counter | undefined;
  readonly #dropped: Counter | undefined;
  #flushTimer: unknown;
  #purgeTimer: unknown;
  #flushing: Promise<void> | undefined;
  #purging = false;
  #stopped = true;

  constructor(o: TelemetryRecorderOptions) {
    this.#o = {
      db: o.db,
      latest: o.latest,
      logger: o.logger,
      retentionDays: o.retentionDays,
      now: o.now ?? (() => new Date()),
      timers: o.timers ?? realTimers,
      flushMs: o.flushMs ?? 1000,
      batchRows: o.batchRows ?? 1000,
      maxQueued: o.maxQueued ?? 50_000,
      purgeEveryMs: o.purgeEveryMs ?? 3_600_000,
    };
    this.#writes = o.writes ?? (() => true);
    if (o.metrics) {
      this.#inserted = new Counter({
        name: "paylane_telemetry_rows_total",
        help: "Telemetry reports written to the history",
        registers: [o.metrics],
      });
      this.#dropped = new Counter({
        name: "paylane_telemetry_dropped_total",
        help: "Telemetry reports dropped from the history (queue full, or the write failed)",
        registers: [o.metrics],
      });
    }
  }

  /** The bridge's listener: queues and returns at once. */
  readonly record = (device: DeviceAddress, telemetry: Telemetry): void => {
    this.#queue.push({ device, telemetry, receivedAt: this.#o.now() });
    const over = this.#queue.length - this.#o.maxQueued;
    if (over > 0) {
      this.#queue.splice(0, over);
      this.#dropped?.inc(over);
    }
    if (this.#queue.length >= this.#o.batchRows && !this.#flushing && !this.#stopped) void this.flush();
  };

  get queued(): number {
    return this.#queue.length;
  }

  start(): void {
    this.#stopped = false;
    this.#scheduleFlush();
    this.#schedulePurge();
  }

  /** Writes what is queued, then stops the timers. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#o.timers.clearTimeout(this.#flushTimer);
    this.#o.timers.clearTimeout(this.#purgeTimer);
    await this.flush();
  }

  /** Writes everything queued now (one INSERT per batchRows reports); never rejects. */
  async flush(): Promise<void> {
    while (this.#flushing) await this.#flushing;
    this.#flushing = this.#drain().finally(() => {
      this.#flushing = undefined;
    });
    await this.#flushing;
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#o.batchRows);
      // The newest report does not need Postgres: it stays current while the history cannot be written.
      await this.#putLatest(batch);
      if (!this.#writes()) continue; // another instance (the leader) writes the history
      try {
        await this.#insert(batch);
        this.#inserted?.inc(batch.length);
      } catch (err) {
        // Dropped, not retried: the next report of each kiosk follows within seconds.
        this.#dropped?.inc(batch.length);
        this.#o.logger.warn({ err: (err as Error).message, rows: batch.length }, "telemetry history write failed");
        return;
      }
    }
  }

  async #insert(batch: Row[]): Promise<void> {
    const params: unknown[] = [];
    const values: string[] = [];
    for (const r of batch) {
      const p = params.length;
      values.push(`(${Array.from({ length: PER_ROW }, (_, i) => `$${p + i + 1}`).join(", ")})`);
      params.push(r.device.site, r.device.device, r.telemetry.at, r.receivedAt, JSON.stringify(r.telemetry));
      for (const [, get] of COLUMNS) params.push(get(r.telemetry) ?? null);
    }
    await this.#o.db.query(
      `INSERT INTO device_telemetry (site_id, device_id, at, received_at, report, ${COLUMNS.map(([c]) => c).join(", ")})
       VALUES ${values.join(", ")}`,
      params,
    );
  }

  /** The newest report of each device in the batch goes to the latest-value store. */
  async #putLatest(batch: Row[]): Promise<void> {
    const newest = new Map<string, LatestTelemetryUpdate>();
    for (const r of batch) {
      const k = `${r.device.site}/${r.device.device}`;
      const cur = newest.get(k);
      if (cur && Date.parse(cur.telemetry.at) >= Date.parse(r.telemetry.at)) continue;
      newest.set(k, { device: r.device, telemetry: r.telemetry, receivedAt: r.receivedAt.toISOString() });
    }
    await this.#o.latest
      .put([...newest.values()])
      .catch((err: Error) => this.#o.logger.warn({ err: err.message }, "latest telemetry not stored"));
  }

  /** Deletes rows older than the retention; returns how many. */
  async purge(): Promise<number> {
    const before = new Date(this.#o.now().getTime() - this.#o.retentionDays * 86_400_000);
    const { rows } = await this.#o.db.query<{ n: number }>(
      `WITH gone AS (DELETE FROM device_telemetry WHERE at < $1 RETURNING 1) SELECT count(*)::int AS n FROM gone`,
      [before],
    );
    const n = rows[0]?.n ?? 0;
    if (n > 0) this.#o.logger.info({ purged: n, before: before.toISOString() }, "telemetry history purged");
    return n;
  }

  #scheduleFlush(): void {
    this.#flushTimer = this.#o.timers.setTimeout(() => {
      void this.flush().finally(() => {
        if (!this.#stopped) this.#scheduleFlush();
      });
    }, this.#o.flushMs);
  }

  /** Every purgeEveryMs, scheduled at each firing (a slow purge is not run twice at once). */
  #schedulePurge(): void {
    this.#purgeTimer = this.#o.timers.setTimeout(() => {
      if (this.#stopped) return;
      this.#schedulePurge();
      if (this.#purging || !this.#writes()) return;
      this.#purging = true;
      void this.purge()
        .catch((err: Error) => this.#o.logger.warn({ err: err.message }, "telemetry history purge failed"))
        .finally(() => {
          this.#purging = false;
        });
    }, this.#o.purgeEveryMs);
  }
}
