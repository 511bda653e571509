import { Hono } from "hono";
import type { Registry as MetricsRegistry } from "prom-client";

export interface HealthReport {
  status: "ok" | "degraded" | "down";
  [detail: string]: unknown;
}

/**
 * `/healthz` (liveness: 503 only when down), `/readyz` (readiness: 503 unless every dependency is ok, so a
 * load balancer or Kubernetes stops sending work while one is missing) and `/metrics` (Prometheus text).
 */
export function opsRoutes(health: () => HealthReport | Promise<HealthReport>, metrics: MetricsRegistry): Hono {
  const app = new Hono();
  app.get("/healthz", async (c) => {
    const report = await health();
    return c.json(report, report.status === "down" ? 503 : 200);
  });
  app.get("/readyz", async (c) => {
    const report = await health();
    return c.json(report, report.status === "ok" ? 200 : 503);
  });
  app.get("/metrics", async (c) => {
    c.header("content-type", metrics.contentType);
    return c.body(await metrics.metrics());
  });
  return app;
}
