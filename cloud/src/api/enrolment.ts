/**
 * Enrolment over HTTP (docs/enrolment.md; the contract is protocol/src/enrolment.ts):
 *
 *   POST /api/v1/claims          (admin)   {site, count?, ttlSeconds?} → 201 {claims: [{id, code, expiresAt}]}
 *   GET  /api/v1/claims?site=    (admin)   the claims without their codes: unused, used (by which device) or expired
 *   GET  /api/v1/enrolment/audit?site=  (admin)   the enrolment audit, newest first
 *   POST /api/v1/enrol           (none: the claim code is the credential)  EnrolRequest → 201 EnrolResponse
 *   POST /api/v1/enrol/rotate    (the device's HTTP Basic)  RotateRequest → 200 {rotatedAt}
 *
 * A refusal is problem+json with `reason`, one of ENROL_REFUSALS. Failed
 * enrolments count per client address; past the limit, 429 `rate-limited`
 * before the request is even read.
 */
import {
  DEFAULT_CLAIM_TTL_SECONDS,
  ENROL_REFUSALS,
  type EnrolRefusal,
  EnrolRequestSchema,
  ID_PATTERN,
  MAX_CLAIM_TTL_SECONDS,
  problemResponse,
  RESERVED_SITES,
  type Registry,
  RotateRequestSchema,
} from "@paylane/protocol";
import { Hono } from "hono";
import { z } from "zod";
import { listAudit } from "../enrolment/audit.ts";
import { type Enrolment, EnrolRefused, RegistryUnavailable } from "../enrolment/enrolment.ts";
import type { EnrolLimiter } from "../enrolment/limiter.ts";
import {
  anyDevice,
  listingSite,
  type OperatorEnv,
  type OperatorTokenConfig,
  operatorAuth,
  siteDenied,
} from "./auth.ts";
import { jsonBody, queryError } from "./http.ts";
import { clientAddress } from "./rate-limit.ts";

/** The HTTP status of each refusal. */
export const REFUSAL_STATUS: Record<EnrolRefusal, number> = {
  "claim-unknown": 403,
  "claim-used": 409,
  "claim-expired": 403,
  "claim-other-site": 403,
  "device-taken": 409,
  "clock-skew": 400,
  "bad-signature": 400,
  "device-revoked": 403,
  "rate-limited": 429,
};

const siteId = z
  .string()
  .regex(ID_PATTERN, `expected lower-case letters, digits, "-" or "_" (${ID_PATTERN})`)
  .refine((s) => !RESERVED_SITES.has(s), "site id 'cloud' is reserved");

export const CreateClaimsSchema = z.strictObject({
  site: siteId,
  count: z.number().int().min(1).max(100).default(1),
  ttlSeconds: z.number().int().min(60).max(MAX_CLAIM_TTL_SECONDS).default(DEFAULT_CLAIM_TTL_SECONDS),
});

const ListQuery = z.object({
  site: z.string().optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

export interface EnrolmentRoutesOptions {
  enrolment: Enrolment;
  limiter: EnrolLimiter;
  registry: () => Registry;
  tokens: OperatorTokenConfig;
  trustProxy?: boolean;
}

export function refusalResponse(err: EnrolRefused): Response {
  return problemResponse({
    title: "Enrolment refused",
    status: REFUSAL_STATUS[err.reason],
    detail: `${ENROL_REFUSALS[err.reason]} (${err.message})`,
    reason: err.reason,
  });
}

function registryUnavailable(): Response {
  return problemResponse(
    {
      title: "Service unavailable",
      status: 503,
      detail: "the device registry could not be written; nothing was used, so try again shortly",
    },
    { "retry-after": "5" },
  );
}

export function enrolmentRoutes(o: EnrolmentRoutesOptions): Hono<OperatorEnv> {
  const app = new Hono<OperatorEnv>();
  const admin = operatorAuth(o.tokens, "admin");
  const address = (c: Parameters<typeof clientAddress>[0]) => clientAddress(c, o.trustProxy ?? false);

  app.post("/api/v1/claims", admin, async (c) => {
    const body = await jsonBody(c.req.raw, CreateClaimsSchema);
    if (body instanceof Response) return body;
    const denied = siteDenied(c, body.site);
    if (denied) return denied;
    const claims = await o.enrolment.createClaims(body, { actor: c.var.operator.sub, address: address(c) });
    return c.json({ claims }, 201);
  });

  app.get("/api/v1/claims", admin, async (c) => {
    const q = ListQuery.safeParse(c.req.query());
    if (!q.success) return queryError(q.error);
    const site = listingSite(c, q.data.site);
    if (site instanceof Response) return site;
    return c.json({ items: await o.enrolment.listClaims(site, q.data.limit) });
  });

  app.get("/api/v1/enrolment/audit", admin, async (c) => {
    const q = ListQuery.safeParse(c.req.query());
    if (!q.success) return queryError(q.error);
    const site = listingSite(c, q.data.site);
    if (site instanceof Response) return site;
    return c.json({ items: await listAudit(o.enrolment.db, site, q.data.limit) });
  });

  app.post("/api/v1/enrol", async (c) => {
    const from = address(c);
    const { wait, first } = await o.limiter.attempt(from);
    if (wait > 0) {
      // Once a window: a refused address may keep asking, and each row would stay in the audit for good.
      if (first) await o.enrolment.refused("rate-limited", from);
      return problemResponse(
        {
          title: "Too many requests",
          status: 429,
          detail: `${ENROL_REFUSALS["rate-limited"]} (retry after ${wait} s)`,
          reason: "rate-limited",
        },
        { "retry-after": String(wait) },
      );
    }
    const body = await jsonBody(c.req.raw, EnrolRequestSchema);
    // A malformed body or a refusal keeps the attempt spent above: it counts as a failure.
    if (body instanceof Response) {
      await o.enrolment.refused("invalid-request", from);
      return body;
    }
    try {
      const enrolled = await o.enrolment.enrol(body, from);
      await o.limiter.succeeded(from);
      return c.json(enrolled, 201);
    } catch (err) {
      if (err instanceof EnrolRefused) return refusalResponse(err);
      if (err instanceof RegistryUnavailable) {
        await o.limiter.succeeded(from);
        return registryUnavailable();
      }
      throw err;
    }
  });

  app.post("/api/v1/enrol/rotate", async (c) => {
    const device = await anyDevice(c.req.header("authorization"), o.registry());
    if (device instanceof Response) return device;
    const body = await jsonBody(c.req.raw, RotateRequestSchema);
    if (body instanceof Response) return body;
    try {
      return c.json(await o.enrolment.rotate(device, body, address(c)), 200);
    } catch (err) {
      if (err instanceof EnrolRefused) return refusalResponse(err);
      if (err instanceof RegistryUnavailable) return registryUnavailable();
      throw err;
    }
  });

  return app;
}
