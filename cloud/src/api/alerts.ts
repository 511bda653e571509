/**
 * The notifications service's alerts over HTTP (docs/alerts.md):
 *
 *   GET  /api/v1/alerts/active?site=      the alerts firing now (viewer)
 *   POST /api/v1/alerts/{key}/resolve     resolves an event-like alert (operator of its site)
 *
 * `GET /api/v1/alerts` (app.ts) stays the list of what kiosks journaled and
 * the cloud recorded; these are the alerts that fire and resolve.
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import { AlertSchema, problemResponse } from "@paylane/protocol";
import { z } from "zod";
import type { AlertService } from "../alerts/notifier.ts";
import { AlertStore } from "../alerts/store.ts";
import type { Database } from "../db/database.ts";
import { listingSite, type OperatorEnv, type OperatorTokenConfig, siteDenied } from "./auth.ts";
import { notFound } from "./http.ts";
import { apiApp, defineRoute, json, listOf, problems, register, SiteFilter, secured } from "./openapi.ts";

export interface AlertRoutesOptions {
  db: Database;
  tokens: OperatorTokenConfig;
  /** Absent: alerts are not running here, and resolving answers 503. */
  alerts?: AlertService;
}

const ActiveQuery = z.object({ site: SiteFilter });
const KeyPath = z.object({
  key: z
    .string()
    .max(200)
    .meta({ param: { name: "key", in: "path" } }),
});
export const FiringAlertSchema = AlertSchema.meta({
  id: "Alert",
  description: "An alert the cloud fires and resolves",
});

export function alertRoutes(o: AlertRoutesOptions): OpenAPIHono<OperatorEnv> {
  const app = apiApp();
  const store = new AlertStore(o.db);

  const active = defineRoute(secured(o.tokens, "fleet:read", "get"), {
    method: "get",
    path: "/api/v1/alerts/active",
    tags: ["alerts"],
    summary: "The alerts firing now, oldest first",
    request: { query: ActiveQuery },
    responses: { 200: json(listOf(FiringAlertSchema, "Alert"), "The firing alerts") },
  });
  register(app, active, async (c) => {
    const site = listingSite(c, c.req.valid("query").site);
    if (site instanceof Response) return site;
    return c.json({ items: await store.firing(site) });
  });

  const resolve = defineRoute(secured(o.tokens, "fleet:operate", "post"), {
    method: "post",
    path: "/api/v1/alerts/{key}/resolve",
    tags: ["alerts"],
    summary: "Resolve an event-like alert by hand",
    description:
      "Only staff-called, journal-rolled-back and ledger-exception resolve by hand; others resolve by themselves.",
    request: { params: KeyPath },
    responses: {
      200: json(FiringAlertSchema, "The alert, resolved"),
      404: problems[404],
      409: problems[409],
      503: problems[503],
    },
  });
  register(app, resolve, async (c) => {
    const { key } = c.req.valid("param");
    const alert = await store.get(key);
    // Another site's alert answers as a missing one: a 403 would tell its keys apart from made-up ones.
    if (!alert || siteDenied(c, alert.site)) return notFound(`no alert ${key}`);
    // The route names no site: the audit row takes the alert's, never ?site=, so it stays in its site's sight.
    c.set("audit", { site: alert.site });
    if (!o.alerts) {
      return problemResponse({ title: "Alerts not running", status: 503, detail: "this cloud runs no alert service" });
    }
    const outcome = o.alerts.resolveByOperator(key, c.var.operator.sub);
    if (outcome === "not-event-like") {
      return problemResponse({
        title: "Conflict",
        status: 409,
        detail: `${alert.rule} resolves by itself when its condition clears; only staff-called, journal-rolled-back and ledger-exception are resolved by hand`,
      });
    }
    if (outcome === "not-firing") {
      return problemResponse({ title: "Conflict", status: 409, detail: `alert ${key} is not firing` });
    }
    // Only the database write: a sink that is down must not hold the operator's answer.
    await o.alerts.saved();
    return c.json((await store.get(key)) ?? alert);
  });

  return app;
}
