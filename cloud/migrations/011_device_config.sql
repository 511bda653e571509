-- Desired and reported configuration per device (issue 14): the desired config as the broker
-- retains it on `config` (whoever set it: this cloud or an operator's tool) and the device's
-- retained `state`. Drift is computed from the two (protocol's configDrift).
CREATE TABLE device_config (
  site_id text NOT NULL,
  device_id text NOT NULL,
  -- DesiredConfig {version, settings, by, at}; null: none, or cleared
  desired jsonb,
  -- the highest desired version seen: a new one is above it, even after a clear
  desired_version bigint NOT NULL DEFAULT 0,
  desired_at timestamptz,
  -- ReportedState {version, applied, rejected, error?, at}; null: never reported
  reported jsonb,
  reported_at timestamptz,
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (site_id, device_id)
);
