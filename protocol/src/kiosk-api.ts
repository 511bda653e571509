/**
 * The kiosk's local API: the contract between the daemon (device/src/local-api.ts)
 * and its touch UI (ui/src/kiosk), defined once. The daemon validates requests
 * with these schemas; the UI checks what arrives with them; the UI tests' fake
 * daemon serves and pushes only what they allow.
 *
 * Written with `zod/mini` (functions, not methods) so the UI bundle carries
 * only the schemas it uses, not all of zod. Import it as
 * `@paylane/protocol/kiosk-api`: the package's index pulls in the MQTT
 * schemas, which the browser does not need.
 *
 * Every POST is `Content-Type: application/json` with `Authorization: Bearer
 * <token>`: the daemon puts this boot's token in the page it serves, as
 * `<meta name="paylane-local-token" content="…">` (LOCAL_TOKEN_META); tools on
 * the kiosk read it from `<dataDir>/local-api-token`. Other origins are refused.
 * Errors are `application/problem+json` (ProblemSchema).
 *
 * The routes are `kioskApi` below. `WS /api/live` sends LiveMessage: a
 * `state` message first, then changes and results. A payment session ends
 * with a `payment-result` (approved / declined) or a `payment-ended`
 * (cancelled, or idle past `expiresAt`). See docs/payments.md.
 */
import * as z from "zod/mini";

/** The `<meta name>` of the page the daemon serves that holds this boot's local API token. */
export const LOCAL_TOKEN_META = "paylane-local-token";

/** An amount of money: an integer of minor units, never a float. */
const minorUnits = z.int();
const currency = z.string().check(z.regex(/^[A-Z]{3}$/));
const optionalString = z.optional(z.string());

export const TapOutcomeSchema = z.enum(["welcome", "unknown", "already", "refused"]);
export type TapOutcome = z.infer<typeof TapOutcomeSchema>;

/** The answer to one tap or booking code. */
export const TapResultSchema = z.object({
  outcome: TapOutcomeSchema,
  /** Member's display name, for `welcome` and `already`. */
  name: optionalString,
  /** The sentence to show, e.g. "Welcome, Ada" or "Card not recognised". */
  message: z.string(),
  /** Journal seq of the check-in, for `welcome`. */
  seq: z.optional(z.number()),
  /** Journal entry id of the check-in (the transaction id on its receipt), for `welcome`. */
  id: optionalString,
  at: z.string(),
});
export type TapResult = z.infer<typeof TapResultSchema>;

/**
 * What became of a result's receipt, sent after the result (printing never
 * holds up the answer). When nothing was printed the UI shows `qr` instead.
 */
export const ReceiptNoticeSchema = z.discriminatedUnion("printed", [
  z.object({ id: z.string(), printed: z.literal(true) }),
  z.object({
    id: z.string(),
    printed: z.literal(false),
    /** paper-out, disconnected, not-responding, timeout, busy, stopped, error */
    reason: z.string(),
    /** The transaction id as a QR code: an SVG data URL (only our own become an <img> source). */
    qr: z.string().check(z.startsWith("data:image/svg+xml;base64,")),
  }),
]);
export type ReceiptNotice = z.infer<typeof ReceiptNoticeSchema>;

/**
 * The operating mode and the screen's settings, set by ops (`cmd/set-mode`,
 * desired configuration). Outside "in-service" the screen shows the mode's
 * text instead of "Tap your card", and taps are refused politely.
 */
export const ScreenSettingsSchema = z.object({
  mode: z.enum(["in-service", "maintenance", "out-of-service"]),
  texts: z.optional(z.object({ welcome: optionalString, maintenance: optionalString, outOfService: optionalString })),
  /** How long an unfinished interaction waits before the screen returns to idle. */
  idleTimeoutSeconds: z.optional(z.number()),
});
export type ScreenSettings = z.infer<typeof ScreenSettingsSchema>;

export const KioskStateSchema = z.object({
  site: z.string(),
  device: z.string(),
  /** The kiosk can see the cloud (broker connected and the cloud's status is online). */
  online: z.boolean(),
  broker: z.boolean(),
  cloud: z.boolean(),
  /**
   * `pn532` on a UART or `pcsc` (a USB reader through pcscd). `simulated`: a PN532 simulator the page can place
   * cards on. While `disconnected` the UI offers code entry.
   */
  reader: z.object({
    kind: z.enum(["pn532", "pcsc"]),
    simulated: z.boolean(),
    state: z.enum(["ok", "degraded", "disconnected"]),
  }),
  /**
   * The card terminal's link; null: none configured. While `disconnected` (unplugged, restarting) the screen
   * offers no top-up, so no member is sent to a terminal that cannot answer. Absent from older daemons.
   */
  terminal: z.optional(z.nullable(z.enum(["ready", "busy", "disconnected"]))),
  /** Journal entries not yet acknowledged by the cloud. */
  backlog: z.number(),
  /** "failing": the journal cannot write (disk full, I/O error); check-ins are refused until it recovers. */
  storage: z.enum(["ok", "failing"]),
  /** What ops set for the screen (mode, texts, idle timeout); absent from a daemon that predates it. */
  screen: z.optional(ScreenSettingsSchema),
});
export type KioskState = z.infer<typeof KioskStateSchema>;

/** The site's price list and what the kiosk can sell, amounts in minor units of `currency`. */
export const CatalogSchema = z.object({
  /** False until the kiosk has its site's wallets and prices (first sync); payments are refused until then. */
  ready: z.boolean(),
  currency,
  items: z.array(z.object({ id: z.string(), name: z.string(), price: minorUnits })),
  /** A payment terminal is attached: members can top up their wallet with a bank card. */
  topups: z.boolean(),
  /** Suggested top-up amounts, minor units. */
  topupAmounts: z.array(minorUnits),
  /** Amounts a member may enter freely are between 1 and this (the per-payment limit online). */
  maxAmount: minorUnits,
});
export type Catalog = z.infer<typeof CatalogSchema>;

export const PaymentKindSchema = z.enum(["purchase", "topup"]);
export type PaymentKind = z.infer<typeof PaymentKindSchema>;

/** A payment in progress at the kiosk: one at a time. */
export const PaymentSessionSchema = z.object({
  id: z.string(),
  kind: PaymentKindSchema,
  amount: minorUnits,
  currency,
  itemName: optionalString,
  /** awaiting-card: tap a member card; authorizing: asking the cloud (or deciding offline); awaiting-terminal: pay at the terminal. */
  state: z.enum(["awaiting-card", "authorizing", "awaiting-terminal"]),
  /** Left alone until then, the session ends by itself (nothing charged). */
  expiresAt: z.string(),
});
export type PaymentSession = z.infer<typeof PaymentSessionSchema>;

export const PaymentResultSchema = z.object({
  sessionId: z.string(),
  kind: PaymentKindSchema,
  outcome: z.enum(["approved", "declined"]),
  /** The sentence to show: "Paid €2.50 — new balance €7.50", "Insufficient funds: balance €1.00". */
  message: z.string(),
  /** Member's display name, when the card was recognised. */
  name: optionalString,
  amount: minorUnits,
  currency,
  itemName: optionalString,
  /** The wallet balance after an approved payment or top-up (offline: the kiosk's own estimate). */
  balance: z.optional(minorUnits),
  authorization: z.optional(z.enum(["online", "offline"])),
  /**
   * A top-up the terminal charged while the kiosk was offline: not in `balance`
   * yet; the cloud credits it once the terminal's end-of-day settlement is reconciled.
   */
  pending: z.optional(z.boolean()),
  /** The payment's key: the transaction id on its receipt. Present when approved. */
  id: optionalString,
  /** Why it was declined: insufficient-funds, offline-limit, wallet-blocked, unknown-card, terminal-declined, … */
  reason: optionalString,
  at: z.string(),
});
export type PaymentResult = z.infer<typeof PaymentResultSchema>;

export const PaymentEndReasonSchema = z.enum(["cancelled", "timeout"]);

/** What `WS /api/live` sends, told apart by `type`. */
export const LiveMessageSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("state"), state: KioskStateSchema }),
  z.object({ type: z.literal("result"), result: TapResultSchema }),
  z.object({ type: z.literal("receipt"), receipt: ReceiptNoticeSchema }),
  z.object({ type: z.literal("payment"), session: PaymentSessionSchema }),
  z.object({ type: z.literal("payment-result"), result: PaymentResultSchema }),
  z.object({ type: z.literal("payment-ended"), sessionId: z.string(), reason: PaymentEndReasonSchema }),
]);
export type LiveMessage = z.infer<typeof LiveMessageSchema>;

/** RFC 9457 problem details: every error the local API answers. */
export const ProblemSchema = z.object({
  /** Absent means "about:blank" (RFC 9457 §3.1.1). */
  type: optionalString,
  title: z.string(),
  status: z.number(),
  detail: optionalString,
});
export type ProblemDetails = z.infer<typeof ProblemSchema>;

// Request bodies. Each error message completes "<field>: …", the one line a refusal's detail says.

/** Hex bytes of a card UID; spaces and colons are allowed and any case ("04:a2:b3:c4"). */
const UID_ERROR = "expected 4, 7 or 10 bytes as hex, e.g. 04A2B3C4";
const cardUid = z.pipe(
  z.pipe(
    z.string({ error: UID_ERROR }),
    z.transform((s) => s.replace(/[\s:]/g, "").toUpperCase()),
  ),
  z.string().check(z.regex(/^([0-9A-F]{8}|[0-9A-F]{14}|[0-9A-F]{20})$/, { error: UID_ERROR })),
);

/** A booking code; spaces and dashes are allowed and any case ("ada-1"). */
const CODE_ERROR = "expected 4 to 16 letters or digits, e.g. ADA1";
const bookingCode = z.pipe(
  z.pipe(
    z.string({ error: CODE_ERROR }),
    z.transform((s) => s.replace(/[\s-]/g, "").toUpperCase()),
  ),
  z.string().check(z.regex(/^[A-Z0-9]{4,16}$/, { error: CODE_ERROR })),
);

export const SimTapRequestSchema = z.object({ uid: cardUid });
export const CodeRequestSchema = z.object({ code: bookingCode });

/** An item of the price list, or an amount the member typed: exactly one of them. */
export const StartPaymentRequestSchema = z.union(
  [
    z.object({ itemId: z.string(), amount: z.optional(z.undefined()) }),
    z.object({ amount: z.number(), itemId: z.optional(z.undefined()) }),
  ],
  { error: "expected either itemId (an item of the price list) or amount (minor units), not both" },
);
export type StartPaymentRequest = z.input<typeof StartPaymentRequestSchema>;

/** The amount's range is the payment desk's to check (it answers with the limit). */
export const TopupRequestSchema = z.object({ amount: z.number({ error: "expected a number of minor units" }) });

/** A report whose shape is the daemon's own (hardware, terminal): a JSON object. */
const jsonObject = z.custom<object>((v) => typeof v === "object" && v !== null && !Array.isArray(v));

/**
 * A route: its method and path, the body a POST must carry (absent: the body
 * is not read), what a success answers, with which status, and the title of
 * the problem a body the schema refuses gets.
 */
export interface KioskRoute<
  Body extends z.ZodMiniType | undefined = z.ZodMiniType | undefined,
  Response extends z.ZodMiniType = z.ZodMiniType,
> {
  method: "GET" | "POST";
  path: string;
  body: Body;
  invalid?: string;
  response: Response;
  status: 200 | 201;
}

/** Checks a route's shape and keeps its literal type (its schemas, its `invalid` title). */
function route<const R extends KioskRoute>(r: R): R {
  return r;
}

/** Every REST route of the local API. */
export const kioskApi = {
  state: route({ method: "GET", path: "/api/state", body: undefined, response: KioskStateSchema, status: 200 }),
  /** Only when the reader is simulated (404 otherwise): a check-in, or pays the session in progress. */
  simTap: route({
    method: "POST",
    path: "/api/sim/tap",
    body: SimTapRequestSchema,
    invalid: "Invalid card UID",
    response: z.union([TapResultSchema, PaymentResultSchema]),
    status: 200,
  }),
  /** A booking code typed on screen (offered while the reader is unavailable). */
  code: route({
    method: "POST",
    path: "/api/code",
    body: CodeRequestSchema,
    invalid: "Invalid booking code",
    response: TapResultSchema,
    status: 200,
  }),
  callStaff: route({
    method: "POST",
    path: "/api/call-staff",
    body: undefined,
    response: z.object({ called: z.literal(true) }),
    status: 200,
  }),
  catalog: route({ method: "GET", path: "/api/catalog", body: undefined, response: CatalogSchema, status: 200 }),
  /** The next card tapped pays. 409 while another session is open. */
  payment: route({
    method: "POST",
    path: "/api/payments",
    body: StartPaymentRequestSchema,
    invalid: "Invalid payment",
    response: PaymentSessionSchema,
    status: 201,
  }),
  /** The next member card tapped is topped up by `amount`, paid at the terminal. */
  topup: route({
    method: "POST",
    path: "/api/topups",
    body: TopupRequestSchema,
    invalid: "Invalid payment",
    response: PaymentSessionSchema,
    status: 201,
  }),
  /** 409 once the card is being authorized. */
  cancelPayment: route({
    method: "POST",
    path: "/api/payments/cancel",
    body: undefined,
    response: z.object({ cancelled: z.boolean() }),
    status: 200,
  }),
  /** Exercises each peripheral: a report per peripheral, for a technician. */
  selfTest: route({ method: "POST", path: "/api/self-test", body: undefined, response: jsonObject, status: 200 }),
  /** The card terminal's end-of-day, journaled as a `terminal-settlement`; 404 without a terminal. */
  endOfDay: route({
    method: "POST",
    path: "/api/terminal/end-of-day",
    body: undefined,
    response: jsonObject,
    status: 200,
  }),
} as const;

/** The WebSocket the UI listens on. */
export const LIVE_PATH = "/api/live";

/** The body a route takes, as its caller writes it. */
export type RequestOf<R extends KioskRoute> = R["body"] extends z.ZodMiniType ? z.input<R["body"]> : undefined;
/** The body a route takes, as the daemon reads it (normalised). */
export type ParsedRequestOf<R extends KioskRoute> = R["body"] extends z.ZodMiniType ? z.output<R["body"]> : undefined;
/** What a route answers on success. */
export type ResponseOf<R extends KioskRoute> = z.output<R["response"]>;

/** A type guard from one of these schemas, for code that only asks "is this one?". */
export function isA<S extends z.ZodMiniType>(schema: S): (value: unknown) => value is z.output<S> {
  return (value: unknown): value is z.output<S> => schema.safeParse(value).success;
}

/**
 * A refused body's one line: the first problem, prefixed by its field, e.g.
 * "uid: expected 4, 7 or 10 bytes as hex, e.g. 04A2B3C4".
 */
export function refusalDetail(error: z.core.$ZodError): string {
  const issue = error.issues[0];
  if (!issue) return "the body does not match the contract";
  if (issue.path.length === 0 && issue.code === "invalid_type") return "expected a JSON object";
  return issue.path.length ? `${issue.path.join(".")}: ${issue.message}` : issue.message;
}
