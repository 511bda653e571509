-- Every table carries site_id so partitioning or Citus distribution needs no schema change.
CREATE TABLE sites (
  id text PRIMARY KEY,
  name text NOT NULL,
  timezone text NOT NULL DEFAULT 'UTC',
  -- bumped with every member change; the kiosk records it with each decision
  members_version bigint NOT NULL DEFAULT 0
);

CREATE TABLE members (
  site_id text NOT NULL REFERENCES sites (id),
  id text NOT NULL,
  name text NOT NULL,
  card_uid text,
  code text,
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
  version bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (site_id, id),
  UNIQUE (site_id, card_uid),
  UNIQUE (site_id, code)
);

CREATE TABLE devices (
  site_id text NOT NULL REFERENCES sites (id),
  id text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (site_id, id)
);

-- Each device's contiguous high-water mark: every seq <= acked_seq is committed.
CREATE TABLE device_streams (
  site_id text NOT NULL,
  device_id text NOT NULL,
  acked_seq bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (site_id, device_id),
  FOREIGN KEY (site_id, device_id) REFERENCES devices (site_id, id)
);

-- The event log and the idempotency gate: every entry a device journaled is
-- committed here at most once, whatever arrives twice. An entry is applied by
-- committing its row with outcome 'applied'; what the cloud derives from it
-- (views below, reconciliation later) reads this table.
CREATE TABLE inbox (
  site_id text NOT NULL,
  device_id text NOT NULL,
  seq bigint NOT NULL,
  entry_id text,
  kind text NOT NULL,
  outcome text NOT NULL CHECK (outcome IN ('applied', 'quarantined')),
  -- device time and validated body of an applied entry; null when quarantined
  at timestamptz,
  body jsonb,
  received_at timestamptz NOT NULL,
  PRIMARY KEY (site_id, device_id, seq),
  CHECK (outcome = 'quarantined' OR (at IS NOT NULL AND body IS NOT NULL))
);
CREATE INDEX inbox_checkins_at ON inbox (site_id, at DESC) WHERE kind = 'checkin' AND outcome = 'applied';

-- Check-ins are the applied `checkin` entries of the log.
CREATE VIEW checkins AS
SELECT entry_id::uuid AS id, site_id, device_id, seq,
       body ->> 'memberId' AS member_id,
       body -> 'credential' ->> 'type' AS credential_type,
       at, received_at,
       (body ->> 'replicaVersion')::bigint AS replica_version,
       (body ->> 'offline')::boolean AS offline
FROM inbox
WHERE kind = 'checkin' AND outcome = 'applied';

-- What was refused and why, kept for ops. Entries with a seq are also in the
-- inbox (as 'quarantined'), so the stream stays contiguous and is acked.
CREATE TABLE quarantine (
  id bigserial PRIMARY KEY,
  site_id text NOT NULL,
  device_id text NOT NULL,
  seq bigint,
  code text NOT NULL,
  reason text NOT NULL,
  payload text NOT NULL,
  received_at timestamptz NOT NULL
);
CREATE UNIQUE INDEX quarantine_entry ON quarantine (site_id, device_id, seq) WHERE seq IS NOT NULL;
