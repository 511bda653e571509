/**
 * Seq collisions for ops (see docs/security.md): a device's stream held one
 * entry at a seq and another arrived there. Both are kept, nothing is
 * deleted; ops look at the two side by side and record which one was the
 * kiosk's own.
 *
 *   GET  /api/v1/collisions?site=&open=true     (viewer)
 *   POST /api/v1/collisions/{id}/resolve        (operator) {kept: "held" | "arrived", note}
 *
 * Resolving records the decision (who, when, which, why) and closes the
 * alert; the event log itself is never edited. Resolving again is refused.
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import { problemResponse } from "@paylane/protocol";
import { z } from "zod";
import type { Database } from "../db/database.ts";
import { listingSite, type OperatorEnv, type OperatorTokenConfig, siteDenied } from "./auth.ts";
import { notFound } from "./http.ts";
import {
  apiApp,
  defineRoute,
  json,
  jsonRequest,
  listOf,
  orNull,
  problems,
  register,
  SiteFilter,
  secured,
} from "./openapi.ts";

export interface CollisionRoutesOptions {
  db: Database;
  tokens: OperatorTokenConfig;
  now: () => Date;
}

const ListQuery = z.object({
  site: SiteFilter,
  open: z.enum(["true", "false"]).optional().meta({ description: "true: only unresolved; false: only resolved" }),
  limit: z.coerce.number().int().min(1).max(500).default(100).meta({ description: "at most this many, newest first" }),
});

const ResolveBody = z.strictObject({
  /** Which entry was the kiosk's own: the one the stream held, or the one that arrived at its seq. */
  kept: z.enum(["held", "arrived"]),
  note: z.string().min(1).max(1000),
});

const IdPath = z.object({
  id: z.uuid({ error: "expected a collision id (UUID)" }).meta({ param: { name: "id", in: "path" } }),
});

const Entry = z.object({
  entryId: z.string().nullable(),
  kind: z.string(),
  at: z.string().nullable(),
  body: z.unknown(),
});
const Resolution = z
  .object({ at: z.string().nullable(), kept: z.enum(["held", "arrived"]), note: z.string(), by: z.string() })
  .meta({ id: "CollisionResolution" });
export const CollisionSchema = z
  .object({
    id: z.uuid(),
    site: z.string(),
    device: z.string(),
    seq: z.number().int(),
    held: Entry.meta({ description: "the entry the stream held at this seq" }),
    arrived: Entry.extend({ receivedAt: z.string().nullable() }).meta({ description: "the entry that arrived there" }),
    resolved: orNull(Resolution),
  })
  .meta({ id: "Collision" });

export function collisionRoutes(o: CollisionRoutesOptions): OpenAPIHono<OperatorEnv> {
  const app = apiApp();

  const list = defineRoute(secured(o.tokens, "fleet:read", "get"), {
    method: "get",
    path: "/api/v1/collisions",
    tags: ["conflicts"],
    summary: "Seq collisions, newest first",
    request: { query: ListQuery },
    responses: { 200: json(listOf(CollisionSchema, "Collision"), "The collisions") },
  });
  register(app, list, async (c) => {
    const q = c.req.valid("query");
    const site = listingSite(c, q.site);
    if (site instanceof Response) return site;
    const { rows } = await o.db.query<{
      id: string;
      site_id: string;
      device_id: string;
      seq: string;
      entry_id: string | null;
      kind: string;
      at: Date | null;
      body: unknown;
      received_at: Date;
      resolved_at: Date | null;
      resolution: unknown;
      held_entry_id: string | null;
      held_kind: string;
      held_at: Date | null;
      held_body: unknown;
    }>(
      `SELECT c.id, c.site_id, c.device_id, c.seq, c.entry_id, c.kind, c.at, c.body, c.received_at, c.resolved_at,
              c.resolution, c.held_entry_id, c.held_kind, i.at AS held_at, i.body AS held_body
       FROM seq_collisions c
       LEFT JOIN inbox i ON i.site_id = c.site_id AND i.device_id = c.device_id AND i.seq = c.seq
       WHERE ($1::text IS NULL OR c.site_id = $1) AND ($2::boolean IS NULL OR (c.resolved_at IS NULL) = $2)
       ORDER BY c.received_at DESC, c.id LIMIT $3`,
      [site ?? null, q.open === undefined ? null : q.open === "true", q.limit],
    );
    const iso = (d: Date | null) => d?.toISOString() ?? null;
    const items = rows.map((r) => ({
      id: r.id,
      site: r.site_id,
      device: r.device_id,
      seq: Number(r.seq),
      held: { entryId: r.held_entry_id, kind: r.held_kind, at: iso(r.held_at), body: r.held_body },
      arrived: { entryId: r.entry_id, kind: r.kind, at: iso(r.at), body: r.body, receivedAt: iso(r.received_at) },
      resolved: r.resolved_at ? { at: iso(r.resolved_at), ...(r.resolution as object) } : null,
    }));
    return c.json({ items });
  });

  const resolve = defineRoute(secured(o.tokens, "fleet:operate", "post"), {
    method: "post",
    path: "/api/v1/collisions/{id}/resolve",
    tags: ["conflicts"],
    summary: "Record which entry was the kiosk's own",
    request: { params: IdPath, body: jsonRequest(ResolveBody) },
    responses: {
      200: json(z.object({ id: z.uuid(), resolved: Resolution }), "Resolved"),
      404: problems[404],
      409: problems[409],
    },
  });
  register(app, resolve, async (c) => {
    const { id } = c.req.valid("param");
    const body = c.req.valid("json");
    const found = await o.db.query<{ site_id: string; resolved_at: Date | null }>(
      "SELECT site_id, resolved_at FROM seq_collisions WHERE id = $1",
      [id],
    );
    const row = found.rows[0];
    if (!row) return notFound(`no collision ${id}`);
    const denied = siteDenied(c, row.site_id);
    if (denied) return denied;
    // The route names no site: the audit row takes the collision's, never ?site=, so it stays in its site's sight.
    c.set("audit", { site: row.site_id });
    const resolution = { kept: body.kept, note: body.note, by: c.var.operator.sub };
    const { rows } = await o.db.query<{ id: string }>(
      "UPDATE seq_collisions SET resolved_at = $2, resolution = $3 WHERE id = $1 AND resolved_at IS NULL RETURNING id",
      [id, o.now(), JSON.stringify(resolution)],
    );
    if (rows.length === 0) {
      return problemResponse({ title: "Already resolved", status: 409, detail: `collision ${id} is resolved already` });
    }
    return c.json({ id, resolved: { at: o.now().toISOString(), ...resolution } });
  });

  return app;
}
