/**
 * The cloud's HTTP API. Errors are `application/problem+json` naming what is
 * wrong. Reads for operators (check-ins, devices); the member replica for
 * devices, authenticated with the device's own credentials.
 */
import {
  MEMBER_DELTA_MAX_VERSIONS,
  type MemberDelta,
  type MemberSnapshot,
  problemResponse,
  type Registry,
} from "@paylane/protocol";
import { type HealthReport, opsRoutes } from "@paylane/protocol/service";
import { Hono } from "hono";
import type { Registry as MetricsRegistry } from "prom-client";
import { z } from "zod";
import { CONFLICT_KINDS, listConflicts } from "../conflicts.ts";
import type { Database } from "../db/database.ts";
import type { PresenceStore } from "../presence/presence-store.ts";
import { deviceOnly } from "./auth.ts";
import { badRequest, cursor, pageAfter, queryError, sinceParam } from "./http.ts";
import { paymentRoutes } from "./payments.ts";
import { streamRoutes } from "./streams.ts";
import { topupRoutes } from "./topups.ts";

export interface ApiOptions {
  db: Database;
  presence: PresenceStore;
  registry: () => Registry;
  metrics: MetricsRegistry;
  health: () => Promise<HealthReport>;
  now?: () => Date;
  /** Device time further than this from the cloud's is a clock-skew conflict (seconds). */
  skewBoundSeconds?: number;
  /** Verifies operator tokens (money routes); unset: those routes answer 503. */
  jwtSecret?: string;
}

const ConflictQuerySchema = z.object({
  site: z.string().optional(),
  kind: z.enum(CONFLICT_KINDS).optional(),
  since: z.iso.datetime({ offset: true }).optional(),
  until: z.iso.datetime({ offset: true }).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

const ListQuery = z.object({
  site: z.string().optional(),
  device: z.string().optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
  before: z.string().optional(),
});

export function createApi(o: ApiOptions): Hono {
  const now = o.now ?? (() => new Date());
  const app = new Hono();
  app.onError((err) => problemResponse({ title: "Internal error", status: 500, detail: err.message }));
  app.notFound((c) =>
    problemResponse({ title: "Not found", status: 404, detail: `no route for ${c.req.method} ${c.req.path}` }),
  );
  app.route("/", opsRoutes(o.health, o.metrics));
  app.route(
    "/",
    paymentRoutes({
      db: o.db,
      presence: o.presence,
      registry: o.registry,
      now,
      jwtSecret: o.jwtSecret,
      metrics: o.metrics,
    }),
  );

  app.route("/", topupRoutes({ db: o.db, registry: o.registry, now, metrics: o.metrics }));
  app.route("/", streamRoutes({ db: o.db, registry: o.registry }));

  app.get("/api/v1/checkins", async (c) => {
    const q = ListQuery.safeParse(c.req.query());
    if (!q.success) return queryError(q.error);
    const { site, device, limit, before } = q.data;
    const after = pageAfter(before, ["string", "string"]);
    if (after instanceof Response) return after;
    const { rows } = await o.db.query<{
      id: string;
      site_id: string;
      device_id: string;
      seq: number;
      member_id: string;
      member_name: string | null;
      credential_type: string;
      at: Date;
      received_at: Date;
      offline: boolean;
      replica_version: number;
    }>(
      `SELECT c.id, c.site_id, c.device_id, c.seq, c.member_id, m.name AS member_name, c.credential_type,
              c.at, c.received_at, c.offline, c.replica_version
       FROM checkins c LEFT JOIN members m ON m.site_id = c.site_id AND m.id = c.member_id
       WHERE ($1::text IS NULL OR c.site_id = $1) AND ($2::text IS NULL OR c.device_id = $2)
         AND ($3::timestamptz IS NULL OR (c.at, c.id) < ($3::timestamptz, $4::uuid))
       ORDER BY c.at DESC, c.id DESC LIMIT $5`,
      [site ?? null, device ?? null, after?.[0] ?? null, after?.[1] ?? null, limit],
    );
    const items = rows.map((r) => ({
      id: r.id,
      site: r.site_id,
      device: r.device_id,
      seq: r.seq,
      memberId: r.member_id,
      memberName: r.member_name,
      credential: r.credential_type,
      at: r.at.toISOString(),
      receivedAt: r.received_at.toISOString(),
      offline: r.offline,
      replicaVersion: r.replica_version,
    }));
    const last = items[items.length - 1];
    return c.json({ items, next: items.length === limit && last ? cursor.encode(last.at, last.id) : null });
  });

  /** Conflicts found across kiosks (see cloud/src/conflicts.ts and docs/conflicts.md), newest first. */
  app.get("/api/v1/conflicts", async (c) => {
    const q = ConflictQuerySchema.safeParse(c.req.query());
    if (!q.success) return queryError(q.error);
    const until = q.data.until ? new Date(q.data.until) : now();
    const since = q.data.since ? new Date(q.data.since) : new Date(until.getTime() - 7 * 86_400_000);
    if (since >= until) return badRequest("since: must be before until");
    const items = await listConflicts(o.db, {
      site: q.data.site,
      kind: q.data.kind,
      since,
      until,
      limit: q.data.limit,
      skewBoundSeconds: o.skewBoundSeconds ?? 300,
    });
    return c.json({ items, since: since.toISOString(), until: until.toISOString() });
  });

  /** Alerts for ops, newest first: staff calls (button or screen) and journal recoveries. */
  app.get("/api/v1/alerts", async (c) => {
    const q = ListQuery.omit({ before: true }).safeParse(c.req.query());
    if (!q.success) return queryError(q.error);
    const { site, device, limit } = q.data;
    const { rows } = await o.db.query<{
      id: string;
      site_id: string;
      device_id: string;
      seq: number;
      kind: string;
      detail: Record<string, unknown>;
      at: Date;
      received_at: Date;
    }>(
      `SELECT id, site_id, device_id, seq, kind, detail, at, received_at FROM alerts
       WHERE ($1::text IS NULL OR site_id = $1) AND ($2::text IS NULL OR device_id = $2)
       ORDER BY at DESC, id DESC LIMIT $3`,
      [site ?? null, device ?? null, limit],
    );
    const items = rows.map((r) => ({
      id: r.id,
      kind: r.kind,
      site: r.site_id,
      device: r.device_id,
      seq: r.seq,
      detail: r.detail,
      at: r.at.toISOString(),
      receivedAt: r.received_at.toISOString(),
    }));
    return c.json({ items });
  });

  app.get("/api/v1/devices", async (c) => {
    const q = ListQuery.pick({ site: true }).safeParse(c.req.query());
    if (!q.success) return queryError(q.error);
    const { rows } = await o.db.query<{ site_id: string; id: string; acked_seq: number | null }>(
      `SELECT d.site_id, d.id, s.acked_seq FROM devices d
       LEFT JOIN device_streams s ON s.site_id = d.site_id AND s.device_id = d.id
       WHERE $1::text IS NULL OR d.site_id = $1 ORDER BY d.site_id, d.id`,
      [q.data.site ?? null],
    );
    const presence = await o.presence.get(rows.map((r) => ({ site: r.site_id, device: r.id })));
    const items = rows.map((r, i) => ({ ...presence[i]!, ackedSeq: r.acked_seq ?? 0 }));
    return c.json({ items });
  });

  /**
   * A device's own stream as the cloud has it: the contiguous acked seq. A
   * kiosk whose journal was damaged starts a new one that continues from here.
   */
  app.get("/api/v1/sites/:site/devices/:device/stream", async (c) => {
    const site = c.req.param("site");
    const device = c.req.param("device");
    const caller = await deviceOnly(c.req.header("authorization"), o.registry(), site, device);
    if (caller instanceof Response) return caller;
    const { rows } = await o.db.query<{ acked_seq: number }>(
      "SELECT acked_seq FROM device_streams WHERE site_id = $1 AND device_id = $2",
      [site, device],
    );
    return c.json({ site, device, ackedSeq: rows[0]?.acked_seq ?? 0 });
  });

  app.get("/api/v1/sites/:site/members", async (c) => {
    const site = c.req.param("site");
    const caller = await deviceOnly(c.req.header("authorization"), o.registry(), site);
    if (caller instanceof Response) return caller;
    const siteRow = await o.db.query<{ members_version: number; timezone: string; name: string }>(
      "SELECT members_version, timezone, name FROM sites WHERE id = $1",
      [site],
    );
    const s = siteRow.rows[0];
    if (!s) return problemResponse({ title: "Not found", status: 404, detail: `no site ${site}` });
    const since = sinceParam(c.req.query("since"), "replica");
    if (since instanceof Response) return since;
    // A delta only on top of a version this cloud has issued and not too long ago; anything else is a full resync.
    const delta =
      since !== undefined && since <= s.members_version && s.members_version - since <= MEMBER_DELTA_MAX_VERSIONS;
    const { rows } = await o.db.query<{
      id: string;
      name: string;
      card_uid: string | null;
      code: string | null;
      status: "active" | "revoked";
    }>(
      `SELECT id, name, card_uid, code, status FROM members
       WHERE site_id = $1 AND ($2::bigint IS NULL OR version > $2) ORDER BY id`,
      [site, delta ? since : null],
    );
    const members = rows.map((r) => ({ id: r.id, name: r.name, cardUid: r.card_uid, code: r.code, status: r.status }));
    const common = { site, version: s.members_version, timezone: s.timezone, siteName: s.name };
    if (delta) return c.json({ ...common, full: false, since, changes: members } satisfies MemberDelta);
    return c.json({ ...common, full: true, members } satisfies MemberSnapshot);
  });

  return app;
}
