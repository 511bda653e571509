-- Every ledger entry traceable to its kiosk seq. An online payment is posted when the cloud
-- authorizes it, before the kiosk has journaled it; the journal entry that follows (same key)
-- links the two here, so the ledger row itself is never edited.
CREATE TABLE ledger_journal_links (
  entry_id uuid PRIMARY KEY REFERENCES ledger_entries (id),
  site_id text NOT NULL,
  device_id text NOT NULL,
  seq bigint NOT NULL,
  UNIQUE (site_id, device_id, seq)
);

-- 005's function again, whole (a function is only ever replaced whole); the one change is the
-- link step. A separate link trigger would hang on trigger name order and lock the wallet again.
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
  IF problem IS NULL AND prior_amount IS NOT NULL THEN
    -- authorized online before this entry existed: the entry links it to its kiosk seq, nothing is posted
    INSERT INTO ledger_journal_links (entry_id, site_id, device_id, seq)
    SELECT l.id, NEW.site_id, NEW.device_id, NEW.seq FROM ledger_entries l
    WHERE l.site_id = NEW.site_id AND l.request_key = v_key AND l.origin_seq IS NULL
    ON CONFLICT DO NOTHING;
    RETURN NULL;
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

