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
import type { OpenAPIHono } from "@hono/zod-openapi";
import { ID_PATTERN, problemResponse, roleAllows, TelemetrySchema } from "@paylane/protocol";
import { z } from "zod";
import type { Database } from "../db/database.ts";
import type { LatestTelemetryStore } from "../telemetry/latest-store.ts";
import { SERIES_FIELDS, telemetrySeries } from "../telemetry/series.ts";
import { type OperatorEnv, type OperatorTokenConfig, siteDenied } from "./auth.ts";
import { badRequest, notFound } from "./http.ts";
import { apiApp, defineRoute, json, orNull, problems, register, secured } from "./openapi.ts";

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
  from: IsoTime.optional().meta({ description: "start (default: an hour before `to`)" }),
  to: IsoTime.optional().meta({ description: "end (default: now)" }),
  step: z
    .string()
    .regex(/^[1-9][0-9]{0,6}[smhd]$/, 'expected a duration: a whole number and a unit s, m, h or d, e.g. "60s", "5m"')
    .optional()
    .meta({
      description: `bucket size (default: 1m, or the smallest of 5m, 15m, 1h, 6h, 1d within ${MAX_BUCKETS} buckets)`,
    }),
});

const Address = z.object({
  site: z
    .string()
    .regex(ID_PATTERN, `expected a site id (${ID_PATTERN})`)
    .meta({ param: { name: "site", in: "path" } }),
  device: z
    .string()
    .regex(ID_PATTERN, `expected a device id (${ID_PATTERN})`)
    .meta({ param: { name: "device", in: "path" } }),
});

const Aggregate = z.object({ avg: z.number(), max: z.number() });
const SeriesSchema = z
  .object({
    site: z.string(),
    device: z.string(),
    from: z.string(),
    to: z.string(),
    stepSeconds: z.number().int(),
    buckets: z.array(
      z.object({
        at: z.string().meta({ description: "the bucket's start" }),
        count: z.number().int().meta({ description: "reports in the bucket" }),
        values: z.object(
          Object.fromEntries(Object.keys(SERIES_FIELDS).map((f) => [f, orNull(Aggregate)])) as Record<
            keyof typeof SERIES_FIELDS,
            z.ZodUnion<[typeof Aggregate, z.ZodNull]>
          >,
        ),
      }),
    ),
  })
  .meta({ id: "TelemetrySeries" });
const LatestSchema = z
  .object({ site: z.string(), device: z.string(), receivedAt: z.string(), telemetry: TelemetrySchema })
  .meta({ id: "TelemetryLatest" });

function stepSeconds(step: string): number {
  return Number(step.slice(0, -1)) * UNIT_SECONDS[step.slice(-1) as keyof typeof UNIT_SECONDS];
}

export function telemetryRoutes(o: TelemetryRoutesOptions): OpenAPIHono<OperatorEnv> {
  const app = apiApp();
  const viewer = () => secured(o.tokens, "fleet:read", "get");

  /** The device of the path, when the token may read its site and the cloud knows it. */
  async function device(a: { site: string; device: string }, denied: (site: string) => Response | null) {
    const refused = denied(a.site);
    if (refused) return refused;
    const { rows } = await o.db.query("SELECT 1 FROM devices WHERE site_id = $1 AND id = $2", [a.site, a.device]);
    if (rows.length === 0) return notFound(`no device ${a.device} at site ${a.site}`);
    return { site: a.site, device: a.device };
  }

  const series = defineRoute(viewer(), {
    method: "get",
    path: "/api/v1/devices/{site}/{device}/telemetry",
    tags: ["telemetry"],
    summary: "A kiosk's telemetry, downsampled into buckets (avg and max of each field)",
    request: { params: Address, query: SeriesQuery },
    responses: { 200: json(SeriesSchema, "The series"), 404: problems[404] },
  });
  register(app, series, async (c) => {
    const addr = await device(c.req.valid("param"), (s) => siteDenied(c, s));
    if (addr instanceof Response) return addr;
    const q = { data: c.req.valid("query") };
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

  const latest = defineRoute(viewer(), {
    method: "get",
    path: "/api/v1/devices/{site}/{device}/telemetry/latest",
    tags: ["telemetry"],
    summary: "A kiosk's newest telemetry report",
    request: { params: Address },
    responses: { 200: json(LatestSchema, "The newest report"), 404: problems[404] },
  });
  register(app, latest, async (c) => {
    const addr = await device(c.req.valid("param"), (s) => siteDenied(c, s));
    if (addr instanceof Response) return addr;
    const latest = await o.latest.get(addr);
    if (!latest) {
      return problemResponse({
        title: "Not found",
        status: 404,
        detail: `device ${addr.device} at site ${addr.site} has sent no telemetry yet`,
      });
    }
    // The offline payment exposure is money (money:read), not the fleet's.
    const { payments: _, ...fleetOnly } = latest.telemetry;
    const telemetry = roleAllows(c.var.operator.role, "money:read") ? latest.telemetry : fleetOnly;
    return c.json({ ...addr, receivedAt: latest.receivedAt, telemetry });
  });

  return app;
}
