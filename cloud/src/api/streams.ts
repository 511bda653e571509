/**
 * `GET /api/v1/sites/{site}/devices/{device}/stream` (the device's own
 * credentials): the contiguous acked seq the cloud holds for it.
 *
 * `GET /api/v1/sites/{site}/devices/{device}/stream/entries?after=&upTo=`
 * (the device's own credentials): the entry ids the cloud holds at a range
 * of the device's seqs, at most 1000. A kiosk whose journal turned out to be
 * behind the cloud (restored from an older copy) compares its unacked entries
 * with these before it lets any ack cover them: an entry the cloud holds
 * under another id is kept as a conflict, never compacted as "acked".
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import { cloudApi, type Registry, type StreamEntries, type StreamMark } from "@paylane/protocol";
import type { Database } from "../db/database.ts";
import type { OperatorEnv } from "./auth.ts";
import { apiApp, callerDevice, DevicePath, defineRoute, deviceRoute, json, openApiPath, register } from "./openapi.ts";

export interface StreamRoutesOptions {
  db: Database;
  registry: () => Registry;
}

export function streamRoutes(o: StreamRoutesOptions): OpenAPIHono<OperatorEnv> {
  const app = apiApp();
  const entries = defineRoute(deviceRoute(o.registry, "device"), {
    method: "get",
    path: openApiPath(cloudApi.streamEntries.path),
    tags: ["kiosk"],
    summary: "The entry ids the cloud holds at a range of the device's seqs (at most 1000)",
    request: { params: DevicePath, query: cloudApi.streamEntries.query },
    responses: { 200: json(cloudApi.streamEntries.answer.meta({ id: "StreamEntries" }), "Seq and entry id pairs") },
  });
  register(app, entries, async (c) => {
    const { site, device } = callerDevice(c);
    const q = c.req.valid("query");
    const { rows } = await o.db.query<{ seq: string | number; entry_id: string | null }>(
      `SELECT seq, entry_id FROM inbox WHERE site_id = $1 AND device_id = $2 AND seq > $3 AND seq <= $4 ORDER BY seq`,
      [site, device, q.after, q.upTo],
    );
    return c.json({ items: rows.map((r) => ({ seq: Number(r.seq), id: r.entry_id })) } satisfies StreamEntries);
  });
  /** The device's own stream as the cloud has it: a kiosk whose journal was damaged starts a new one from here. */
  const mark = defineRoute(deviceRoute(o.registry, "device"), {
    method: "get",
    path: openApiPath(cloudApi.streamMark.path),
    tags: ["kiosk"],
    summary: "The cloud's contiguous acked seq for the device (its stream mark)",
    request: { params: DevicePath },
    responses: { 200: json(cloudApi.streamMark.answer.meta({ id: "StreamMark" }), "The mark") },
  });
  register(app, mark, async (c) => {
    const { site, device } = callerDevice(c);
    const { rows } = await o.db.query<{ acked_seq: number }>(
      "SELECT acked_seq FROM device_streams WHERE site_id = $1 AND device_id = $2",
      [site, device],
    );
    return c.json({ site, device, ackedSeq: rows[0]?.acked_seq ?? 0 } satisfies StreamMark);
  });
  return app;
}
