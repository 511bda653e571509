-- Backups of the cloud's cluster that paylane-dr took and pgBackRest finished: what the cloud exports as
-- paylane_backup_last_success_timestamp_seconds{type}, and the schedule each type is due on
-- (paylane_backup_schedule_seconds{type}), so an alert fires when a backup is older than its schedule.
CREATE TABLE backup_runs (
  -- pgBackRest's label, e.g. 20261205-184800F_20261205-185012I
  label text PRIMARY KEY,
  stanza text NOT NULL,
  type text NOT NULL CHECK (type IN ('full', 'diff', 'incr')),
  started_at timestamptz NOT NULL,
  finished_at timestamptz NOT NULL,
  -- the cluster's size as backed up, and what the backup added to the repository (compressed, encrypted)
  size_bytes bigint NOT NULL,
  repo_size_bytes bigint NOT NULL,
  -- the WAL segments needed to make the backup consistent
  wal_start text,
  wal_stop text,
  recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX backup_runs_type_finished ON backup_runs (type, finished_at DESC);

CREATE TABLE backup_schedules (
  type text PRIMARY KEY CHECK (type IN ('full', 'diff', 'incr')),
  interval_seconds integer NOT NULL CHECK (interval_seconds > 0),
  updated_at timestamptz NOT NULL DEFAULT now()
);
