-- The notifications service's alerts (cloud/src/alerts, docs/alerts.md): one row per alert key,
-- kept after it resolves, so a restarted cloud neither fires a firing alert again nor forgets it.
CREATE TABLE alert_states (
  key text PRIMARY KEY,
  rule text NOT NULL,
  site_id text NOT NULL,
  device_id text,
  severity text NOT NULL,
  state text NOT NULL CHECK (state IN ('firing', 'resolved')),
  summary text NOT NULL,
  detail jsonb,
  fired_at timestamptz NOT NULL,
  resolved_at timestamptz,
  -- who resolved it: 'condition' (it cleared), 'expiry' (an event-like alert's time ran out), or 'ops:<operator>'
  resolved_by text,
  -- how many times this key has fired
  fired_count integer NOT NULL DEFAULT 1,
  -- event-like alerts: the newest source event (its received_at) already taken into account
  last_event_at timestamptz,
  updated_at timestamptz NOT NULL
);
CREATE INDEX alert_states_firing ON alert_states (site_id) WHERE state = 'firing';

-- How far the scan for event-like alerts (staff calls, rollbacks, ledger exceptions) has read, by received_at.
CREATE TABLE alert_scan_marks (
  id text PRIMARY KEY,
  at timestamptz NOT NULL
);
