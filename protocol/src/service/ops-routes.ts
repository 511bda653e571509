import { Hono } from "hono";
import type { Registry as MetricsRegistry } from "prom-client";

export interface HealthReport {
  status: "ok" | "degraded" | "down";
  [detail: string]: unknown;
}

/** `/healthz` (503 unless ok or degraded) and `/metrics` (Prometheus text) for one service. */
export function opsRoutes(health: () => HealthReport | Promise<HealthReport>, metrics: MetricsRegistry): Hono {
  const app = new Hono();
  app.get("/healthz", async (c) => {
    const report = await health();
    return c.json(report, report.status === "down" ? 503 : 200);
  });
  app.get("/metrics", async (c) => {
    c.header("content-type", metrics.contentType);
    return c.body(await metrics.metrics());
  });
  return app;
}
