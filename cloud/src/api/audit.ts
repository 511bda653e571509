/**
 * The audit trail: a middleware that writes one `audit_log` row for every
 * state-changing call (POST, PUT, PATCH, DELETE) an operator token made,
 * whatever its route and answer, after the route ran; and
 * `GET /api/v1/audit` for admins (newest first, cursor pagination like
 * /api/v1/checkins, filters actor, action and site).
 *
 * A row names who (the token's `sub`), what (`METHOD /route/:template`),
 * the target (what the route says, else its path parameters), the site, the
 * client address and the status. A failure to write the row is logged; the
 * answer the route gave stands.
 */
import { consoleApi } from "@paylane/protocol";
import { type Context, Hono, type MiddlewareHandler } from "hono";
import type { Logger } from "pino";
import { z } from "zod";
import type { AuditLog } from "../accounts/audit-log.ts";
import { listingSite, type OperatorEnv, type OperatorTokenConfig, operatorAuth } from "./auth.ts";
import { cursor, pageAfter, queryError } from "./http.ts";
import { clientAddress } from "./rate-limit.ts";

const STATE_CHANGING = new Set(["POST", "PUT", "PATCH", "DELETE"]);

export interface AuditTrailOptions {
  audit: AuditLog;
  now: () => Date;
  trustProxy?: boolean;
  logger?: Logger;
}

/** What a call touched, from its path parameters when the route said nothing. */
function targetOf(params: Record<string, string>): string | null {
  const { site, device, ...rest } = params;
  const parts = Object.entries(rest).map(([k, v]) => `${k} ${v}`);
  if (site !== undefined && device !== undefined) parts.unshift(`device ${site}/${device}`);
  else if (site !== undefined) parts.unshift(`site ${site}`);
  return parts.length > 0 ? parts.join(", ") : null;
}

export function auditTrail(o: AuditTrailOptions): MiddlewareHandler<OperatorEnv> {
  return async function auditTrail(c, next) {
    await next();
    if (!STATE_CHANGING.has(c.req.method)) return;
    const note = c.get("audit");
    const operator = c.get("operator");
    if (note?.written || !operator) return;
    // After next(): the route that answered is the one matched last.
    const params = c.req.param() as Record<string, string>;
    // A `?site=` the route did not use is the caller's word: it counts only for a site the token may touch,
    // or a site's operator could file a call under another site, out of their own admin's sight.
    const asked = c.req.query("site");
    const site =
      note?.site ??
      params.site ??
      (asked !== undefined && (operator.sites === null || operator.sites.includes(asked)) ? asked : undefined) ??
      (operator.sites?.length === 1 ? (operator.sites[0] ?? null) : null);
    await o.audit
      .write({
        at: o.now(),
        actor: operator.sub,
        action: `${c.req.method} ${c.req.routePath}`,
        target: note?.target !== undefined ? note.target : targetOf(params),
        site,
        address: clientAddress(c as unknown as Context, o.trustProxy ?? false),
        status: c.res.status,
        detail: { ...(operator.sid ? { session: operator.sid } : {}), ...note?.detail },
      })
      .catch((err: Error) =>
        o.logger?.error({ err: err.message, method: c.req.method, path: c.req.path }, "audit row not written"),
      );
  };
}

const AuditQuery = z.object({
  actor: z.string().max(128).optional(),
  action: z.string().max(300).optional(),
  site: z.string().max(64).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
  before: z.string().optional(),
});

export function auditRoutes(o: { audit: AuditLog; tokens: OperatorTokenConfig }): Hono<OperatorEnv> {
  const app = new Hono<OperatorEnv>();
  app.get(consoleApi.audit.path, operatorAuth(o.tokens, "admin"), async (c) => {
    const q = AuditQuery.safeParse(c.req.query());
    if (!q.success) return queryError(q.error);
    const scoped = c.var.operator.sites;
    // An admin of some sites reads those sites' rows (and not the account changes, which have no site).
    const site = q.data.site === undefined ? undefined : listingSite(c, q.data.site);
    if (site instanceof Response) return site;
    const before = pageAfter(q.data.before, ["timestamp", "uuid"]);
    if (before instanceof Response) return before;
    const items = await o.audit.list({
      actor: q.data.actor,
      action: q.data.action,
      site,
      sites: scoped ?? undefined,
      before: before as [string, string] | null,
      limit: q.data.limit,
    });
    const last = items[items.length - 1];
    return c.json({ items, next: items.length === q.data.limit && last ? cursor.encode(last.at, last.id) : null });
  });
  return app;
}
