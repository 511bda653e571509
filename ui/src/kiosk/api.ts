/**
 * The UI's side of the kiosk daemon's local API (see ../kiosk-api.ts): URLs,
 * runtime checks of what arrives, the simulated-reader tap and the payment
 * calls.
 *
 * Everything from the daemon is checked before use: a daemon and a UI of
 * different versions can meet after a partial update, and a message the UI
 * does not understand is ignored rather than rendered half-way.
 */
import {
  type Catalog,
  type KioskState,
  type LiveMessage,
  LOCAL_TOKEN_META,
  type PaymentKind,
  type PaymentResult,
  type PaymentSession,
  type ProblemDetails,
  type ReceiptNotice,
  type TapOutcome,
  type TapResult,
} from "../kiosk-api.ts";

const OUTCOMES: ReadonlySet<string> = new Set<TapOutcome>(["welcome", "unknown", "already", "refused"]);
const PAYMENT_KINDS: ReadonlySet<string> = new Set<PaymentKind>(["purchase", "topup"]);
const SESSION_STATES: ReadonlySet<string> = new Set<PaymentSession["state"]>([
  "awaiting-card",
  "authorizing",
  "awaiting-terminal",
]);
const CURRENCY = /^[A-Z]{3}$/;

/** How long a simulated tap may take before the UI gives up and says so. */
const TAP_TIMEOUT_MS = 5000;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

export function isTapResult(value: unknown): value is TapResult {
  return (
    isRecord(value) &&
    typeof value.outcome === "string" &&
    OUTCOMES.has(value.outcome) &&
    typeof value.message === "string" &&
    typeof value.at === "string" &&
    (value.name === undefined || typeof value.name === "string") &&
    (value.seq === undefined || typeof value.seq === "number")
  );
}

/** An amount of money: an integer of minor units, never a float. */
function isMinorUnits(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value);
}

function isOptional<T>(value: unknown, check: (v: unknown) => v is T): boolean {
  return value === undefined || check(value);
}

const isString = (v: unknown): v is string => typeof v === "string";
const isCurrency = (v: unknown): v is string => isString(v) && CURRENCY.test(v);
const isPaymentKind = (v: unknown): v is PaymentKind => isString(v) && PAYMENT_KINDS.has(v);

export function isCatalog(value: unknown): value is Catalog {
  return (
    isRecord(value) &&
    typeof value.ready === "boolean" &&
    isCurrency(value.currency) &&
    Array.isArray(value.items) &&
    value.items.every(
      (item: unknown) =>
        isRecord(item) && typeof item.id === "string" && typeof item.name === "string" && isMinorUnits(item.price),
    ) &&
    typeof value.topups === "boolean" &&
    Array.isArray(value.topupAmounts) &&
    value.topupAmounts.every(isMinorUnits) &&
    isMinorUnits(value.maxAmount)
  );
}

export function isPaymentSession(value: unknown): value is PaymentSession {
  return (
    isRecord(value) &&
    typeof value.id === "string" &&
    isPaymentKind(value.kind) &&
    isMinorUnits(value.amount) &&
    isCurrency(value.currency) &&
    isOptional(value.itemName, isString) &&
    typeof value.state === "string" &&
    SESSION_STATES.has(value.state) &&
    typeof value.expiresAt === "string"
  );
}

export function isPaymentResult(value: unknown): value is PaymentResult {
  return (
    isRecord(value) &&
    typeof value.sessionId === "string" &&
    isPaymentKind(value.kind) &&
    (value.outcome === "approved" || value.outcome === "declined") &&
    typeof value.message === "string" &&
    isMinorUnits(value.amount) &&
    isCurrency(value.currency) &&
    typeof value.at === "string" &&
    isOptional(value.name, isString) &&
    isOptional(value.itemName, isString) &&
    isOptional(value.balance, isMinorUnits) &&
    (value.authorization === undefined || value.authorization === "online" || value.authorization === "offline") &&
    (value.pending === undefined || typeof value.pending === "boolean") &&
    isOptional(value.id, isString) &&
    isOptional(value.reason, isString)
  );
}

export function isKioskState(value: unknown): value is KioskState {
  if (!isRecord(value) || !isRecord(value.reader)) return false;
  return (
    typeof value.site === "string" &&
    typeof value.device === "string" &&
    typeof value.online === "boolean" &&
    typeof value.backlog === "number" &&
    value.reader.kind === "pn532" &&
    typeof value.reader.simulated === "boolean" &&
    typeof value.reader.state === "string"
  );
}

export function isReceiptNotice(value: unknown): value is ReceiptNotice {
  if (!isRecord(value) || typeof value.id !== "string") return false;
  if (value.printed === true) return true;
  return (
    value.printed === false &&
    typeof value.reason === "string" &&
    typeof value.qr === "string" &&
    // only our own SVG data URLs become an <img> source
    value.qr.startsWith("data:image/svg+xml;base64,")
  );
}

export function parseLiveMessage(data: unknown): LiveMessage | undefined {
  if (typeof data !== "string") return undefined;
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return undefined;
  }
  if (!isRecord(value)) return undefined;
  if (value.type === "state" && isKioskState(value.state)) return { type: "state", state: value.state };
  if (value.type === "result" && isTapResult(value.result)) return { type: "result", result: value.result };
  if (value.type === "receipt" && isReceiptNotice(value.receipt)) return { type: "receipt", receipt: value.receipt };
  if (value.type === "payment" && isPaymentSession(value.session)) return { type: "payment", session: value.session };
  if (value.type === "payment-result" && isPaymentResult(value.result)) {
    return { type: "payment-result", result: value.result };
  }
  if (
    value.type === "payment-ended" &&
    typeof value.sessionId === "string" &&
    (value.reason === "cancelled" || value.reason === "timeout")
  ) {
    return { type: "payment-ended", sessionId: value.sessionId, reason: value.reason };
  }
  return undefined;
}

/** Identity of a result, so the same tap seen over HTTP and over the WebSocket is shown once. */
export function resultKey(result: TapResult): string {
  return `${result.at}|${result.seq ?? ""}|${result.message}`;
}

/** `ws(s)://<this host>/api/live`: the daemon serves the UI and the API from one origin. */
export function liveUrl(base: string = location.href): string {
  const url = new URL("/api/live", base);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}

/** The daemon's answer, or a sentence saying why there is none. */
export type Answer<T> = { ok: true; result: T } | { ok: false; error: string; status?: number };

/** A simulated tap is a check-in, or pays for the payment session in progress. */
export type TapResponse = Answer<TapResult | PaymentResult>;

function isProblem(value: unknown): value is ProblemDetails {
  return isRecord(value) && typeof value.title === "string" && typeof value.status === "number";
}

const isTapOrPayment = (v: unknown): v is TapResult | PaymentResult => isTapResult(v) || isPaymentResult(v);

/** POST /api/sim/tap. Never throws: every failure becomes a sentence for the operator. */
export function postSimTap(uid: string, fetchImpl: typeof fetch = fetch): Promise<TapResponse> {
  return request("/api/sim/tap", { uid }, isTapOrPayment, fetchImpl);
}

/**
 * This boot's local API token, from the page the daemon served (absent when
 * something else serves the UI). Read per call: the page never outlives the boot.
 */
export function localToken(doc: Pick<Document, "querySelector"> | undefined = globalThis.document): string | undefined {
  const meta = doc?.querySelector<HTMLMetaElement>(`meta[name="${LOCAL_TOKEN_META}"]`);
  return meta?.content || undefined;
}

/** What every state-changing call carries: JSON, and the token the daemon requires. */
export function postHeaders(token: string | undefined = localToken()): Record<string, string> {
  return { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) };
}

/** POST /api/call-staff. Never throws: false when the daemon did not take the call. */
export async function postCallStaff(fetchImpl: typeof fetch = fetch): Promise<boolean> {
  try {
    const res = await fetchImpl("/api/call-staff", {
      method: "POST",
      headers: postHeaders(),
      body: "{}",
      signal: AbortSignal.timeout(TAP_TIMEOUT_MS),
    });
    return res.ok;
  } catch {
    return false;
  }
}

/** POST /api/code: a booking code typed on screen. Never throws. */
export function postCode(code: string, fetchImpl: typeof fetch = fetch): Promise<Answer<TapResult>> {
  return request("/api/code", { code }, isTapResult, fetchImpl);
}

/** GET /api/catalog: the price list and what the kiosk can sell. Never throws. */
export function getCatalog(fetchImpl: typeof fetch = fetch): Promise<Answer<Catalog>> {
  return request("/api/catalog", undefined, isCatalog, fetchImpl);
}

/** POST /api/payments: a price-list item, or an amount in minor units. The next card tapped pays. */
export function postPayment(
  choice: { itemId: string } | { amount: number },
  fetchImpl: typeof fetch = fetch,
): Promise<Answer<PaymentSession>> {
  return request("/api/payments", choice, isPaymentSession, fetchImpl);
}

/** POST /api/topups: the next member card tapped is topped up by `amount`, paid at the terminal. */
export function postTopup(amount: number, fetchImpl: typeof fetch = fetch): Promise<Answer<PaymentSession>> {
  return request("/api/topups", { amount }, isPaymentSession, fetchImpl);
}

const isCancelAnswer = (v: unknown): v is { cancelled: boolean } => isRecord(v) && typeof v.cancelled === "boolean";

/** POST /api/payments/cancel. A 409 (the card is being authorized) comes back as `status: 409`. */
export function postCancelPayment(fetchImpl: typeof fetch = fetch): Promise<Answer<{ cancelled: boolean }>> {
  return request("/api/payments/cancel", {}, isCancelAnswer, fetchImpl);
}

/** GET (no payload) or POST JSON, and check the answer. Never throws. */
async function request<T>(
  path: string,
  payload: object | undefined,
  check: (value: unknown) => value is T,
  fetchImpl: typeof fetch,
): Promise<Answer<T>> {
  let res: Response;
  try {
    res = await fetchImpl(path, {
      method: payload === undefined ? "GET" : "POST",
      headers: {
        accept: "application/json, application/problem+json",
        ...(payload === undefined ? {} : postHeaders()),
      },
      ...(payload === undefined ? {} : { body: JSON.stringify(payload) }),
      signal: AbortSignal.timeout(TAP_TIMEOUT_MS),
    });
  } catch (err) {
    const timedOut = err instanceof DOMException && err.name === "TimeoutError";
    return {
      ok: false,
      error: timedOut ? "The kiosk daemon did not answer in time." : "Cannot reach the kiosk daemon.",
    };
  }
  let body: unknown;
  try {
    body = await res.json();
  } catch {
    body = undefined;
  }
  if (res.ok) {
    return check(body)
      ? { ok: true, result: body }
      : { ok: false, error: "The daemon sent an unreadable result.", status: res.status };
  }
  if (isProblem(body)) return { ok: false, error: body.detail ?? body.title, status: res.status };
  return { ok: false, error: `The kiosk refused the request (HTTP ${res.status}).`, status: res.status };
}
