-- Offline top-ups (docs/payments.md, "Offline top-ups"): off by default. A site may let a kiosk
-- that cannot get a top-up intent from the cloud charge a bank card anyway, up to a per-kiosk
-- daily cap. Such a top-up credits nothing when it arrives: it is held `pending` until the
-- kiosk reports its payment terminal's end-of-day totals (`terminal-settlement`) and those
-- totals equal what the kiosk's journaled top-ups of the period add up to.

-- Minor units per kiosk per site-local day; 0 turns offline top-ups off.
ALTER TABLE sites ADD COLUMN offline_topup_daily_cap bigint NOT NULL DEFAULT 0 CHECK (offline_topup_daily_cap >= 0);

-- A journaled top-up a kiosk took offline, within the cap: pending until a matching settlement
-- credits it (credited), or ops turn it down (rejected).
CREATE TABLE offline_topups (
  site_id text NOT NULL,
  device_id text NOT NULL,
  -- the `topup` entry
  seq bigint NOT NULL,
  key uuid NOT NULL,
  member_id text NOT NULL,
  amount bigint NOT NULL CHECK (amount > 0),
  currency text NOT NULL,
  terminal_reference text NOT NULL,
  -- the site-local day of the entry's device time: the day its cap counts against
  day date NOT NULL,
  at timestamptz NOT NULL,
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'credited', 'rejected')),
  recorded_at timestamptz NOT NULL,
  -- the `terminal-settlement` entry that credited it, and the ledger entry it credited
  settled_seq bigint,
  settled_at timestamptz,
  ledger_entry uuid REFERENCES ledger_entries (id),
  PRIMARY KEY (site_id, device_id, seq),
  UNIQUE (site_id, device_id, key),
  UNIQUE (site_id, device_id, terminal_reference),
  FOREIGN KEY (site_id, member_id) REFERENCES members (site_id, id)
);
CREATE INDEX offline_topups_day ON offline_topups (site_id, device_id, day);
CREATE INDEX offline_topups_pending ON offline_topups (site_id, device_id) WHERE status = 'pending';

-- A kiosk's top-ups by terminal reference, for matching a settlement against them.
CREATE INDEX inbox_topup_reference ON inbox (site_id, device_id, (body -> 'terminal' ->> 'reference'))
WHERE kind = 'topup' AND outcome = 'applied';

-- Every settlement a kiosk reported, and what became of it.
CREATE TABLE terminal_settlements (
  site_id text NOT NULL,
  device_id text NOT NULL,
  seq bigint NOT NULL,
  -- the site-local day the kiosk ran it on, as it reported it
  day text,
  currency text NOT NULL,
  -- what the terminal reported
  total bigint NOT NULL,
  count int NOT NULL,
  -- what the kiosk's journaled top-ups with the settlement's references add up to
  expected_total bigint NOT NULL,
  expected_count int NOT NULL,
  matched boolean NOT NULL,
  -- pending offline top-ups this settlement credited
  credited int NOT NULL,
  credited_amount bigint NOT NULL,
  at timestamptz NOT NULL,
  recorded_at timestamptz NOT NULL,
  PRIMARY KEY (site_id, device_id, seq)
);

-- 007's function again, whole; the change is in the top-up branch: a top-up the kiosk journaled
-- with authorization "offline" and for which the cloud issued no intent is held in
-- offline_topups (credits nothing) when the site allows offline top-ups and this kiosk's
-- offline top-ups of that day, this one included, stay within the cap; otherwise it is a
-- ledger exception, as before.
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
  offline boolean := false;
  v_cap bigint;
  v_day date;
  v_so_far bigint;
  v_inserted int;
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
      IF b ->> 'authorization' = 'offline' THEN
        offline := true;
      ELSE
        problem := 'top-up ' || (b ->> 'key') || ' has no intent the cloud issued to this kiosk: nothing credited';
      END IF;
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
  IF problem IS NULL AND offline THEN
    -- one kiosk's offline top-ups are counted against its cap one at a time
    PERFORM pg_advisory_xact_lock(hashtext('paylane:offline-topups:' || NEW.site_id || '/' || NEW.device_id));
    SELECT s.offline_topup_daily_cap, (NEW.at AT TIME ZONE s.timezone)::date INTO v_cap, v_day
    FROM sites s WHERE s.id = NEW.site_id;
    IF coalesce(v_cap, 0) = 0 THEN
      problem := 'offline top-up ' || (b ->> 'key') || ': this site does not allow offline top-ups: nothing credited';
    ELSIF NEW.at > NEW.received_at + interval '1 day' OR NEW.at < NEW.received_at - interval '7 days' THEN
      -- the cap is per day of the entry's device time: a window keeps forged dates from multiplying it
      problem := 'offline top-up ' || (b ->> 'key') || ' is dated ' || NEW.at
                 || ', outside the week before its arrival that offline top-ups are held for: nothing credited';
    ELSE
      SELECT coalesce(sum(o.amount), 0) INTO v_so_far FROM offline_topups o
      WHERE o.site_id = NEW.site_id AND o.device_id = NEW.device_id AND o.day = v_day;
      IF v_so_far + v_amount > v_cap THEN
        problem := 'offline top-up ' || (b ->> 'key') || ' of ' || v_amount || ' takes this kiosk''s offline top-ups of '
                   || v_day || ' to ' || (v_so_far + v_amount) || ', above the site''s cap of ' || v_cap || ': nothing credited';
      ELSE
        INSERT INTO offline_topups (site_id, device_id, seq, key, member_id, amount, currency, terminal_reference, day, at,
                                    recorded_at)
        VALUES (NEW.site_id, NEW.device_id, NEW.seq, (b ->> 'key')::uuid, v_member, v_amount, b ->> 'currency',
                b -> 'terminal' ->> 'reference', v_day, NEW.at, NEW.received_at)
        ON CONFLICT DO NOTHING;
        GET DIAGNOSTICS v_inserted = ROW_COUNT;
        IF v_inserted = 0 THEN
          problem := 'offline top-up ' || (b ->> 'key') || ': its key or terminal reference ' || (b -> 'terminal' ->> 'reference')
                     || ' is already held for this kiosk: nothing credited';
        END IF;
      END IF;
    END IF;
    IF problem IS NULL THEN
      -- pending: credited only by a terminal settlement that accounts for it
      RETURN NULL;
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

-- A `terminal-settlement`: the terminal's end-of-day totals and the references of the top-ups
-- the kiosk journaled in the period. It matches when its count is the number of its (distinct)
-- references, every reference is a top-up of this kiosk that was credited against an intent or
-- is held as an offline top-up, and those add up to its total in its currency. A match credits
-- every pending offline top-up it covers, once (status credited, under the top-up's own key and
-- seq). Anything else credits nothing, and the difference goes to ops as a ledger exception.
-- It never raises: a settlement that cannot be applied is kept for ops.
CREATE FUNCTION inbox_settle_offline_topups() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  b jsonb := NEW.body;
  refs text[] := ARRAY(SELECT jsonb_array_elements_text(NEW.body -> 'references'));
  v_total bigint := (NEW.body ->> 'total')::bigint;
  v_count int := (NEW.body ->> 'count')::int;
  v_currency text := NEW.body ->> 'currency';
  distinct_refs int;
  expected_total bigint;
  expected_count int;
  unmatched text[];
  covered_refs text[];
  still_pending int;
  matched boolean;
  credited int := 0;
  credited_amount bigint := 0;
  t offline_topups%ROWTYPE;
  v_entry uuid;
  problem text;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('paylane:offline-topups:' || NEW.site_id || '/' || NEW.device_id));
  SELECT count(DISTINCT r) INTO distinct_refs FROM unnest(refs) r;
  -- online: credited against an intent; offline: held pending (or credited by an earlier settlement)
  WITH covered AS (
    SELECT DISTINCT ON (i.body -> 'terminal' ->> 'reference')
           i.body -> 'terminal' ->> 'reference' AS ref, (i.body ->> 'amount')::bigint AS amount, i.body ->> 'currency' AS currency
    FROM inbox i
    WHERE i.site_id = NEW.site_id AND i.device_id = NEW.device_id AND i.kind = 'topup' AND i.outcome = 'applied'
      AND i.body -> 'terminal' ->> 'reference' = ANY (refs)
      AND (EXISTS (SELECT 1 FROM topup_intents ti
                   WHERE ti.site_id = i.site_id AND ti.device_id = i.device_id AND ti.used_seq = i.seq)
           OR EXISTS (SELECT 1 FROM offline_topups o
                      WHERE o.site_id = i.site_id AND o.device_id = i.device_id AND o.seq = i.seq
                        AND o.status IN ('pending', 'credited')))
    ORDER BY i.body -> 'terminal' ->> 'reference', i.seq
  )
  SELECT coalesce(sum(c.amount), 0), count(*), coalesce(array_agg(c.ref), '{}')
  INTO expected_total, expected_count, covered_refs
  FROM covered c WHERE c.currency = v_currency;
  unmatched := ARRAY(SELECT DISTINCT r FROM unnest(refs) r WHERE NOT (r = ANY (covered_refs)));
  matched := cardinality(unmatched) = 0 AND distinct_refs = cardinality(refs) AND distinct_refs = v_count
             AND expected_count = v_count AND expected_total = v_total;
  IF matched THEN
    FOR t IN SELECT * FROM offline_topups o
             WHERE o.site_id = NEW.site_id AND o.device_id = NEW.device_id AND o.status = 'pending'
               AND o.terminal_reference = ANY (refs)
             ORDER BY o.seq FOR UPDATE
    LOOP
      BEGIN
        SELECT p.entry_id INTO v_entry
        FROM ledger_post(NEW.site_id, t.member_id, 'topup', t.amount, t.currency, 'kiosk:' || NEW.device_id || ':' || t.key,
                         NEW.device_id, t.seq, NULL, 'offline', NULL, NULL,
                         'terminal ' || t.terminal_reference || ' (offline, settled by seq ' || NEW.seq || ')',
                         t.at, NEW.received_at) p;
        UPDATE offline_topups o SET status = 'credited', settled_seq = NEW.seq, settled_at = NEW.received_at, ledger_entry = v_entry
        WHERE o.site_id = t.site_id AND o.device_id = t.device_id AND o.seq = t.seq;
        credited := credited + 1;
        credited_amount := credited_amount + t.amount;
      EXCEPTION WHEN OTHERS THEN
        problem := coalesce(problem || '; ', '') || 'offline top-up ' || t.key || ' could not be credited: ' || SQLERRM;
      END;
    END LOOP;
  ELSE
    SELECT count(*) INTO still_pending FROM offline_topups o
    WHERE o.site_id = NEW.site_id AND o.device_id = NEW.device_id AND o.status = 'pending';
    problem := 'terminal settlement does not match: the terminal reports ' || v_total || ' ' || v_currency || ' in ' || v_count
               || ' payments, this kiosk''s top-ups with its ' || cardinality(refs) || ' references add up to ' || expected_total
               || ' in ' || expected_count || ' (difference ' || (v_total - expected_total) || ')'
               || CASE WHEN cardinality(unmatched) > 0
                       THEN '; references that are no top-up of this kiosk: ' || array_to_string(unmatched[1:10], ', ')
                       ELSE '' END
               || CASE WHEN distinct_refs <> cardinality(refs) THEN '; references repeat' ELSE '' END
               || '; ' || still_pending || ' pending offline top-ups stay uncredited';
  END IF;
  IF problem IS NOT NULL THEN
    INSERT INTO ledger_exceptions (site_id, device_id, seq, entry_id, reason, at, recorded_at)
    VALUES (NEW.site_id, NEW.device_id, NEW.seq, NEW.entry_id, problem, NEW.at, NEW.received_at)
    ON CONFLICT DO NOTHING;
  END IF;
  INSERT INTO terminal_settlements (site_id, device_id, seq, day, currency, total, count, expected_total, expected_count,
                                    matched, credited, credited_amount, at, recorded_at)
  VALUES (NEW.site_id, NEW.device_id, NEW.seq, b ->> 'day', v_currency, v_total, v_count, expected_total,
          expected_count, matched, credited, credited_amount, NEW.at, NEW.received_at)
  ON CONFLICT DO NOTHING;
  RETURN NULL;
END
$$;

CREATE TRIGGER inbox_settlement AFTER INSERT ON inbox
FOR EACH ROW WHEN (NEW.outcome = 'applied' AND NEW.kind = 'terminal-settlement')
EXECUTE FUNCTION inbox_settle_offline_topups();
