-- Online authorization (`POST /api/v1/payments`) in one statement, so one database round trip:
-- claim the idempotency key (or replay its answer), check member, currency and price, lock the
-- wallet and check its balance, post the purchase through ledger_post (the money rules stay
-- there), and store the answer under the key. Called alone (autocommit), it is its own
-- transaction: the answer is stored with the work it describes, or nothing is.
--
-- Concurrent calls with one key: the second one's INSERT waits on the first's uncommitted key
-- row, then finds it committed and replays its answer (a VOLATILE function takes a fresh
-- snapshot per statement, so the SELECT that follows sees that commit).

-- Minor units as text exactly as formatMoney (protocol/src/money-format.ts) writes them for
-- the same currency: the caller passes what Intl.NumberFormat makes of that currency
-- (cloud/src/ledger/money-pattern.ts): {"digits": 2, "positive": "€#", "negative": "-€#",
-- "group": ",", "decimal": "."}, '#' standing for the grouped number.
CREATE FUNCTION money_text(p_amount bigint, p_format jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT replace(
    CASE WHEN p_amount < 0 THEN p_format ->> 'negative' ELSE p_format ->> 'positive' END,
    '#',
    regexp_replace((abs(p_amount) / scale)::text, '(\d)(?=(\d{3})+$)', '\1' || (p_format ->> 'group'), 'g')
    || CASE WHEN digits > 0 THEN (p_format ->> 'decimal') || lpad((abs(p_amount) % scale)::text, digits, '0') ELSE '' END)
  FROM (SELECT (p_format ->> 'digits')::int AS digits, (10 ^ (p_format ->> 'digits')::int)::bigint AS scale) f
$$;

-- outcome: 'fresh' (decided now), 'replayed' (the key's stored answer) or 'mismatch' (the key
-- was first used with another request_hash; http_status and body are null).
CREATE FUNCTION payment_authorize(
  p_site text, p_device text, p_key text, p_request_hash text,
  p_member text, p_amount bigint, p_currency text, p_item text,
  p_at timestamptz, p_now timestamptz, p_money jsonb
) RETURNS TABLE (outcome text, http_status int, body json)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  v_scope text := 'device:' || p_device;
  v_request_key text := 'kiosk:' || p_device || ':' || p_key;
  stored idempotency_keys%ROWTYPE;
  v_status text;
  v_site_currency text;
  v_price bigint;
  v_balance bigint;
  v_entry uuid;
  v_balance_after bigint;
  v_reason text;
  v_message text;
  answer json;
BEGIN
  INSERT INTO idempotency_keys (site_id, scope, key, request_hash, created_at)
  VALUES (p_site, v_scope, p_key, p_request_hash, p_now)
  ON CONFLICT DO NOTHING;
  IF NOT FOUND THEN
    SELECT * INTO stored FROM idempotency_keys k WHERE k.site_id = p_site AND k.scope = v_scope AND k.key = p_key;
    IF NOT FOUND THEN
      -- purged between the two statements (older than the retention): the caller retries and it is fresh
      RAISE EXCEPTION 'idempotency key % vanished while being read; retry', p_key;
    END IF;
    IF stored.request_hash <> p_request_hash THEN
      RETURN QUERY SELECT 'mismatch'::text, NULL::int, NULL::json;
    ELSE
      RETURN QUERY SELECT 'replayed'::text, stored.status_code, stored.response;
    END IF;
    RETURN;
  END IF;

  SELECT m.status, s.currency, (SELECT i.price FROM items i WHERE i.site_id = s.id AND i.id = p_item AND i.active)
  INTO v_status, v_site_currency, v_price
  FROM members m JOIN sites s ON s.id = m.site_id WHERE m.site_id = p_site AND m.id = p_member;
  IF NOT FOUND THEN
    v_reason := 'unknown-member';
    v_message := 'This card is not registered here';
  ELSIF v_status <> 'active' THEN
    v_reason := 'member-revoked';
    v_message := 'This card is blocked';
  ELSIF p_currency <> v_site_currency THEN
    v_reason := 'currency-mismatch';
    v_message := 'This venue takes ' || v_site_currency || ', not ' || p_currency;
  ELSIF p_item IS NOT NULL AND v_price IS NULL THEN
    v_reason := 'unknown-item';
    v_message := 'This item is no longer sold here';
  ELSIF p_item IS NOT NULL AND v_price <> p_amount THEN
    v_reason := 'price-mismatch';
    v_message := 'The price changed to ' || money_text(v_price, p_money) || '; please choose the item again';
  ELSE
    -- Lock the wallet (created empty on first use) before reading the balance the decision rests on;
    -- ledger_post locks it again, a no-op in this transaction but its guard for every other caller.
    INSERT INTO wallets (site_id, member_id, currency) VALUES (p_site, p_member, v_site_currency) ON CONFLICT DO NOTHING;
    SELECT w.balance, l.id, l.balance_after INTO v_balance, v_entry, v_balance_after
    FROM wallets w LEFT JOIN ledger_entries l ON l.site_id = w.site_id AND l.request_key = v_request_key
    WHERE w.site_id = p_site AND w.member_id = p_member
    FOR UPDATE OF w;
    -- v_entry set: already in the ledger under this key (its stored answer was purged, or the journal came first)
    IF v_entry IS NULL AND v_balance < p_amount THEN
      v_reason := 'insufficient-funds';
      v_message := 'Insufficient funds: the balance is ' || money_text(v_balance, p_money);
    ELSIF v_entry IS NULL THEN
      SELECT p.entry_id, p.balance_after INTO v_entry, v_balance_after
      FROM ledger_post(p_site, p_member, 'purchase', -p_amount, p_currency, v_request_key, p_device, NULL, NULL,
                       'online', p_item, NULL, NULL, p_at, p_now) p;
    END IF;
  END IF;

  -- The same keys in the same order as the PaymentResponse the TypeScript side used to build.
  IF v_reason IS NULL THEN
    answer := json_build_object('status', 'approved', 'key', p_key, 'paymentId', v_entry, 'memberId', p_member,
                                'amount', p_amount, 'currency', p_currency, 'balance', v_balance_after,
                                'at', to_char(p_now AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'));
  ELSE
    answer := json_build_object('status', 'declined', 'key', p_key, 'reason', v_reason, 'message', v_message,
                                'memberId', p_member, 'amount', p_amount, 'currency', p_currency,
                                'balance', CASE WHEN v_reason = 'insufficient-funds' THEN v_balance END);
  END IF;
  UPDATE idempotency_keys k SET status_code = 200, response = answer
  WHERE k.site_id = p_site AND k.scope = v_scope AND k.key = p_key;
  RETURN QUERY SELECT 'fresh'::text, 200, answer;
END
$$;
