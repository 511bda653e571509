-- Payments and wallets: an append-only ledger in integer minor units.
-- The money rules live here, next to the data, in one function (ledger_post)
-- that both online authorization and the journal's ingest call, in the
-- caller's transaction: a wallet's balance is always the sum of its entries,
-- each origin (kiosk + payment key, or operator + request) posts at most once.

-- The site's currency and its offline authorization limits (minor units).
ALTER TABLE sites ADD COLUMN currency text NOT NULL DEFAULT 'EUR' CHECK (currency ~ '^[A-Z]{3}$');
ALTER TABLE sites ADD COLUMN offline_per_payment bigint NOT NULL DEFAULT 2000 CHECK (offline_per_payment >= 0);
ALTER TABLE sites ADD COLUMN offline_per_card_daily bigint NOT NULL DEFAULT 5000 CHECK (offline_per_card_daily >= 0);
ALTER TABLE sites ADD COLUMN offline_kiosk_exposure bigint NOT NULL DEFAULT 20000 CHECK (offline_kiosk_exposure >= 0);

-- The price list, replicated to kiosks with the wallets.
CREATE TABLE items (
  site_id text NOT NULL REFERENCES sites (id),
  id text NOT NULL CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
  name text NOT NULL,
  price bigint NOT NULL CHECK (price > 0),
  active boolean NOT NULL DEFAULT true,
  PRIMARY KEY (site_id, id)
);

-- One wallet per member and site, in the site's currency. `balance` is the sum of
-- the wallet's ledger entries, maintained by ledger_post in the same transaction.
CREATE TABLE wallets (
  site_id text NOT NULL,
  member_id text NOT NULL,
  currency text NOT NULL,
  balance bigint NOT NULL DEFAULT 0,
  -- how many entries the wallet has: the position of the next one
  entries bigint NOT NULL DEFAULT 0,
  -- an offline payment overdrew the wallet: kiosks refuse offline spending until it is settled
  offline_blocked boolean NOT NULL DEFAULT false,
  -- the transaction that last changed the row: kiosks pull changes by snapshot xmin (see wallet-sync.ts)
  changed_xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (site_id, member_id),
  FOREIGN KEY (site_id, member_id) REFERENCES members (site_id, id)
);

CREATE TABLE ledger_entries (
  id uuid PRIMARY KEY,
  site_id text NOT NULL,
  member_id text NOT NULL,
  -- position in the wallet, 1, 2, 3, ...: the order balances were computed in
  n bigint NOT NULL,
  kind text NOT NULL CHECK (kind IN ('topup', 'purchase', 'refund', 'adjustment')),
  -- signed minor units: credits > 0, debits < 0
  amount bigint NOT NULL CHECK (amount <> 0),
  currency text NOT NULL,
  balance_after bigint NOT NULL,
  -- the origin: a kiosk (its journal seq when the entry came through the journal) or an operator
  origin_device text,
  origin_seq bigint,
  operator text,
  -- the idempotency key, namespaced by origin: 'kiosk:{device}:{payment key}' or 'operator:{sub}:{key}'
  request_key text NOT NULL,
  "authorization" text CHECK ("authorization" IN ('online', 'offline')),
  item_id text,
  refund_of uuid REFERENCES ledger_entries (id),
  note text,
  -- business time (device time for kiosk entries) and when the ledger recorded it
  at timestamptz NOT NULL,
  recorded_at timestamptz NOT NULL,
  FOREIGN KEY (site_id, member_id) REFERENCES wallets (site_id, member_id),
  CHECK ((origin_device IS NOT NULL) <> (operator IS NOT NULL)),
  CHECK (kind = 'adjustment' OR (kind = 'purchase') = (amount < 0)),
  CHECK ((kind = 'refund') = (refund_of IS NOT NULL))
);
CREATE UNIQUE INDEX ledger_request ON ledger_entries (site_id, request_key);
CREATE UNIQUE INDEX ledger_origin_seq ON ledger_entries (site_id, origin_device, origin_seq) WHERE origin_seq IS NOT NULL;
CREATE UNIQUE INDEX ledger_wallet_n ON ledger_entries (site_id, member_id, n);
CREATE INDEX ledger_site_recorded ON ledger_entries (site_id, recorded_at DESC, id DESC);
CREATE INDEX ledger_refunds ON ledger_entries (refund_of) WHERE refund_of IS NOT NULL;

-- The first answer given for an idempotency key, replayed for every retry of it.
-- Kept at least 7 days; after that the ledger itself still refuses a second posting.
CREATE TABLE idempotency_keys (
  site_id text NOT NULL,
  -- 'device:{id}' or 'operator:{sub}'
  scope text NOT NULL,
  key text NOT NULL,
  request_hash text NOT NULL,
  status_code int,
  -- json, not jsonb: a replay is byte for byte the first answer
  response json,
  created_at timestamptz NOT NULL,
  PRIMARY KEY (site_id, scope, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- A wallet driven below zero by a payment (offline payments from kiosks that could not
-- see each other): a conflict for ops, open until a credit brings the balance back to zero.
CREATE TABLE wallet_overdrafts (
  id uuid PRIMARY KEY,
  site_id text NOT NULL,
  member_id text NOT NULL,
  opened_by uuid NOT NULL REFERENCES ledger_entries (id),
  opened_at timestamptz NOT NULL,
  balance_at_open bigint NOT NULL,
  settled_by uuid REFERENCES ledger_entries (id),
  settled_at timestamptz
);
CREATE UNIQUE INDEX wallet_overdrafts_open ON wallet_overdrafts (site_id, member_id) WHERE settled_at IS NULL;

-- A journaled payment or top-up the ledger could not apply (unknown member, wrong currency,
-- a key reused with another amount): kept in the inbox as committed, and raised to ops here.
CREATE TABLE ledger_exceptions (
  site_id text NOT NULL,
  device_id text NOT NULL,
  seq bigint NOT NULL,
  entry_id text,
  reason text NOT NULL,
  at timestamptz NOT NULL,
  recorded_at timestamptz NOT NULL,
  PRIMARY KEY (site_id, device_id, seq)
);

-- Posts one entry to a wallet, or returns the entry already posted for p_request_key
-- (posted = false). Locks the wallet row, so postings to one wallet are serialised and
-- each sees the balance the previous one left. Raises (and so posts nothing) on a
-- currency mismatch or a refund beyond what is left of its purchase.
CREATE FUNCTION ledger_post(
  p_site text, p_member text, p_kind text, p_amount bigint, p_currency text, p_request_key text,
  p_origin_device text, p_origin_seq bigint, p_operator text, p_authorization text,
  p_item text, p_refund_of uuid, p_note text, p_at timestamptz, p_recorded_at timestamptz
) RETURNS TABLE (entry_id uuid, balance_after bigint, amount bigint, posted boolean, overdraft_opened boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  w wallets%ROWTYPE;
  prior ledger_entries%ROWTYPE;
  original ledger_entries%ROWTYPE;
  refunded bigint;
  new_balance bigint;
  new_id uuid := gen_random_uuid();
  opened boolean := false;
BEGIN
  INSERT INTO wallets (site_id, member_id, currency)
  SELECT p_site, p_member, s.currency FROM sites s WHERE s.id = p_site
  ON CONFLICT DO NOTHING;
  SELECT * INTO w FROM wallets WHERE site_id = p_site AND member_id = p_member FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no site %', p_site USING ERRCODE = 'PL000';
  END IF;
  SELECT * INTO prior FROM ledger_entries l WHERE l.site_id = p_site AND l.request_key = p_request_key;
  IF FOUND THEN
    RETURN QUERY SELECT prior.id, prior.balance_after, prior.amount, false, false;
    RETURN;
  END IF;
  IF w.currency <> p_currency THEN
    RAISE EXCEPTION 'currency % does not match the wallet''s %', p_currency, w.currency USING ERRCODE = 'PL001';
  END IF;
  IF p_kind = 'refund' THEN
    SELECT * INTO original FROM ledger_entries l
    WHERE l.id = p_refund_of AND l.site_id = p_site AND l.member_id = p_member AND l.kind = 'purchase';
    IF NOT FOUND THEN
      RAISE EXCEPTION 'refund_of % is not a purchase of this wallet', p_refund_of USING ERRCODE = 'PL002';
    END IF;
    SELECT coalesce(sum(l.amount), 0) INTO refunded FROM ledger_entries l WHERE l.refund_of = p_refund_of;
    IF refunded + p_amount > -original.amount THEN
      RAISE EXCEPTION 'a refund of % is more than the % left to refund of this payment', p_amount, -original.amount - refunded
        USING ERRCODE = 'PL003';
    END IF;
  END IF;
  new_balance := w.balance + p_amount;
  INSERT INTO ledger_entries (id, site_id, member_id, n, kind, amount, currency, balance_after, origin_device, origin_seq,
                              operator, request_key, "authorization", item_id, refund_of, note, at, recorded_at)
  VALUES (new_id, p_site, p_member, w.entries + 1, p_kind, p_amount, p_currency, new_balance, p_origin_device, p_origin_seq,
          p_operator, p_request_key, p_authorization, p_item, p_refund_of, p_note, p_at, p_recorded_at);
  IF new_balance < 0 AND p_amount < 0 THEN
    INSERT INTO wallet_overdrafts (id, site_id, member_id, opened_by, opened_at, balance_at_open)
    VALUES (gen_random_uuid(), p_site, p_member, new_id, p_recorded_at, new_balance)
    ON CONFLICT (site_id, member_id) WHERE settled_at IS NULL DO NOTHING;
    GET DIAGNOSTICS refunded = ROW_COUNT;
    opened := refunded > 0;
  ELSIF new_balance >= 0 AND w.offline_blocked THEN
    UPDATE wallet_overdrafts o SET settled_by = new_id, settled_at = p_recorded_at
    WHERE o.site_id = p_site AND o.member_id = p_member AND o.settled_at IS NULL;
  END IF;
  UPDATE wallets SET balance = new_balance, entries = w.entries + 1,
         offline_blocked = CASE WHEN new_balance < 0 AND p_amount < 0 THEN true WHEN new_balance >= 0 THEN false ELSE w.offline_blocked END,
         changed_xid = pg_current_xact_id(), updated_at = p_recorded_at
  WHERE site_id = p_site AND member_id = p_member;
  RETURN QUERY SELECT new_id, new_balance, p_amount, true, opened;
END
$$;

-- A journaled `payment` or `topup` reaches the ledger in the very statement that commits
-- it to the inbox: applied exactly once, because a duplicate delivery inserts no inbox
-- row and so fires nothing. It never raises: what cannot be posted is kept for ops.
CREATE FUNCTION inbox_post_to_ledger() RETURNS trigger
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

CREATE TRIGGER inbox_ledger AFTER INSERT ON inbox
FOR EACH ROW WHEN (NEW.outcome = 'applied' AND NEW.kind IN ('payment', 'topup'))
EXECUTE FUNCTION inbox_post_to_ledger();
