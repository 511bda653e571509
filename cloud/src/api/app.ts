/**
 * The cloud's HTTP API. Errors are `application/problem+json` naming what is
 * wrong. Every route is authenticated except `/healthz` and `/readyz`: reads
 * for operators (check-ins, devices, alerts, conflicts) need an operator
 * token (viewer at least); the member replica and the stream mark need the
 * device's own credentials; `/metrics` needs METRICS_TOKEN. Before any route:
 * rate limits (429), a body limit (413) and no NUL characters (400).
 */

import { createHash, randomUUID, timingSafeEqual } from "node:crypto";
import type { OpenAPIHono } from "@hono/zod-openapi";
import { problemResponse, type Registry } from "@paylane/protocol";
import { type HealthReport, opsRoutes } from "@paylane/protocol/service";
import type { Context, MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import type { Logger } from "pino";
import type { Registry as MetricsRegistry } from "prom-client";
import type { LoginLimitOptions } from "../accounts/login-limiter.ts";
import type { AlertService } from "../alerts/notifier.ts";
import type { Database } from "../db/database.ts";
import type { Enrolment } from "../enrolment/enrolment.ts";
import { DEFAULT_ENROL_FAILURES_PER_MINUTE, EnrolLimiter } from "../enrolment/limiter.ts";
import type { CommandDesk } from "../fleet/commands.ts";
import type { ConfigDesk } from "../fleet/device-config.ts";
import { createGraphQL, GRAPHQL_PATH } from "../graphql/server.ts";
import type { LiveFeed } from "../live/live-feed.ts";
import { httpMetrics, noteAuthFailure } from "../metrics/http-metrics.ts";
import type { PresenceStore } from "../presence/presence-store.ts";
import { type LatestTelemetryStore, MemoryLatestTelemetry } from "../telemetry/latest-store.ts";
import { mountAccounts } from "./accounts.ts";
import { alertRoutes } from "./alerts.ts";
import type { OperatorEnv, OperatorTokenConfig } from "./auth.ts";
import { collisionRoutes } from "./collisions.ts";
import { dashboardRoutes } from "./dashboard.ts";
import { deviceCommandRoutes } from "./device-commands.ts";
import { deviceConfigRoutes } from "./device-config.ts";
import { deviceRoutes } from "./devices.ts";
import { enrolmentRoutes } from "./enrolment.ts";
import { etagOnReads } from "./etag.ts";
import { exportRoutes } from "./exports.ts";
import { fleetReadRoutes } from "./fleet-reads.ts";
import { rejectNulCharacters } from "./http.ts";
import type { LiveSockets } from "./live.ts";
import { memberRoutes } from "./members.ts";
import { apiApp, registerSecuritySchemes } from "./openapi.ts";
import { documentConsoleRoutes } from "./openapi-console.ts";
import { paymentRoutes } from "./payments.ts";
import { clientAddress, type RateLimitOptions, rateLimit } from "./rate-limit.ts";
import { referenceRoutes } from "./reference.ts";
import { streamRoutes } from "./streams.ts";
import { telemetryRoutes } from "./telemetry.ts";
import { topupRoutes } from "./topups.ts";

/** Request bodies above this are refused with 413 before they are parsed. */
export const MAX_BODY_BYTES = 1024 * 1024;

/** Generous: 20 kiosks behind one address paying 30/s each, and operators' dashboards, stay far below. */
export const DEFAULT_RATE_LIMITS: Omit<RateLimitOptions, "redis" | "metrics"> = {
  windowSeconds: 10,
  perCredential: 5000,
  perAddress: 50_000,
  authFailures: 100,
};

export interface ApiOptions {
  db: Database;
  /** Where the read-only routes (check-ins, conflicts, CSV exports) query: a replica; default `db`. */
  readDb?: Database;
  presence: PresenceStore;
  registry: () => Registry;
  metrics: MetricsRegistry;
  health: () => Promise<HealthReport>;
  now?: () => Date;
  /** Device time further than this from the cloud's is a clock-skew conflict (seconds). */
  skewBoundSeconds?: number;
  /** Verifies operator tokens; unset: the operator routes answer 503. */
  jwtSecret?: string;
  /** The `iss` and `aud` operator tokens must carry (default paylane-cloud, paylane-api). */
  jwtIssuer?: string;
  jwtAudience?: string;
  /** `/metrics` answers `Authorization: Bearer <metricsToken>`; unset: refused here (see CLOUD_METRICS_PORT). */
  metricsToken?: string;
  /** Default: DEFAULT_RATE_LIMITS, counted in process. */
  rateLimit?: RateLimitOptions;
  /** Where unexpected errors are logged, with the id their 500 answer names. */
  logger?: Logger;
  /** The notifications service, for resolving alerts by hand (absent: that answers 503). */
  alerts?: AlertService;
  /** Each device's newest telemetry (default: an empty in-process store). */
  latestTelemetry?: LatestTelemetryStore;
  /** Commands to kiosks and their audit; unset: those routes are absent (the API alone, without a bridge). */
  commands?: CommandDesk;
  /** Desired and reported configuration; unset: those routes are absent. */
  configs?: ConfigDesk;
  /** Whether the cloud is on the broker now (commands and configs are published there). */
  brokerConnected?: () => boolean;
  /** Claim codes, enrolment, rotation and revocation; unset: those routes are absent. */
  enrolment?: Enrolment;
  /** Failed enrolments per minute per client address before 429 (default 10; 0: no limit). */
  enrolFailuresPerMinute?: number;
  /** Console sessions: access and refresh token lifetimes (seconds; default 15 min, 7 days). */
  sessionTtls?: { accessSeconds?: number; refreshSeconds?: number };
  /** Login brute force limits (default DEFAULT_LOGIN_LIMITS; shared through `rateLimit.redis`). */
  loginLimits?: Partial<LoginLimitOptions>;
  /** Events committed in the database, for live consumers (GraphQL subscriptions; the WebSocket reads `liveSockets`). */
  live?: LiveFeed;
  /** The WebSocket live feed at /api/v1/live (its upgrades are attached to the server by the caller); unset: absent. */
  liveSockets?: LiveSockets;
}

export function createApi(o: ApiOptions): OpenAPIHono<OperatorEnv> {
  const now = o.now ?? (() => new Date());
  // Routes declared with createRoute (openapi.ts): their zod schemas validate and document them.
  const app = apiApp();
  registerSecuritySchemes(app);
  documentConsoleRoutes(app);
  const tokens: OperatorTokenConfig = { secret: o.jwtSecret, issuer: o.jwtIssuer, audience: o.jwtAudience };
  app.onError((err, c) => internalError(err, c, o.logger));
  app.notFound((c) =>
    problemResponse({ title: "Not found", status: 404, detail: `no route for ${c.req.method} ${c.req.path}` }),
  );
  // Outermost: every answer is counted, rate-limit refusals and errors included.
  app.use(httpMetrics(o.metrics));
  app.use(rateLimit({ ...DEFAULT_RATE_LIMITS, metrics: o.metrics, ...o.rateLimit }));
  app.use(
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      // The rest of the body is not read: the connection closes after the answer, so no later request reuses it.
      onError: () =>
        problemResponse(
          {
            title: "Content too large",
            status: 413,
            detail: `the request body is larger than ${MAX_BODY_BYTES} bytes (1 MiB), the most this API accepts`,
          },
          { connection: "close" },
        ),
    }),
  );
  app.use(rejectNulCharacters());
  app.use("/api/v1/*", etagOnReads());
  app.route("/", referenceRoutes(app));
  // Before every other route: the audit trail wraps them all, and `tokens` gains the session check.
  mountAccounts(app, {
    db: o.db,
    tokens,
    now,
    accessTtlSeconds: o.sessionTtls?.accessSeconds,
    refreshTtlSeconds: o.sessionTtls?.refreshSeconds,
    loginLimits: o.loginLimits,
    redis: o.rateLimit?.redis,
    prefix: o.rateLimit?.prefix,
    trustProxy: o.rateLimit?.trustProxy,
    logger: o.logger,
    // Heard on the live feed's LISTEN: a logout on any instance is refused by this one at once.
    revocations: o.live?.sessions,
  });
  app.use("/metrics", metricsGuard(o.metricsToken));
  app.route("/", opsRoutes(o.health, o.metrics));
  app.route(
    "/",
    paymentRoutes({
      db: o.db,
      presence: o.presence,
      registry: o.registry,
      now,
      tokens,
      metrics: o.metrics,
    }),
  );

  app.route("/", topupRoutes({ db: o.db, registry: o.registry, now, metrics: o.metrics, logger: o.logger }));
  app.route("/", streamRoutes({ db: o.db, registry: o.registry }));
  app.route("/", collisionRoutes({ db: o.db, tokens, now }));
  const brokerConnected = o.brokerConnected ?? (() => true);
  if (o.commands) {
    app.route(
      "/",
      deviceCommandRoutes({ commands: o.commands, registry: o.registry, tokens, connected: brokerConnected }),
    );
  }
  if (o.configs) {
    app.route(
      "/",
      deviceConfigRoutes({ configs: o.configs, registry: o.registry, tokens, connected: brokerConnected }),
    );
  }
  app.route(
    "/",
    deviceRoutes({
      db: o.db,
      presence: o.presence,
      registry: o.registry,
      tokens,
      enrolment: o.enrolment,
      commands: o.commands,
      connected: brokerConnected,
      trustProxy: o.rateLimit?.trustProxy,
      now,
    }),
  );
  if (o.enrolment) {
    const limiter = new EnrolLimiter({
      failuresPerMinute: o.enrolFailuresPerMinute ?? DEFAULT_ENROL_FAILURES_PER_MINUTE,
      redis: o.rateLimit?.redis,
      prefix: o.rateLimit?.prefix,
    });
    app.route(
      "/",
      enrolmentRoutes({
        enrolment: o.enrolment,
        limiter,
        registry: o.registry,
        tokens,
        trustProxy: o.rateLimit?.trustProxy,
      }),
    );
  }
  app.route("/", telemetryRoutes({ db: o.db, latest: o.latestTelemetry ?? new MemoryLatestTelemetry(), tokens, now }));
  // GraphQL over the same services, tokens and permissions (cloud/src/graphql, docs/graphql.md).
  const graphql = createGraphQL({
    db: o.db,
    presence: o.presence,
    registry: o.registry,
    tokens,
    latestTelemetry: o.latestTelemetry ?? new MemoryLatestTelemetry(),
    now,
    skewBoundSeconds: o.skewBoundSeconds ?? 300,
    brokerConnected,
    alerts: o.alerts,
    commands: o.commands,
    configs: o.configs,
    live: o.live,
    logger: o.logger,
  });
  app.on(["GET", "POST"], GRAPHQL_PATH, (c) =>
    graphql.fetch(c.req.raw, { address: clientAddress(c, o.rateLimit?.trustProxy ?? false) }),
  );
  // CSV exports of check-ins (fleet:read) and the ledger (money:read), streamed.
  app.route("/", exportRoutes({ db: o.readDb ?? o.db, tokens }));

  // Check-ins, conflicts and journaled alerts (fleet:read); the member replica and stream mark (device credentials).
  app.route("/", fleetReadRoutes({ db: o.readDb ?? o.db, tokens, now, skewBoundSeconds: o.skewBoundSeconds ?? 300 }));
  app.route("/", memberRoutes({ db: o.db, registry: o.registry }));

  app.route("/", alertRoutes({ db: o.db, tokens, alerts: o.alerts }));
  if (o.liveSockets) app.route("/", o.liveSockets.routes(tokens));
  // The ops dashboard's static files (public; every call it makes is authenticated).
  app.route("/", dashboardRoutes());

  return app;
}

/**
 * `/metrics` for whoever holds METRICS_TOKEN (compared in constant time);
 * without one configured, metrics are not served on the API's port.
 */
function metricsGuard(token: string | undefined): MiddlewareHandler {
  const digest = (s: string) => createHash("sha256").update(s).digest();
  const expected = token ? digest(token) : undefined;
  return async function metricsGuard(c, next) {
    if (!expected) {
      return problemResponse({
        title: "Forbidden",
        status: 403,
        detail:
          "metrics are not served on this port: set METRICS_TOKEN (then send it as a bearer token) or CLOUD_METRICS_PORT",
      });
    }
    const header = c.req.header("authorization");
    if (!header?.startsWith("Bearer ") || !timingSafeEqual(digest(header.slice(7).trim()), expected)) {
      noteAuthFailure(c, "bad-metrics-token");
      return problemResponse(
        {
          title: "Unauthorized",
          status: 401,
          detail: "metrics need the metrics token (Authorization: Bearer <METRICS_TOKEN>)",
        },
        { "www-authenticate": 'Bearer realm="paylane-metrics"' },
      );
    }
    await next();
  };
}

/** Postgres' class 22 (data exception): a value the database could not take, i.e. the request's. */
const DATA_EXCEPTION = /^22[0-9A-Z]{3}$/;

/**
 * The answer to an error no route turned into one: never the error's own
 * text (it may hold SQL, values or Postgres' wording); it is logged with an
 * id the answer names.
 */
function internalError(err: Error, c: Context, logger: Logger | undefined): Response {
  if (err instanceof HTTPException) {
    const res = err.getResponse();
    return problemResponse({ title: res.statusText || "Error", status: err.status, detail: err.message || undefined });
  }
  const id = randomUUID();
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string" && DATA_EXCEPTION.test(code)) {
    logger?.warn(
      { errorId: id, code, method: c.req.method, path: c.req.path },
      "request value refused by the database",
    );
    return problemResponse({
      title: "Invalid request",
      status: 400,
      detail: `a value in the request does not fit the field it is for (error id ${id})`,
    });
  }
  logger?.error({ errorId: id, err, method: c.req.method, path: c.req.path }, "request failed");
  return problemResponse({
    title: "Internal error",
    status: 500,
    detail: `the request failed on the server; it is logged with error id ${id}`,
  });
}
