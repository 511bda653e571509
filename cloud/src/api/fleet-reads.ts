/**
 * What kiosks journaled, for operators (fleet:read), newest first:
 *
 *   GET /api/v1/checkins?site&device&limit&before    check-ins, paged ({ items, next })
 *   GET /api/v1/conflicts?site&kind&since&until&limit conflicts found across kiosks (docs/conflicts.md)
 *   GET /api/v1/alerts?site&device&limit             staff calls and journal recoveries
 *
 * The queries are the read models GraphQL answers from too.
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import { z } from "zod";
import { CONFLICT_KINDS, listConflicts } from "../conflicts.ts";
import type { Database } from "../db/database.ts";
import { listJournaledAlerts } from "../read-models/alerts.ts";
import { listCheckins } from "../read-models/checkins.ts";
import { listingSite, type OperatorEnv, type OperatorTokenConfig } from "./auth.ts";
import { badRequest, cursor, pageAfter } from "./http.ts";
import {
  apiApp,
  defineRoute,
  IsoTime,
  json,
  listOf,
  orNull,
  PageParams,
  pageOf,
  register,
  SiteFilter,
  secured,
} from "./openapi.ts";

export interface FleetReadRoutesOptions {
  db: Database;
  tokens: OperatorTokenConfig;
  now: () => Date;
  /** Device time further than this from the cloud's is a clock-skew conflict (seconds). */
  skewBoundSeconds: number;
}

const DeviceFilter = z.string().max(64).optional().meta({ description: "only this device (with `site`)" });

const CheckinQuery = z.object({
  site: SiteFilter,
  device: DeviceFilter,
  limit: PageParams.limit(),
  before: PageParams.before(),
});
const AlertQuery = z.object({ site: SiteFilter, device: DeviceFilter, limit: PageParams.limit() });
const ConflictQuery = z.object({
  site: SiteFilter,
  kind: z.enum(CONFLICT_KINDS).optional().meta({ description: "only conflicts of this kind" }),
  since: IsoTime.optional().meta({ description: "device time from (default: 7 days before `until`)" }),
  until: IsoTime.optional().meta({ description: "device time up to (default: now)" }),
  limit: z.coerce.number().int().min(1).max(1000).default(100).meta({ description: "at most this many" }),
});

export const CheckinSchema = z
  .object({
    id: z.uuid(),
    site: z.string(),
    device: z.string(),
    seq: z.number().int(),
    memberId: z.string(),
    memberName: orNull(z.string()),
    credential: z.string(),
    at: z.string().meta({ description: "device time of the tap" }),
    receivedAt: z.string(),
    offline: z.boolean().meta({ description: "admitted from the kiosk's replica while it was offline" }),
    replicaVersion: z.number().int(),
  })
  .meta({ id: "Checkin" });
const ConflictSchema = z
  .object({
    kind: z.enum(CONFLICT_KINDS),
    site: z.string(),
    device: z.string(),
    seq: z.number().int(),
    entryId: z.string(),
    memberId: z.string(),
    at: z.string(),
    receivedAt: z.string(),
    detail: z.record(z.string(), z.unknown()).meta({ description: "what decided it (the rule and its numbers)" }),
  })
  .meta({ id: "Conflict" });
const JournaledAlertSchema = z
  .object({
    id: z.string(),
    kind: z.string(),
    site: z.string(),
    device: z.string(),
    seq: z.number().int(),
    detail: z.record(z.string(), z.unknown()),
    at: z.string(),
    receivedAt: z.string(),
  })
  .meta({ id: "JournaledAlert" });

export function fleetReadRoutes(o: FleetReadRoutesOptions): OpenAPIHono<OperatorEnv> {
  const app = apiApp();
  const viewer = () => secured(o.tokens, "fleet:read", "get");

  const checkins = defineRoute(viewer(), {
    method: "get",
    path: "/api/v1/checkins",
    tags: ["check-ins"],
    summary: "Check-ins, newest first",
    request: { query: CheckinQuery },
    responses: { 200: json(pageOf(CheckinSchema, "Checkin"), "A page of check-ins") },
  });
  register(app, checkins, async (c) => {
    const { device, limit, before, ...q } = c.req.valid("query");
    const site = listingSite(c, q.site);
    if (site instanceof Response) return site;
    const after = pageAfter(before, ["timestamp", "uuid"]);
    if (after instanceof Response) return after;
    const items = await listCheckins(o.db, {
      site,
      device,
      before: after ? { at: String(after[0]), id: String(after[1]) } : null,
      limit,
    });
    const last = items[items.length - 1];
    return c.json({ items, next: items.length === limit && last ? cursor.encode(last.at, last.id) : null });
  });

  const conflicts = defineRoute(viewer(), {
    method: "get",
    path: "/api/v1/conflicts",
    tags: ["conflicts"],
    summary: "Conflicts found across kiosks in a window of device time, newest first",
    request: { query: ConflictQuery },
    responses: {
      200: json(
        z.object({ items: z.array(ConflictSchema), since: z.string(), until: z.string() }).meta({ id: "ConflictList" }),
        "The conflicts and the window searched",
      ),
    },
  });
  register(app, conflicts, async (c) => {
    const q = c.req.valid("query");
    const site = listingSite(c, q.site);
    if (site instanceof Response) return site;
    const until = q.until ? new Date(q.until) : o.now();
    const since = q.since ? new Date(q.since) : new Date(until.getTime() - 7 * 86_400_000);
    if (since >= until) return badRequest("since: must be before until");
    const items = await listConflicts(o.db, {
      site,
      kind: q.kind,
      since,
      until,
      limit: q.limit,
      skewBoundSeconds: o.skewBoundSeconds,
    });
    return c.json({ items, since: since.toISOString(), until: until.toISOString() });
  });

  const alerts = defineRoute(viewer(), {
    method: "get",
    path: "/api/v1/alerts",
    tags: ["alerts"],
    summary: "Alerts kiosks journaled (staff calls, journal recoveries), newest first",
    description: "The alerts the cloud fires and resolves are at /api/v1/alerts/active.",
    request: { query: AlertQuery },
    responses: { 200: json(listOf(JournaledAlertSchema, "JournaledAlert"), "The newest alerts") },
  });
  register(app, alerts, async (c) => {
    const { device, limit, ...q } = c.req.valid("query");
    const site = listingSite(c, q.site);
    if (site instanceof Response) return site;
    return c.json({ items: await listJournaledAlerts(o.db, { site, device, limit }) });
  });

  return app;
}
