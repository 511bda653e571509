/**
 * The UI's side of the daemon's setup routes (the contract is
 * @paylane/protocol/setup-api): is the kiosk in setup mode, its setup state,
 * sending a claim code, the diagnostics and the test receipt. Like the kiosk
 * API calls, what arrives is checked against the contract and nothing throws:
 * every failure becomes a sentence.
 */
import { type Diagnostics, type SetupState, setupApi } from "@paylane/protocol/setup-api";
import type * as z from "zod/mini";
import { type Answer, callDaemon } from "../kiosk/api.ts";

/** How long a call may take before the UI gives up and says so. */
const CALL_TIMEOUT_MS = 5000;

/**
 * What GET /api/state says about setup: `setup` (409 `{setup: true}`: not
 * enrolled yet), `ready` (200: the kiosk is running), or `unknown` (no
 * answer: the daemon is still starting).
 */
export async function probeSetupMode(fetchImpl: typeof fetch = fetch): Promise<"setup" | "ready" | "unknown"> {
  try {
    const res = await fetchImpl("/api/state", {
      headers: { accept: "application/json, application/problem+json" },
      signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
    });
    if (res.ok) return "ready";
    if (res.status !== 409) return "unknown";
    const body: unknown = await res.json().catch(() => undefined);
    return (body as { setup?: unknown } | undefined)?.setup === true ? "setup" : "unknown";
  } catch {
    return "unknown";
  }
}

/** GET /api/setup. */
export function getSetup(fetchImpl: typeof fetch = fetch): Promise<Answer<SetupState>> {
  return call(setupApi.state, undefined, fetchImpl);
}

/** POST /api/setup/claim: 202 and the state (enrolling), or the daemon's sentence for a code it refused. */
export function postClaim(code: string, fetchImpl: typeof fetch = fetch): Promise<Answer<SetupState>> {
  return call(setupApi.claim, { code }, fetchImpl);
}

/** GET /api/diagnostics. */
export function getDiagnostics(fetchImpl: typeof fetch = fetch): Promise<Answer<Diagnostics>> {
  return call(setupApi.diagnostics, undefined, fetchImpl);
}

/** POST /api/diagnostics/test-receipt. */
export function postTestReceipt(
  fetchImpl: typeof fetch = fetch,
): Promise<Answer<z.output<typeof setupApi.testReceipt.response>>> {
  return call(setupApi.testReceipt, {}, fetchImpl);
}

function call<S extends z.ZodMiniType>(
  route: { method: "GET" | "POST"; path: string; response: S },
  body: object | undefined,
  fetchImpl: typeof fetch,
): Promise<Answer<z.output<S>>> {
  return callDaemon(route, body, fetchImpl);
}
