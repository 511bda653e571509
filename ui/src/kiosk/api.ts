/**
 * The UI's side of the kiosk daemon's local API (the contract is
 * @paylane/protocol/kiosk-api): URLs, runtime checks of what arrives, the
 * simulated-reader tap and the payment calls.
 *
 * Everything from the daemon is checked against the contract's schemas before
 * use: a daemon and a UI of different versions can meet after a partial
 * update, and a message the UI does not understand is ignored rather than
 * rendered half-way.
 */
import {
  type Catalog,
  CatalogSchema,
  isA,
  type KioskRoute,
  kioskApi,
  LIVE_PATH,
  type LiveMessage,
  LiveMessageSchema,
  LOCAL_TOKEN_META,
  PaymentResultSchema,
  type PaymentSession,
  PaymentSessionSchema,
  ProblemSchema,
  type RequestOf,
  type ResponseOf,
  type StartPaymentRequest,
  type TapResult,
  TapResultSchema,
} from "@paylane/protocol/kiosk-api";
import type * as z from "zod/mini";

/** How long a call may take before the UI gives up and says so. */
const CALL_TIMEOUT_MS = 5000;

export const isTapResult = isA(TapResultSchema);
export const isCatalog = isA(CatalogSchema);
export const isPaymentSession = isA(PaymentSessionSchema);
export const isPaymentResult = isA(PaymentResultSchema);

/** A WebSocket message the contract knows, or undefined. */
export function parseLiveMessage(data: unknown): LiveMessage | undefined {
  if (typeof data !== "string") return undefined;
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return undefined;
  }
  const parsed = LiveMessageSchema.safeParse(value);
  return parsed.success ? parsed.data : undefined;
}

/** Identity of a result, so the same tap seen over HTTP and over the WebSocket is shown once. */
export function resultKey(result: TapResult): string {
  return `${result.at}|${result.seq ?? ""}|${result.message}`;
}

/** `ws(s)://<this host>/api/live`: the daemon serves the UI and the API from one origin. */
export function liveUrl(base: string = location.href): string {
  const url = new URL(LIVE_PATH, base);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}

/** The daemon's answer, or a sentence saying why there is none. */
export type Answer<T> = { ok: true; result: T } | { ok: false; error: string; status?: number };

/** A simulated tap is a check-in, or pays for the payment session in progress. */
export type TapResponse = Answer<ResponseOf<typeof kioskApi.simTap>>;

/** POST /api/sim/tap. Never throws: every failure becomes a sentence for the operator. */
export function postSimTap(uid: string, fetchImpl: typeof fetch = fetch): Promise<TapResponse> {
  return request(kioskApi.simTap, { uid }, fetchImpl);
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
  return (await request(kioskApi.callStaff, undefined, fetchImpl)).ok;
}

/** POST /api/code: a booking code typed on screen. Never throws. */
export function postCode(code: string, fetchImpl: typeof fetch = fetch): Promise<Answer<TapResult>> {
  return request(kioskApi.code, { code }, fetchImpl);
}

/** GET /api/catalog: the price list and what the kiosk can sell. Never throws. */
export function getCatalog(fetchImpl: typeof fetch = fetch): Promise<Answer<Catalog>> {
  return request(kioskApi.catalog, undefined, fetchImpl);
}

/** POST /api/payments: a price-list item, or an amount in minor units. The next card tapped pays. */
export function postPayment(
  choice: StartPaymentRequest,
  fetchImpl: typeof fetch = fetch,
): Promise<Answer<PaymentSession>> {
  return request(kioskApi.payment, choice, fetchImpl);
}

/** POST /api/topups: the next member card tapped is topped up by `amount`, paid at the terminal. */
export function postTopup(amount: number, fetchImpl: typeof fetch = fetch): Promise<Answer<PaymentSession>> {
  return request(kioskApi.topup, { amount }, fetchImpl);
}

/** POST /api/payments/cancel. A 409 (the card is being authorized) comes back as `status: 409`. */
export function postCancelPayment(fetchImpl: typeof fetch = fetch): Promise<Answer<{ cancelled: boolean }>> {
  return request(kioskApi.cancelPayment, undefined, fetchImpl);
}

/**
 * Call a route and check the answer against its response schema. A POST
 * always sends a JSON body (`{}` for a route that takes none). Never throws.
 */
function request<R extends KioskRoute>(
  route: R,
  payload: RequestOf<R>,
  fetchImpl: typeof fetch,
): Promise<Answer<ResponseOf<R>>> {
  return callDaemon(route, payload, fetchImpl) as Promise<Answer<ResponseOf<R>>>;
}

/** Any route of the daemon with a response schema (the kiosk's and the setup screen's): `request` without the route types. */
export async function callDaemon<S extends z.ZodMiniType>(
  route: { method: "GET" | "POST"; path: string; response: S },
  payload: unknown,
  fetchImpl: typeof fetch,
): Promise<Answer<z.output<S>>> {
  const post = route.method === "POST";
  let res: Response;
  try {
    res = await fetchImpl(route.path, {
      method: route.method,
      headers: { accept: "application/json, application/problem+json", ...(post ? postHeaders() : {}) },
      ...(post ? { body: JSON.stringify(payload ?? {}) } : {}),
      signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
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
    const parsed = route.response.safeParse(body);
    return parsed.success
      ? { ok: true, result: parsed.data }
      : { ok: false, error: "The daemon sent an unreadable result.", status: res.status };
  }
  const problem = ProblemSchema.safeParse(body);
  if (problem.success) return { ok: false, error: problem.data.detail ?? problem.data.title, status: res.status };
  return { ok: false, error: `The kiosk refused the request (HTTP ${res.status}).`, status: res.status };
}
