/**
 * The notifications service's alerts over HTTP (docs/alerts.md):
 *
 *   GET  /api/v1/alerts/active?site=      the alerts firing now (viewer)
 *   POST /api/v1/alerts/{key}/resolve     resolves an event-like alert (operator of its site)
 *
 * `GET /api/v1/alerts` (app.ts) stays the list of what kiosks journaled and
 * the cloud recorded; these are the alerts that fire and resolve.
 */
import { problemResponse } from "@paylane/protocol";
import { Hono } from "hono";
import { z } from "zod";
import type { AlertService } from "../alerts/notifier.ts";
import { AlertStore } from "../alerts/store.ts";
import type { Database } from "../db/database.ts";
import { listingSite, type OperatorEnv, type OperatorTokenConfig, operatorAuth, siteDenied } from "./auth.ts";
import { notFound, queryError } from "./http.ts";

export interface AlertRoutesOptions {
  db: Database;
  tokens: OperatorTokenConfig;
  /** Absent: alerts are not running here, and resolving answers 503. */
  alerts?: AlertService;
}

const ActiveQuery = z.object({ site: z.string().optional() });

export function alertRoutes(o: AlertRoutesOptions): Hono<OperatorEnv> {
  const app = new Hono<OperatorEnv>();
  const store = new AlertStore(o.db);

  app.get("/api/v1/alerts/active", operatorAuth(o.tokens, "fleet:read"), async (c) => {
    const q = ActiveQuery.safeParse(c.req.query());
    if (!q.success) return queryError(q.error);
    const site = listingSite(c, q.data.site);
    if (site instanceof Response) return site;
    return c.json({ items: await store.firing(site) });
  });

  app.post("/api/v1/alerts/:key/resolve", operatorAuth(o.tokens, "fleet:operate"), async (c) => {
    const key = c.req.param("key");
    const alert = await store.get(key);
    // Another site's alert answers as a missing one: a 403 would tell its keys apart from made-up ones.
    if (!alert || siteDenied(c, alert.site)) return notFound(`no alert ${key}`);
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
