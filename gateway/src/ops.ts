/**
 * The gateway's operations endpoints, on protocol/src/service's `/healthz`,
 * `/readyz` and `/metrics`: liveness for the supervisor, readiness (with
 * Redis: only while Redis is reachable), Prometheus metrics. Errors are
 * `application/problem+json` (RFC 9457), as everywhere in PayLane.
 */
import { problemResponse } from "@paylane/protocol";
import { opsRoutes } from "@paylane/protocol/service";
import { Hono } from "hono";
import type { Logger } from "pino";
import type { Registry as MetricsRegistry } from "prom-client";

/** What health needs of the gateway; `Gateway` satisfies it. */
export interface GatewayHealth {
  readonly running: boolean;
  readonly clients: number;
  readonly instance?: string;
  readonly persistence?: "memory" | "redis";
  /** With Redis: its connections' state; "down" makes the gateway not ready. */
  readonly redis?: "ok" | "down";
}

export interface GatewayOpsOptions {
  gateway: GatewayHealth;
  metrics: MetricsRegistry;
  logger?: Logger;
}

export function gatewayOpsApp({ gateway, metrics, logger }: GatewayOpsOptions): Hono {
  const app = new Hono();
  app.notFound((c) =>
    problemResponse({ title: "Not Found", status: 404, detail: `no route for ${c.req.method} ${c.req.path}` }),
  );
  app.onError((err, c) => {
    logger?.error({ err, path: c.req.path }, "HTTP handler failed");
    return problemResponse({
      title: "Internal Server Error",
      status: 500,
      detail: "the gateway failed to answer; see its log",
    });
  });
  // A broker that is not running is a problem answer, not a health report.
  const brokerRunning = async (_c: unknown, next: () => Promise<void>) => {
    if (!gateway.running) {
      return problemResponse({ title: "Service Unavailable", status: 503, detail: "the MQTT broker is not running" });
    }
    await next();
  };
  app.use("/healthz", brokerRunning);
  app.use("/readyz", brokerRunning);
  app.route(
    "/",
    // Redis lost: alive (/healthz 200) but not ready (/readyz 503): nothing is delivered until it is back.
    opsRoutes(
      () => ({
        status: gateway.redis === "down" ? "degraded" : "ok",
        clients: gateway.clients,
        instance: gateway.instance,
        persistence: gateway.persistence,
        ...(gateway.redis ? { redis: gateway.redis } : {}),
      }),
      metrics,
    ),
  );
  return app;
}
