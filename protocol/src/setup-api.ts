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
