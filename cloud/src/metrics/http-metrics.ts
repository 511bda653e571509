/**
 * RED metrics for the cloud's HTTP API: requests by route, method and status
 * code, their duration, and refused authentications by reason.
 *
 * `route` is the pattern Hono matched (`/api/v1/devices/:device`), never the
 * path asked for: a path carries device ids, member ids, card UIDs or a
 * scanner's random strings, and a label value per path would be a new series
 * each (unbounded, and a leak of ids into the monitoring). A request no
 * route answers is `route="unmatched"`; methods outside the HTTP set are
 * `method="other"`.
 */
import { registeredCounter } from "@paylane/protocol/service";
import type { Context, MiddlewareHandler } from "hono";
import { matchedRoutes } from "hono/route";
import type { Registry as MetricsRegistry } from "prom-client";
import { registeredHistogram } from "./registered.ts";

export const UNMATCHED_ROUTE = "unmatched";

const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

/** Why an authentication was refused: the `reason` label of `paylane_api_auth_failures_total`. */
export type AuthFailureReason =
  | "missing-token"
  | "bad-token"
  | "expired-token"
  | "bad-password"
  | "locked-out"
  | "bad-refresh-token"
  | "bad-device-credentials"
  | "bad-metrics-token";

/**
 * The pattern of the route that answers (or would have answered, had a
 * middleware not refused first) this request: the last matched route that is
 * a handler, not a wildcard middleware (`app.use("/api/v1/*")`).
 */
export function routePattern(c: Context): string {
  let routes: ReturnType<typeof matchedRoutes>;
  try {
    routes = matchedRoutes(c);
  } catch {
    return UNMATCHED_ROUTE;
  }
  for (let i = routes.length - 1; i >= 0; i--) {
    const r = routes[i]!;
    if (r.method !== "ALL" || !r.path.includes("*")) return r.path;
  }
  return UNMATCHED_ROUTE;
}

const refusedAuth = new WeakMap<Request, AuthFailureReason>();

/**
 * Where the API refuses an authentication it says why, here: the `reason` of
 * `paylane_api_auth_failures_total`, named where the decision is made rather
 * than guessed afterwards from the answer's words.
 */
export function noteAuthFailure(c: Context, reason: AuthFailureReason): void {
  refusedAuth.set(c.req.raw, reason);
}

/** The outermost middleware of the API: it sees every answer, rate-limit refusals and errors included. */
export function httpMetrics(registry: MetricsRegistry): MiddlewareHandler {
  const requests = registeredCounter({
    name: "paylane_http_requests_total",
    help: "HTTP requests answered by the cloud API, by matched route pattern, method and status code",
    labelNames: ["route", "method", "code"],
    registers: [registry],
  });
  const duration = registeredHistogram(registry, {
    name: "paylane_http_request_duration_seconds",
    help: "Time from a request's arrival to its response's headers (a streamed body is not included), by route pattern and method",
    labelNames: ["route", "method"],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  });
  const authFailures = registeredCounter({
    name: "paylane_api_auth_failures_total",
    help: "Authentications the cloud API refused, by reason (missing, bad or expired token; bad password; locked out; device or metrics credentials)",
    labelNames: ["reason"],
    registers: [registry],
  });
  return async function httpMetrics(c, next) {
    const started = performance.now();
    try {
      await next();
    } finally {
      const route = routePattern(c);
      const method = METHODS.has(c.req.method) ? c.req.method : "other";
      // A handler that threw past Hono's error handler still answered something: 500.
      const code = String(c.res?.status ?? 500);
      requests.inc({ route, method, code });
      duration.observe({ route, method }, (performance.now() - started) / 1000);
      const reason = refusedAuth.get(c.req.raw);
      if (reason) authFailures.inc({ reason });
    }
  };
}
