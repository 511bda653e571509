/**
 * Downsampled telemetry: a device's reports over [from, to) cut into buckets
 * of `step` seconds (aligned on multiples of step since the Unix epoch, so
 * the same step always yields the same bucket edges), with the average and
 * the maximum of each numeric field per bucket. Buckets without reports are
 * left out; a field a kiosk did not report in a bucket is null there.
 */
import type { DeviceAddress } from "@paylane/protocol";
import type { Queryable } from "../db/database.ts";

/** The fields the series carries: the report's name -> the column it is stored in. */
export const SERIES_FIELDS = {
  backlog: "backlog",
  oldestUnackedAgeSeconds: "oldest_unacked_age_s",
  replicaAgeSeconds: "replica_age_s",
  uptimeSeconds: "uptime_s",
  rssBytes: "rss_bytes",
  memoryFreeBytes: "mem_free_bytes",
  diskFreeBytes: "disk_free_bytes",
  cpuTemperatureC: "cpu_temp_c",
} as const;
export type SeriesField = keyof typeof SERIES_FIELDS;

export interface Aggregate {
  avg: number;
  max: number;
}

export interface Bucket {
  /** The bucket's start (ISO 8601). */
  at: string;
  /** Reports in the bucket. */
  count: number;
  values: Record<SeriesField, Aggregate | null>;
}

export interface SeriesQuery extends DeviceAddress {
  from: Date;
  to: Date;
  stepSeconds: number;
}

const FIELDS = Object.entries(SERIES_FIELDS) as Array<[SeriesField, string]>;

export async function telemetrySeries(db: Queryable, q: SeriesQuery): Promise<Bucket[]> {
  const aggregates = FIELDS.map(([, col]) => `avg(${col})::float8 AS ${col}_avg, max(${col})::float8 AS ${col}_max`);
  const { rows } = await db.query<Record<string, unknown> & { bucket: Date; n: number }>(
    `SELECT to_timestamp(floor(extract(epoch FROM at) / $5) * $5) AS bucket, count(*)::int AS n,
            ${aggregates.join(",\n            ")}
     FROM device_telemetry
     WHERE site_id = $1 AND device_id = $2 AND at >= $3 AND at < $4
     GROUP BY 1 ORDER BY 1`,
    [q.site, q.device, q.from, q.to, q.stepSeconds],
  );
  return rows.map((r) => {
    const values = {} as Record<SeriesField, Aggregate | null>;
    for (const [name, col] of FIELDS) {
      const avg = r[`${col}_avg`] as number | null;
      const max = r[`${col}_max`] as number | null;
      values[name] = avg === null || max === null ? null : { avg, max };
    }
    return { at: r.bucket.toISOString(), count: r.n, values };
  });
}
