-- Enrolment (issue 15): single-use claim codes, the devices they enrolled, and the audit of both.
-- A claim code itself is never stored: only claimCodeHash() of its digits (sha256, hex).
CREATE TABLE enrol_claims (
  site_id text NOT NULL,
  id uuid NOT NULL,
  code_hash text NOT NULL UNIQUE,
  created_by text NOT NULL,
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  used_at timestamptz,
  used_by_device text,
  -- the public key (SPKI DER, base64url) that burned it: a retry by the same key gets the same answer
  used_by_key text,
  PRIMARY KEY (site_id, id)
);
CREATE INDEX enrol_claims_by_site ON enrol_claims (site_id, created_at DESC);

-- One row per device enrolled through a claim: its Ed25519 key signs rotations later.
CREATE TABLE enrolled_devices (
  site_id text NOT NULL,
  device_id text NOT NULL,
  public_key text NOT NULL,
  key_fingerprint text NOT NULL,
  -- the scrypt hash now in the registry (a hash, never a secret): tells a retry from another kiosk
  secret_hash text NOT NULL,
  enrolled_at timestamptz NOT NULL,
  claim_id uuid NOT NULL,
  revoked_at timestamptz,
  rotated_at timestamptz,
  PRIMARY KEY (site_id, device_id)
);

-- Every claim created, enrolment, refusal, revocation and rotation, with who and from where.
CREATE TABLE enrolment_audit (
  site_id text,
  id bigserial,
  at timestamptz NOT NULL,
  action text NOT NULL
    CHECK (action IN ('claim-created', 'enrolled', 'refused', 'revoked', 'rotated', 'rotate-asked')),
  device_id text,
  claim_id uuid,
  -- the operator token's sub, or "device"
  actor text NOT NULL,
  address text,
  outcome text NOT NULL CHECK (outcome IN ('ok', 'refused')),
  reason text,
  PRIMARY KEY (id)
);
CREATE INDEX enrolment_audit_by_site ON enrolment_audit (site_id, at DESC);
