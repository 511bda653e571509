/**
 * `GET /api/v1/sites/{site}/devices/{device}/stream/entries?after=&upTo=`
 * (the device's own credentials): the entry ids the cloud holds at a range
 * of the device's seqs, at most 1000. A kiosk whose journal turned out to be
 * behind the cloud (restored from an older copy) compares its unacked entries
 * with these before it lets any ack cover them: an entry the cloud holds
 * under another id is kept as a conflict, never compacted as "acked".
 */
import { cloudApi, type Registry, type StreamEntries } from "@paylane/protocol";
import { Hono } from "hono";
import type { Database } from "../db/database.ts";
import { deviceOnly } from "./auth.ts";
import { queryError } from "./http.ts";

export interface StreamRoutesOptions {
  db: Database;
  registry: () => Registry;
}

export function streamRoutes(o: StreamRoutesOptions): Hono {
  const app = new Hono();
  app.get(cloudApi.streamEntries.path, async (c) => {
    const site = c.req.param("site");
    const device = c.req.param("device");
    const caller = await deviceOnly(c.req.header("authorization"), o.registry(), site, device);
    if (caller instanceof Response) return caller;
    const q = cloudApi.streamEntries.query.safeParse(c.req.query());
    if (!q.success) return queryError(q.error);
    const { rows } = await o.db.query<{ seq: string | number; entry_id: string | null }>(
      `SELECT seq, entry_id FROM inbox WHERE site_id = $1 AND device_id = $2 AND seq > $3 AND seq <= $4 ORDER BY seq`,
      [site, device, q.data.after, q.data.upTo],
    );
    return c.json({ items: rows.map((r) => ({ seq: Number(r.seq), id: r.entry_id })) } satisfies StreamEntries);
  });
  return app;
}
