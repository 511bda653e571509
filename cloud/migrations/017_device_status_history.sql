-- The ops console's fleet read models (issue 16): each kiosk's online/offline transitions, for the
-- device page's status history. Live presence stays in the presence store (Redis or in process);
-- this keeps what it forgets: when each kiosk came and went. Written by cloud/src/fleet/status-history.ts
-- from the bridge's applied statuses; only transitions are kept (a retained birth heard again at a
-- cloud reconnect is not a new row), so a kiosk adds two rows a connection, not one a report.
CREATE TABLE device_status_history (
  id bigserial PRIMARY KEY,
  site_id text NOT NULL,
  device_id text NOT NULL,
  state text NOT NULL CHECK (state IN ('online', 'offline')),
  -- when the cloud applied it (the Will carries no time of its own)
  at timestamptz NOT NULL,
  -- the device's connection counter (docs/status.md); null from a kiosk older than issue 14
  session bigint,
  -- the daemon's version on a birth
  version text
);
-- the device page reads one device's newest transitions
CREATE INDEX device_status_history_device ON device_status_history (site_id, device_id, at DESC, id DESC);
-- two cloud instances hearing the same birth or Will write it once
CREATE UNIQUE INDEX device_status_history_session ON device_status_history (site_id, device_id, state, session)
WHERE session IS NOT NULL;

-- The device page's alerts of one device (alert_states is keyed by alert key, indexed by site only).
CREATE INDEX alert_states_device ON alert_states (site_id, device_id, fired_at DESC);

-- The CSV exports walk check-ins and the ledger in time order across every site (keyset by time and
-- id); with a site they use the existing (site_id, at) / (site_id, recorded_at) indexes.
CREATE INDEX inbox_checkins_export ON inbox (at, entry_id) WHERE kind = 'checkin' AND outcome = 'applied';
CREATE INDEX ledger_recorded ON ledger_entries (recorded_at, id);
