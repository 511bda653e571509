-- Trust boundaries (docs/security.md): what one kiosk's stolen credentials can publish must
-- neither erase another entry nor create money.

-- A different entry at a (site, device, seq) the inbox already holds: never "a duplicate".
-- The held entry stays in the inbox as it was; the newcomer is kept here, whole, for ops, and
-- the device is told on `ack` (conflicts) so it keeps its own copy. Redeliveries of the same
-- newcomer land on the unique index and are kept once.
CREATE TABLE seq_collisions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  site_id text NOT NULL,
  device_id text NOT NULL,
  seq bigint NOT NULL,
  -- the entry that arrived second
  entry_id text,
  kind text NOT NULL,
  at timestamptz,
  body jsonb,
  -- the entry the inbox held at that seq
  held_entry_id text,
  held_kind text NOT NULL,
  received_at timestamptz NOT NULL,
  -- set by ops when they have decided which entry was the kiosk's own
  resolved_at timestamptz,
  resolution jsonb
);
CREATE UNIQUE INDEX seq_collisions_entry ON seq_collisions (site_id, device_id, seq, coalesce(entry_id, ''));
CREATE INDEX seq_collisions_received ON seq_collisions (site_id, received_at DESC);

-- A top-up credits a wallet only against an intent the cloud issued online to that kiosk,
-- for that member and amount (POST /api/v1/topups/intents). The journaled top-up that
-- follows the terminal's approval uses the intent, once.
CREATE TABLE topup_intents (
  site_id text NOT NULL,
  device_id text NOT NULL,
  key uuid NOT NULL,
  member_id text NOT NULL,
  amount bigint NOT NULL CHECK (amount > 0),
  currency text NOT NULL,
  created_at timestamptz NOT NULL,
  -- the journal entry that used it
  used_seq bigint,
  used_at timestamptz,
  PRIMARY KEY (site_id, device_id, key),
  FOREIGN KEY (site_id, member_id) REFERENCES members (site_id, id)
);
CREATE INDEX topup_intents_device_created ON topup_intents (site_id, device_id, created_at DESC);

-- Per-kiosk top-up velocity: more intents (count or sum) in an hour than this raises an alert.
ALTER TABLE sites ADD COLUMN topup_velocity_count int NOT NULL DEFAULT 20 CHECK (topup_velocity_count > 0);
ALTER TABLE sites ADD COLUMN topup_velocity_amount bigint NOT NULL DEFAULT 50000 CHECK (topup_velocity_amount > 0);

-- Alerts the cloud raises itself (not journaled by a kiosk): top-up velocity. One per kiosk, kind and hour.
CREATE TABLE cloud_alerts (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  site_id text NOT NULL,
  device_id text NOT NULL,
  kind text NOT NULL,
  bucket timestamptz NOT NULL,
  detail jsonb NOT NULL,
  at timestamptz NOT NULL,
  UNIQUE (site_id, device_id, kind, bucket)
);

-- 006's function again, whole; the change is the top-up rule: a journaled top-up posts only
-- against an open intent of the same kiosk with the same member, amount and currency, and
-- uses it up. Anything else credits nothing and is kept as a ledger exception for ops.
CREATE OR REPLACE FUNCTION inbox_post_to_ledger() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  b jsonb := NEW.body;
  v_member text := NEW.body ->> 'memberId';
  v_amount bigint := (NEW.body ->> 'amount')::bigint;
  v_key text := 'kiosk:' || NEW.device_id || ':' || (NEW.body ->> 'key');
  wallet_currency text;
  prior_amount bigint;
  problem text;
  intent topup_intents%ROWTYPE;
BEGIN
  IF NEW.kind = 'payment' THEN
    v_amount := -v_amount;
  END IF;
  SELECT coalesce(w.currency, s.currency) INTO wallet_currency
  FROM members m JOIN sites s ON s.id = m.site_id
  LEFT JOIN wallets w ON w.site_id = m.site_id AND w.member_id = m.id
  WHERE m.site_id = NEW.site_id AND m.id = v_member;
  SELECT l.amount INTO prior_amount FROM ledger_entries l WHERE l.site_id = NEW.site_id AND l.request_key = v_key;
  IF wallet_currency IS NULL THEN
    problem := 'unknown member ' || v_member;
  ELSIF wallet_currency <> b ->> 'currency' THEN
    problem := 'currency ' || (b ->> 'currency') || ' does not match the wallet''s ' || wallet_currency;
  ELSIF prior_amount IS NOT NULL AND prior_amount <> v_amount THEN
    problem := 'payment key ' || (b ->> 'key') || ' was authorized for ' || prior_amount || ', the journal says ' || v_amount;
  END IF;
  IF problem IS NULL AND prior_amount IS NOT NULL AND NEW.kind = 'topup' THEN
    -- top-ups are never posted online: a second journaled top-up under a credited key is a replay
    problem := 'top-up ' || (b ->> 'key') || ' was already credited: nothing credited again';
  END IF;
  IF problem IS NULL AND prior_amount IS NOT NULL THEN
    -- authorized online before this entry existed: the entry links it to its kiosk seq, nothing is posted
    INSERT INTO ledger_journal_links (entry_id, site_id, device_id, seq)
    SELECT l.id, NEW.site_id, NEW.device_id, NEW.seq FROM ledger_entries l
    WHERE l.site_id = NEW.site_id AND l.request_key = v_key AND l.origin_seq IS NULL
    ON CONFLICT DO NOTHING;
    RETURN NULL;
  END IF;
  IF problem IS NULL AND NEW.kind = 'topup' THEN
    SELECT * INTO intent FROM topup_intents t
    WHERE t.site_id = NEW.site_id AND t.device_id = NEW.device_id
      AND t.key = (b ->> 'key')::uuid
    FOR UPDATE;
    IF NOT FOUND THEN
      problem := 'top-up ' || (b ->> 'key') || ' has no intent the cloud issued to this kiosk: nothing credited';
    ELSIF intent.used_seq IS NOT NULL THEN
      problem := 'top-up intent ' || (b ->> 'key') || ' was already used by seq ' || intent.used_seq || ': nothing credited';
    ELSIF intent.member_id <> v_member OR intent.amount <> v_amount OR intent.currency <> b ->> 'currency' THEN
      problem := 'top-up ' || (b ->> 'key') || ' does not match its intent (' || intent.member_id || ', ' || intent.amount
                 || ' ' || intent.currency || '): nothing credited';
    ELSE
      UPDATE topup_intents t SET used_seq = NEW.seq, used_at = NEW.received_at
      WHERE t.site_id = NEW.site_id AND t.device_id = NEW.device_id AND t.key = intent.key;
    END IF;
  END IF;
  IF problem IS NOT NULL THEN
    INSERT INTO ledger_exceptions (site_id, device_id, seq, entry_id, reason, at, recorded_at)
    VALUES (NEW.site_id, NEW.device_id, NEW.seq, NEW.entry_id, problem, NEW.at, NEW.received_at)
    ON CONFLICT DO NOTHING;
    RETURN NULL;
  END IF;
  PERFORM ledger_post(NEW.site_id, v_member, CASE NEW.kind WHEN 'payment' THEN 'purchase' ELSE 'topup' END, v_amount,
                      b ->> 'currency', v_key, NEW.device_id, NEW.seq, NULL,
                      CASE NEW.kind WHEN 'payment' THEN b ->> 'authorization' END, b ->> 'itemId', NULL,
                      CASE NEW.kind WHEN 'topup' THEN 'terminal ' || (b -> 'terminal' ->> 'reference') END,
                      NEW.at, NEW.received_at);
  RETURN NULL;
END
$$;

-- Alerts for ops: what kiosks journaled (staff calls, journal recoveries and rollbacks), and
-- what the cloud found (a second entry at a held seq, a journaled payment or top-up the ledger
-- would not post, top-up velocity).
CREATE OR REPLACE VIEW alerts AS
SELECT entry_id::uuid AS id, site_id, device_id, seq, kind, body AS detail, at, received_at
FROM inbox
WHERE kind IN ('staff-call', 'journal-recovered', 'journal-rolled-back') AND outcome = 'applied'
UNION ALL
SELECT id, site_id, device_id, seq, 'seq-collision',
       jsonb_build_object('seq', seq, 'heldEntryId', held_entry_id, 'heldKind', held_kind, 'entryId', entry_id,
                          'kind', kind, 'resolved', resolved_at IS NOT NULL),
       received_at, received_at
FROM seq_collisions
UNION ALL
SELECT md5(site_id || '/' || device_id || '/' || seq)::uuid, site_id, device_id, seq, 'ledger-exception',
       jsonb_build_object('reason', reason, 'entryId', entry_id), recorded_at, recorded_at
FROM ledger_exceptions
UNION ALL
SELECT id, site_id, device_id, NULL, kind, detail, at, at
FROM cloud_alerts;

DROP INDEX IF EXISTS inbox_alerts_at;
CREATE INDEX inbox_alerts_at ON inbox (site_id, at DESC)
WHERE kind IN ('staff-call', 'journal-recovered', 'journal-rolled-back') AND outcome = 'applied';
