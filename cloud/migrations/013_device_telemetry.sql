-- Telemetry history (issue 14): one row per report a kiosk sent, kept TELEMETRY_RETENTION_DAYS.
-- The numeric fields the API downsamples are columns (avg/max per bucket without touching jsonb);
-- the whole report is kept as `report` for anything else ops want later.
CREATE TABLE device_telemetry (
  site_id text NOT NULL,
  device_id text NOT NULL,
  -- The device's own time of the report (telemetry.at).
  at timestamptz NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now(),
  uptime_s double precision,
  backlog integer,
  oldest_unacked_age_s double precision,
  replica_age_s double precision,
  rss_bytes bigint,
  mem_free_bytes bigint,
  disk_free_bytes bigint,
  disk_total_bytes bigint,
  cpu_temp_c double precision,
  report jsonb NOT NULL
);
-- Rows arrive in (roughly) time order and are only ever appended, so a BRIN index on `at` is a few
-- pages for months of rows, and makes the retention delete (at < cutoff) skip all but the oldest blocks.
CREATE INDEX device_telemetry_at_brin ON device_telemetry USING brin (at);
-- The series API reads one device over a time range.
CREATE INDEX device_telemetry_device_at ON device_telemetry (site_id, device_id, at);
