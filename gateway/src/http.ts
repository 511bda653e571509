/**
 * The gateway's operations endpoints: liveness for the supervisor and
 * Prometheus metrics. Errors are `application/problem+json` (RFC 9457), as
 * everywhere in PayLane.
 */
import { Hono } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { Logger } from "pino";
import type { Registry as MetricsRegistry } from "prom-client";

/** What health needs of the gateway; `Gateway` satisfies it. */
export interface GatewayHealth {
  readonly running: boolean;
  readonly clients: number;
}

export interface GatewayHttpOptions {
  gateway: GatewayHealth;
  metrics: MetricsRegistry;
  logger?: Logger;
}

function problem(status: ContentfulStatusCode, title: string, detail: string): Response {
  return new Response(JSON.stringify({ type: "about:blank", title, status, detail }), {
    status,
    headers: { "content-type": "application/problem+json" },
  });
}

export function createGatewayHttp({ gateway, metrics, logger }: GatewayHttpOptions): Hono {
  const app = new Hono();

  app.get("/healthz", (c) => {
    if (!gateway.running) return problem(503, "Service Unavailable", "the MQTT broker is not running");
    return c.json({ status: "ok", clients: gateway.clients });
  });

  app.get("/metrics", async (c) => {
    const text = await metrics.metrics();
    return c.body(text, 200, { "content-type": metrics.contentType });
  });

  app.notFound((c) => problem(404, "Not Found", `no route for ${c.req.method} ${c.req.path}`));
  app.onError((err, c) => {
    logger?.error({ err, path: c.req.path }, "HTTP handler failed");
    return problem(500, "Internal Server Error", "the gateway failed to answer; see its log");
  });
  return app;
}
