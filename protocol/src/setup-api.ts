/**
 * The kiosk's setup API: what the daemon serves to its touch UI until the
 * kiosk is enrolled (and the diagnostics page after), defined once like
 * kiosk-api.ts, with zod/mini so the UI bundle stays small. Import it as
 * `@paylane/protocol/setup-api`.
 *
 * While not enrolled the daemon serves the UI page and these routes (POSTs
 * carry the local token, as in kiosk-api.ts); `GET /api/state` answers 409
 * with `{ setup: true }` so a UI knows to show the setup screen.
 */
import * as z from "zod/mini";

export const ENROLMENT_STATES = ["waiting-for-code", "enrolling", "enrolled", "failed"] as const;
export type EnrolmentState = (typeof ENROLMENT_STATES)[number];

/**
 * Why an enrolment failed: the cloud's refusal reasons (protocol/enrolment.ts
 * ENROL_REFUSALS) plus what the kiosk finds by itself.
 */
export const SETUP_FAILURES = [
  "claim-unknown",
  "claim-used",
  "claim-expired",
  "claim-other-site",
  "device-taken",
  "clock-skew",
  "bad-signature",
  "device-revoked",
  "rate-limited",
  /** Checked on the kiosk before sending: wrong length or check digit. */
  "invalid-code",
  /** No network interface with an address, or DNS fails. */
  "no-network",
  /** The network is up but the cloud does not answer (or its TLS certificate is not trusted). */
  "cloud-unreachable",
  /** Anything else the cloud answered (5xx): shown with its detail. */
  "cloud-error",
] as const;
export type SetupFailure = (typeof SETUP_FAILURES)[number];

const check = z.object({
  ok: z.boolean(),
  /** One line for a technician, e.g. "PN532 v1.6 on /dev/serial0" or "paper out". */
  detail: z.string(),
});
export type DiagnosticCheck = z.infer<typeof check>;

/** `GET /api/setup`. */
export const SetupStateSchema = z.object({
  enrolled: z.boolean(),
  site: z.string(),
  /** The id this kiosk enrols under (from the image, or derived from its key). */
  device: z.string(),
  /** sha256 of the kiosk's public key, first 16 hex: the installer can match it in `device list`. */
  fingerprint: z.string(),
  cloudUrl: z.string(),
  network: z.object({ online: z.boolean(), addresses: z.array(z.string()) }),
  enrolment: z.object({
    state: z.enum(ENROLMENT_STATES),
    /** Set when `failed`. */
    reason: z.optional(z.enum(SETUP_FAILURES)),
    /** What went wrong, in words. */
    message: z.optional(z.string()),
    /** How to fix it, in words. */
    fix: z.optional(z.string()),
    /** Steps done, for the progress display: "key", "request", "registered", "connected". */
    step: z.optional(z.string()),
  }),
  /** A claim code was baked into the image (the kiosk enrols by itself; no code to type). */
  claimInImage: z.boolean(),
});
export type SetupState = z.infer<typeof SetupStateSchema>;

/** `GET /api/diagnostics`: each check a technician needs at first boot. */
export const DiagnosticsSchema = z.object({
  reader: check,
  printer: z.extend(check, { paper: z.optional(z.enum(["ok", "low", "out", "unknown"])) }),
  gpio: check,
  cloud: check,
  clock: check,
  at: z.string(),
});
export type Diagnostics = z.infer<typeof DiagnosticsSchema>;

/** `POST /api/setup/claim`: a code typed on the keypad or scanned (a barcode scanner types it). */
export const ClaimEntrySchema = z.object({ code: z.string().check(z.minLength(1), z.maxLength(64)) });

/** The setup routes, with the shapes kiosk-api.ts uses. */
export const setupApi = {
  state: { method: "GET", path: "/api/setup", response: SetupStateSchema },
  /** 202: enrolment started (follow it on /api/setup); 400 with a problem for a code with a typo. */
  claim: { method: "POST", path: "/api/setup/claim", body: ClaimEntrySchema, response: SetupStateSchema },
  diagnostics: { method: "GET", path: "/api/diagnostics", response: DiagnosticsSchema },
  /** Prints a test receipt; 200 `{ printed, detail }`. */
  testReceipt: {
    method: "POST",
    path: "/api/diagnostics/test-receipt",
    response: z.object({ printed: z.boolean(), detail: z.string() }),
  },
} as const;

// Claim codes: defined here, not in enrolment.ts (which needs node:crypto), so the kiosk's
// setup screen refuses a typo with the very check the cloud uses. enrolment.ts re-exports them.

/** A claim code is 20 digits (19 random, one check digit), shown as four groups of five: typeable on a keypad. */
export const CLAIM_CODE_DIGITS = 20;

/** The Luhn check digit of a string of digits: catches any one wrong digit and most swapped neighbours. */
export function claimCheckDigit(digits: string): number {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = Number(digits[digits.length - 1 - i]);
    if (i % 2 === 0) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return (10 - (sum % 10)) % 10;
}

/** Groups of five digits separated by `-`. */
export function formatClaimCode(digits: string): string {
  return digits.match(/.{1,5}/g)?.join("-") ?? digits;
}

/**
 * The 20 digits of a claim code as typed or scanned (spaces and dashes
 * ignored), or why it cannot be one: a typo is caught on the kiosk before
 * anything is sent.
 */
export function parseClaimCode(input: string): { ok: true; digits: string } | { ok: false; error: string } {
  const digits = input.replace(/[\s-]/g, "");
  if (!/^\d+$/.test(digits))
    return { ok: false, error: "a claim code has digits only (groups of five, dashes allowed)" };
  if (digits.length !== CLAIM_CODE_DIGITS)
    return { ok: false, error: `a claim code has ${CLAIM_CODE_DIGITS} digits; this has ${digits.length}` };
  if (claimCheckDigit(digits.slice(0, -1)) !== Number(digits.at(-1)))
    return {
      ok: false,
      error: "this claim code has a typo (its check digit does not match): check each group of five",
    };
  return { ok: true, digits };
}
