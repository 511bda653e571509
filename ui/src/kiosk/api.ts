/**
 * The UI's side of the kiosk daemon's local API (see ../kiosk-api.ts): URLs,
 * runtime checks of what arrives, and the simulated-reader tap.
 *
 * Everything from the daemon is checked before use: a daemon and a UI of
 * different versions can meet after a partial update, and a message the UI
 * does not understand is ignored rather than rendered half-way.
 */
import type { KioskState, LiveMessage, ProblemDetails, ReceiptNotice, TapOutcome, TapResult } from "../kiosk-api.ts";

const OUTCOMES: ReadonlySet<string> = new Set<TapOutcome>(["welcome", "unknown", "already", "refused"]);

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

export type TapResponse = { ok: true; result: TapResult } | { ok: false; error: string };

function isProblem(value: unknown): value is ProblemDetails {
  return isRecord(value) && typeof value.title === "string" && typeof value.status === "number";
}

/** POST /api/sim/tap. Never throws: every failure becomes a sentence for the operator. */
export function postSimTap(uid: string, fetchImpl: typeof fetch = fetch): Promise<TapResponse> {
  return postForResult("/api/sim/tap", { uid }, fetchImpl);
}

/** POST /api/call-staff. Never throws: false when the daemon did not take the call. */
export async function postCallStaff(fetchImpl: typeof fetch = fetch): Promise<boolean> {
  try {
    const res = await fetchImpl("/api/call-staff", { method: "POST", signal: AbortSignal.timeout(TAP_TIMEOUT_MS) });
    return res.ok;
  } catch {
    return false;
  }
}

/** POST /api/code: a booking code typed on screen. Never throws. */
export function postCode(code: string, fetchImpl: typeof fetch = fetch): Promise<TapResponse> {
  return postForResult("/api/code", { code }, fetchImpl);
}

async function postForResult(path: string, payload: object, fetchImpl: typeof fetch): Promise<TapResponse> {
  let res: Response;
  try {
    res = await fetchImpl(path, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, application/problem+json" },
      body: JSON.stringify(payload),
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
    return isTapResult(body)
      ? { ok: true, result: body }
      : { ok: false, error: "The daemon sent an unreadable result." };
  }
  if (isProblem(body)) return { ok: false, error: body.detail ?? body.title };
  return { ok: false, error: `The kiosk refused the request (HTTP ${res.status}).` };
}
