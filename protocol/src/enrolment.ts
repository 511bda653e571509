/**
 * Enrolment: how a kiosk with nothing but a single-use claim code becomes a
 * device of the fleet (AWS IoT fleet provisioning by claim, Azure DPS).
 *
 *   1. An admin creates claim codes for a site (`paylane-provision claim create`);
 *      the cloud stores only their sha256, with an expiry.
 *   2. The kiosk generates an Ed25519 key (kept in its data folder, never sent)
 *      and its own MQTT/HTTP secret, and sends the code, its public key and the
 *      scrypt hash of the secret, signed with the key, to `POST /api/v1/enrol`.
 *   3. The cloud burns the code, writes the device into the registry every
 *      consumer watches (gateway and cloud: no restart), and answers with the
 *      identity. The secret itself never crosses the network at enrolment.
 *
 * Rotation later uses the same shape, signed with the same key and sent with
 * the current credentials (`POST /api/v1/enrol/rotate`).
 */
import { createHash, randomInt } from "node:crypto";
import { z } from "zod";
import { CLAIM_CODE_DIGITS, claimCheckDigit, formatClaimCode } from "./setup-api.ts";
import { ID_PATTERN, RESERVED_SITES } from "./topics.ts";

// The claim code's shape and check digit live in the browser-safe setup-api.ts, so the kiosk's
// setup screen catches a typo with the same check the cloud uses.
export { CLAIM_CODE_DIGITS, formatClaimCode, parseClaimCode } from "./setup-api.ts";

/** How long a claim code lives unless `--ttl` says otherwise. */
export const DEFAULT_CLAIM_TTL_SECONDS = 24 * 3600;
/** The longest a claim code may live: it is a bearer credential. */
export const MAX_CLAIM_TTL_SECONDS = 30 * 24 * 3600;
/** Signed requests further than this from the cloud's clock are refused as `clock-skew`. */
export const ENROL_CLOCK_SKEW_SECONDS = 600;

/** A new claim code, formatted `12345-67890-12345-67890` (~63 bits). */
export function newClaimCode(): string {
  let body = "";
  for (let i = 0; i < CLAIM_CODE_DIGITS - 1; i++) body += String(randomInt(10));
  return formatClaimCode(body + claimCheckDigit(body));
}

/** What the cloud stores and looks codes up by: the sha256 of the 20 digits, hex. */
export function claimCodeHash(digits: string): string {
  return createHash("sha256").update(`paylane-claim-v1:${digits}`).digest("hex");
}

const id = z.string().regex(ID_PATTERN, `expected lower-case letters, digits, "-" or "_" (${ID_PATTERN})`);
const siteId = id.refine((s) => !RESERVED_SITES.has(s), "site id 'cloud' is reserved");
/** Only the registry's own parameters: a weaker hash (N=2) sent by a kiosk must not become its password. */
export const ENROL_SECRET_HASH_PATTERN = /^scrypt\$16384\$8\$1\$[0-9a-f]{32}\$[0-9a-f]{64}$/;
const secretHash = z
  .string()
  .regex(ENROL_SECRET_HASH_PATTERN, "expected hashSecret()'s scrypt hash (N=16384, r=8, p=1)");
/** An Ed25519 public key, SPKI DER in base64url (44 bytes → 59 characters). */
const publicKey = z.string().regex(/^[A-Za-z0-9_-]{40,80}$/, "expected an Ed25519 public key, SPKI DER in base64url");
const signature = z.string().regex(/^[A-Za-z0-9_-]{86}$/, "expected an Ed25519 signature (64 bytes, base64url)");
const at = z.iso.datetime({ offset: true });

/** `POST /api/v1/enrol` (no other credentials: the claim code is the credential). */
export const EnrolRequestSchema = z.strictObject({
  claim: z.string().min(1).max(64),
  site: siteId,
  device: id,
  publicKey,
  secretHash,
  /** When the kiosk signed it: a kiosk whose clock is far off is told so (`clock-skew`). */
  at,
  signature,
});
export type EnrolRequest = z.infer<typeof EnrolRequestSchema>;

/** 201 from `POST /api/v1/enrol`; the same again for a retry by the same key (a lost answer must not strand a kiosk). */
export const EnrolResponseSchema = z.object({
  site: siteId,
  device: id,
  /** The MQTT username (and HTTP Basic user): `{site}/{device}`. */
  username: z.string(),
  enrolledAt: at,
});
export type EnrolResponse = z.infer<typeof EnrolResponseSchema>;

/** `POST /api/v1/enrol/rotate`, sent with the device's current HTTP Basic credentials. */
export const RotateRequestSchema = z.strictObject({ secretHash, at, signature });
export type RotateRequest = z.infer<typeof RotateRequestSchema>;

/**
 * Why an enrolment or rotation was refused: the `reason` member of the
 * problem+json body, so the kiosk's setup screen can say how to fix it.
 */
export const ENROL_REFUSALS = {
  "claim-unknown": "this claim code is not known: check it, or create a new one (paylane-provision claim create)",
  "claim-used": "this claim code has already enrolled a kiosk: each code works once; create a new one",
  "claim-expired": "this claim code has expired: create a new one (paylane-provision claim create --ttl …)",
  "claim-other-site": "this claim code is for another site: use a code created for this kiosk's site",
  "device-taken": "another kiosk is enrolled under this device id: revoke it first, or give this kiosk another id",
  "clock-skew": "this kiosk's clock is far from the cloud's: set the time (NTP) and try again",
  "bad-signature": "the request's signature does not verify with the key sent",
  "device-revoked": "this device was revoked: enrol it again with a new claim code",
  "rate-limited": "too many enrolment attempts from this address: wait a minute and try again",
} as const;
export type EnrolRefusal = keyof typeof ENROL_REFUSALS;
export const EnrolProblemSchema = z.object({
  title: z.string(),
  status: z.number().int(),
  detail: z.string().optional(),
  reason: z.enum(Object.keys(ENROL_REFUSALS) as [EnrolRefusal, ...EnrolRefusal[]]).optional(),
});

/** The bytes an enrolment's signature covers: every field but the signature, in a fixed order. */
export function enrolSigningInput(r: Omit<EnrolRequest, "signature">): Buffer {
  return Buffer.from(
    [
      "paylane-enrol-v1",
      r.site,
      r.device,
      claimCodeHash(r.claim.replace(/[\s-]/g, "")),
      r.publicKey,
      r.secretHash,
      r.at,
    ].join("\n"),
  );
}

/** The bytes a rotation's signature covers. */
export function rotateSigningInput(site: string, device: string, r: Omit<RotateRequest, "signature">): Buffer {
  return Buffer.from(["paylane-rotate-v1", site, device, r.secretHash, r.at].join("\n"));
}

/** `cmd/rotate-credentials`: the kiosk makes a new secret and registers it through `POST /api/v1/enrol/rotate`. */
export const ROTATE_CREDENTIALS = "rotate-credentials";

/** A short fingerprint of a public key, shown on the setup screen and in `device list`: sha256, first 16 hex. */
export function publicKeyFingerprint(publicKeyB64url: string): string {
  return createHash("sha256").update(Buffer.from(publicKeyB64url, "base64url")).digest("hex").slice(0, 16);
}
