/**
 * A device's telemetry history for ops (see docs/telemetry.md):
 *
 *   GET /api/v1/devices/{site}/{device}/telemetry?from&to&step   (viewer) downsampled series
 *   GET /api/v1/devices/{site}/{device}/telemetry/latest         (viewer) the newest report
 *
 * `from`/`to` are ISO 8601 times (default: the last hour); `step` is a
 * duration like `60s`, `5m`, `1h`, `1d` (default: 1m, or the smallest of
 * 5m, 15m, 1h, 6h, 1d that keeps the series within MAX_BUCKETS).
 */
import { ID_PATTERN, problemResponse } from "@paylane/protocol";
import { Hono } from "hono";
import { z } from "zod";
import type { Database } from "../db/database.ts";
import type { LatestTelemetryStore } from "../telemetry/latest-store.ts";
import { telemetrySeries } from "../telemetry/series.ts";
import { type OperatorEnv, type OperatorTokenConfig, operatorAuth, siteDenied } from "./auth.ts";
import { badRequest, notFound, queryError } from "./http.ts";

/** The most buckets one series answer holds: enough for a chart, small enough to compute on every refresh. */
export const MAX_BUCKETS = 1000;
const DEFAULT_RANGE_MS = 3_600_000;
const UNIT_SECONDS = { s: 1, m: 60, h: 3600, d: 86_400 } as const;
const AUTO_STEPS = [60, 300, 900, 3600, 21_600, 86_400];

export interface TelemetryRoutesOptions {
  db: Database;
  latest: LatestTelemetryStore;
  tokens: OperatorTokenConfig;
  now: () => Date;
}

const IsoTime = z.iso.datetime({
  offset: true,
  error: "expected an ISO 8601 time with an offset, e.g. 2026-12-04T10:00:00Z",
});

const SeriesQuery = z.strictObject({
  from: IsoTime.optional(),
  to: IsoTime.optional(),
  step: z
    .string()
    .regex(/^[1-9][0-9]{0,6}[smhd]$/, 'expected a duration: a whole number and a unit s, m, h or d, e.g. "60s", "5m"')
    .optional(),
});

const Address = z.object({
  site: z.string().regex(ID_PATTERN, `expected a site id (${ID_PATTERN})`),
  device: z.string().regex(ID_PATTERN, `expected a device id (${ID_PATTERN})`),
});

function stepSeconds(step: string): number {
  return Number(step.slice(0, -1)) * UNIT_SECONDS[step.slice(-1) as keyof typeof UNIT_SECONDS];
}

export function telemetryRoutes(o: TelemetryRoutesOptions): Hono<OperatorEnv> {
  const app = new Hono<OperatorEnv>();
  const viewer = operatorAuth(o.tokens, "fleet:read");

  /** The device of the path, when the token may read its site and the cloud knows it. */
  async function device(site: string, dev: string, denied: (site: string) => Response | null) {
    const a = Address.safeParse({ site, device: dev });
    if (!a.success) return queryError(a.error);
    const refused = denied(site);
    if (refused) return refused;
    const { rows } = await o.db.query("SELECT 1 FROM devices WHERE site_id = $1 AND id = $2", [site, dev]);
    if (rows.length === 0) return notFound(`no device ${dev} at site ${site}`);
    return a.data;
  }

  app.get("/api/v1/devices/:site/:device/telemetry", viewer, async (c) => {
    const addr = await device(c.req.param("site"), c.req.param("device"), (s) => siteDenied(c, s));
    if (addr instanceof Response) return addr;
    const q = SeriesQuery.safeParse(c.req.query());
    if (!q.success) return queryError(q.error);
    const to = q.data.to ? new Date(q.data.to) : o.now();
    const from = q.data.from ? new Date(q.data.from) : new Date(to.getTime() - DEFAULT_RANGE_MS);
    if (from >= to) return badRequest("from: must be before to");
    const rangeSeconds = (to.getTime() - from.getTime()) / 1000;
    let step: number;
    if (q.data.step) {
      step = stepSeconds(q.data.step);
      const buckets = Math.ceil(rangeSeconds / step);
      if (buckets > MAX_BUCKETS) {
        return badRequest(
          `step: ${q.data.step} cuts this range into ${buckets} buckets, at most ${MAX_BUCKETS}; ` +
            `use a step of at least ${Math.ceil(rangeSeconds / MAX_BUCKETS)}s or a shorter range`,
        );
      }
    } else {
      const fits = AUTO_STEPS.find((s) => rangeSeconds / s <= MAX_BUCKETS);
      if (fits === undefined) {
        return badRequest(`from: the range is too long for a series of at most ${MAX_BUCKETS} daily buckets`);
      }
      step = fits;
    }
    const buckets = await telemetrySeries(o.db, { ...addr, from, to, stepSeconds: step });
    return c.json({
      ...addr,
      from: from.toISOString(),
      to: to.toISOString(),
      stepSeconds: step,
      buckets,
    });
  });

  app.get("/api/v1/devices/:site/:device/telemetry/latest", viewer, async (c) => {
    const addr = await device(c.req.param("site"), c.req.param("device"), (s) => siteDenied(c, s));
    if (addr instanceof Response) return addr;
    const latest = await o.latest.get(addr);
    if (!latest) {
      return problemResponse({
        title: "Not found",
        status: 404,
        detail: `device ${addr.device} at site ${addr.site} has sent no telemetry yet`,
      });
    }
    return c.json({ ...addr, receivedAt: latest.receivedAt, telemetry: latest.telemetry });
  });

  return app;
}
