/**
 * `GET /api/v1/sites/{site}/members?since=` (a device of the site): the
 * site's members for the kiosk's replica, a delta on top of a version this
 * cloud issued not too long ago, else a full snapshot.
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import {
  cloudApi,
  MEMBER_DELTA_MAX_VERSIONS,
  type MemberDelta,
  MemberDeltaSchema,
  type MemberSnapshot,
  MemberSnapshotSchema,
  problemResponse,
  type Registry,
} from "@paylane/protocol";
import { z } from "zod";
import type { Database } from "../db/database.ts";
import type { OperatorEnv } from "./auth.ts";
import { sinceParam } from "./http.ts";
import {
  apiApp,
  callerDevice,
  defineRoute,
  deviceRoute,
  json,
  openApiPath,
  problems,
  register,
  SitePath,
  sinceQuery,
} from "./openapi.ts";

export interface MemberRoutesOptions {
  db: Database;
  registry: () => Registry;
}

const MemberSync = z
  .union([MemberDeltaSchema.meta({ id: "MemberDelta" }), MemberSnapshotSchema.meta({ id: "MemberSnapshot" })])
  .meta({ id: "MemberSync" });

export function memberRoutes(o: MemberRoutesOptions): OpenAPIHono<OperatorEnv> {
  const app = apiApp();
  const members = defineRoute(deviceRoute(o.registry, "site"), {
    method: "get",
    path: openApiPath(cloudApi.members.path),
    tags: ["kiosk"],
    summary: "The site's members for a kiosk's replica: a delta on top of `since`, or a full snapshot",
    request: { params: SitePath, query: sinceQuery("replica") },
    responses: { 200: json(MemberSync, "A delta (full: false) or a snapshot (full: true)"), 404: problems[404] },
  });
  register(app, members, async (c) => {
    const { site } = callerDevice(c);
    const siteRow = await o.db.query<{ members_version: number; timezone: string; name: string }>(
      "SELECT members_version, timezone, name FROM sites WHERE id = $1",
      [site],
    );
    const s = siteRow.rows[0];
    if (!s) return problemResponse({ title: "Not found", status: 404, detail: `no site ${site}` });
    const since = sinceParam(c.req.valid("query").since, "replica");
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
