-- The audit of commands to kiosks (issue 14): every `cmd/{name}` the cloud sent or saw on the
-- broker (an operator's tool publishes directly), who asked, and what the device answered.
--   status: pending   sent (or seen), no answer yet
--           accepted  the device started it
--           done / failed / expired   the device's final answer (answered_at set)
--           expired   also: its expiry passed before the device got it or answered (never run)
--           timeout   delivered or accepted, but no final answer by its expiry: outcome unknown
-- A later answer from the device always replaces what the cloud inferred (answered_at IS NULL).
CREATE TABLE device_commands (
  site_id text NOT NULL,
  device_id text NOT NULL,
  id text NOT NULL,
  name text NOT NULL,
  args jsonb NOT NULL DEFAULT '{}',
  requested_by text,
  requested_at timestamptz NOT NULL,
  expires_at timestamptz,
  status text NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'accepted', 'done', 'failed', 'expired', 'timeout')),
  result jsonb,
  reason text,
  -- last published while the device was online (its birth seen): it has it
  delivered_at timestamptz,
  -- the device's own time on its final answer
  answered_at timestamptz,
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (site_id, device_id, id)
);

-- a device's audit, newest first
CREATE INDEX device_commands_by_device ON device_commands (site_id, device_id, requested_at DESC, id);
-- what is still open: redelivered on a birth, swept at its expiry
CREATE INDEX device_commands_open ON device_commands (site_id, device_id) WHERE status IN ('pending', 'accepted');
