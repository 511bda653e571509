-- The live feed (issue 16, docs/live-feed.md): what ops watch live is announced on the channel
-- `paylane_live` by the transaction that commits it, so every API instance on this database hears
-- it at commit (LISTEN/NOTIFY), whichever instance's bridge or route wrote it.
--
-- A notification names the row, it does not carry it (a payload is at most 8000 bytes, and the
-- feed shows each row as its REST read does): {"s": schema, "t": type, "site", "device", and the
-- row's key}. `s` is the row's schema: NOTIFY is per database, and clouds on one database in
-- different schemas (tests, several environments) hear each other's notifications and drop them.
-- Device status changes have no table: the cloud notifies them itself (cloud/src/live/notify.ts).

-- Check-ins and journal alerts (staff calls, journal recoveries) as the ingest commits them: one
-- statement-level trigger a batch, since the bridge commits hundreds of entries in one INSERT.
CREATE FUNCTION live_notify_inbox() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('paylane_live', json_build_object(
    's', TG_TABLE_SCHEMA,
    't', CASE n.kind WHEN 'checkin' THEN 'checkin' ELSE 'alert' END,
    'site', n.site_id, 'device', n.device_id, 'seq', n.seq)::text)
  FROM (SELECT * FROM new_rows
        WHERE outcome = 'applied' AND kind IN ('checkin', 'staff-call', 'journal-recovered')
        ORDER BY site_id, device_id, seq) n;
  RETURN NULL;
END
$$;
CREATE TRIGGER inbox_live AFTER INSERT ON inbox
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION live_notify_inbox();

-- Payments, refunds, top-ups and adjustments: every ledger entry, by id (a kiosk's payment posts
-- in the ingest statement, an operator's refund in its own transaction).
CREATE FUNCTION live_notify_ledger() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('paylane_live', json_build_object(
    's', TG_TABLE_SCHEMA, 't', 'payment', 'site', n.site_id, 'device', n.origin_device, 'id', n.id)::text)
  FROM (SELECT * FROM new_rows ORDER BY site_id, member_id, n) n;
  RETURN NULL;
END
$$;
CREATE TRIGGER ledger_live AFTER INSERT ON ledger_entries
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION live_notify_ledger();

-- The notifications service's alerts: a key firing (first or again) or resolving. Writes that only
-- move the scan's bookkeeping (last_event_at) are not news.
CREATE FUNCTION live_notify_alert_state() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('paylane_live', json_build_object(
    's', TG_TABLE_SCHEMA, 't', 'alert', 'site', NEW.site_id, 'device', NEW.device_id, 'key', NEW.key)::text);
  RETURN NULL;
END
$$;
CREATE TRIGGER alert_states_live_insert AFTER INSERT ON alert_states
FOR EACH ROW EXECUTE FUNCTION live_notify_alert_state();
CREATE TRIGGER alert_states_live_update AFTER UPDATE ON alert_states
FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.fired_count IS DISTINCT FROM NEW.fired_count)
EXECUTE FUNCTION live_notify_alert_state();

-- Commands to kiosks: each change of status (accepted, done, failed, expired, timeout). A command
-- just sent (pending) is not a result; an answer to one the cloud never saw inserts its row answered.
CREATE FUNCTION live_notify_command() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('paylane_live', json_build_object(
    's', TG_TABLE_SCHEMA, 't', 'command-result', 'site', NEW.site_id, 'device', NEW.device_id, 'id', NEW.id)::text);
  RETURN NULL;
END
$$;
CREATE TRIGGER device_commands_live_insert AFTER INSERT ON device_commands
FOR EACH ROW WHEN (NEW.status <> 'pending')
EXECUTE FUNCTION live_notify_command();
CREATE TRIGGER device_commands_live_update AFTER UPDATE OF status ON device_commands
FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
EXECUTE FUNCTION live_notify_command();
