-- Console operators (issue 16): accounts, login sessions with rotating refresh tokens, and the audit log.
-- A password is kept only as its argon2id hash; a refresh token only as the sha256 of its bytes (hex).
CREATE TABLE operators (
  username text PRIMARY KEY,
  password_hash text NOT NULL,
  role text NOT NULL CHECK (role IN ('viewer', 'operator', 'finance', 'admin')),
  -- the sites this operator may touch; NULL: every site
  sites text[],
  disabled boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL,
  last_login_at timestamptz,
  password_changed_at timestamptz NOT NULL
);

-- One row per login: the family every refresh token of that login belongs to. Revoking it (logout,
-- reuse of a spent refresh token, a disabled account, a new password or role) ends the login, and
-- the access tokens naming it (`sid`) are refused too.
CREATE TABLE operator_sessions (
  id uuid PRIMARY KEY,
  username text NOT NULL REFERENCES operators (username) ON DELETE CASCADE,
  created_at timestamptz NOT NULL,
  revoked_at timestamptz,
  reason text
);
CREATE INDEX operator_sessions_live ON operator_sessions (username) WHERE revoked_at IS NULL;

CREATE TABLE operator_refresh_tokens (
  token_hash text PRIMARY KEY,
  family uuid NOT NULL REFERENCES operator_sessions (id) ON DELETE CASCADE,
  issued_at timestamptz NOT NULL,
  -- set when it is exchanged for the next one; a second exchange is reuse
  used_at timestamptz,
  expires_at timestamptz NOT NULL
);
CREATE INDEX operator_refresh_tokens_family ON operator_refresh_tokens (family);

-- Every state-changing operator call and every login and logout: who, what, when, from where.
CREATE TABLE audit_log (
  id uuid PRIMARY KEY,
  at timestamptz NOT NULL,
  actor text NOT NULL,
  action text NOT NULL,
  target text,
  site text,
  address text,
  status integer NOT NULL,
  detail jsonb NOT NULL DEFAULT '{}'::jsonb
);
-- The listing is newest first, paged by (at, id); filtered by actor or site.
CREATE INDEX audit_log_at ON audit_log (at DESC, id DESC);
CREATE INDEX audit_log_actor ON audit_log (actor, at DESC, id DESC);
CREATE INDEX audit_log_site ON audit_log (site, at DESC, id DESC);
