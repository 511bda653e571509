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

import type { OpenAPIHono } from "@hono/zod-openapi";
import {
  DEFAULT_CLAIM_TTL_SECONDS,
  ENROL_REFUSALS,
  EnrolProblemSchema,
  type EnrolRefusal,
  EnrolRequestSchema,
  EnrolResponseSchema,
  ID_PATTERN,
  MAX_CLAIM_TTL_SECONDS,
  problemResponse,
  RESERVED_SITES,
  type Registry,
  RotateRequestSchema,
} from "@paylane/protocol";
import type { MiddlewareHandler } from "hono";
import { z } from "zod";
import { ENROLMENT_ACTIONS, listAudit } from "../enrolment/audit.ts";
import { type Enrolment, EnrolRefused, RegistryUnavailable } from "../enrolment/enrolment.ts";
import type { EnrolLimiter } from "../enrolment/limiter.ts";
import { listingSite, type OperatorEnv, type OperatorTokenConfig, siteDenied } from "./auth.ts";
import {
  type Auth,
  apiApp,
  callerDevice,
  defineRoute,
  deviceRoute,
  json,
  jsonRequest,
  listOf,
  orNull,
  register,
  SiteFilter,
  secured,
} from "./openapi.ts";
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
  site: SiteFilter,
  limit: z.coerce.number().int().min(1).max(1000).default(100).meta({ description: "at most this many, newest first" }),
});

const ClaimSchema = z
  .object({
    id: z.string(),
    site: z.string(),
    state: z.enum(["unused", "used", "expired"]),
    createdBy: z.string(),
    createdAt: z.string(),
    expiresAt: z.string(),
    usedAt: orNull(z.string()),
    usedByDevice: orNull(z.string()),
  })
  .meta({ id: "Claim", description: "A claim code's record (never the code itself)" });
const NewClaimSchema = z
  .object({
    id: z.string(),
    code: z.string().meta({ description: "shown once, stored nowhere" }),
    expiresAt: z.string(),
  })
  .meta({ id: "NewClaim" });
const EnrolmentAuditSchema = z
  .object({
    at: z.string(),
    action: z.enum(ENROLMENT_ACTIONS),
    site: orNull(z.string()).optional(),
    device: orNull(z.string()).optional(),
    claimId: orNull(z.string()).optional(),
    actor: z.string(),
    address: orNull(z.string()).optional(),
    outcome: z.enum(["ok", "refused"]),
    reason: orNull(z.string()).optional(),
  })
  .meta({ id: "EnrolmentAuditEntry" });
const EnrolProblem = (description: string) => ({
  description,
  content: {
    "application/problem+json": {
      schema: EnrolProblemSchema.extend({ type: z.string() }).meta({ id: "EnrolProblem" }),
    },
  },
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

export function enrolmentRoutes(o: EnrolmentRoutesOptions): OpenAPIHono<OperatorEnv> {
  const app = apiApp();
  const admin = (method: "get" | "post") => secured(o.tokens, "admin", method);
  const address = (c: Parameters<typeof clientAddress>[0]) => clientAddress(c, o.trustProxy ?? false);

  const create = defineRoute(admin("post"), {
    method: "post",
    path: "/api/v1/claims",
    tags: ["enrolment"],
    summary: "Create claim codes for a site (each enrols one kiosk, once)",
    request: { body: jsonRequest(CreateClaimsSchema) },
    responses: { 201: json(z.object({ claims: z.array(NewClaimSchema) }), "The new codes, shown this once") },
  });
  register(app, create, async (c) => {
    const body = c.req.valid("json");
    const denied = siteDenied(c, body.site);
    if (denied) return denied;
    const claims = await o.enrolment.createClaims(body, { actor: c.var.operator.sub, address: address(c) });
    return c.json({ claims }, 201);
  });

  const claims = defineRoute(admin("get"), {
    method: "get",
    path: "/api/v1/claims",
    tags: ["enrolment"],
    summary: "Claims without their codes: unused, used (by which device) or expired",
    request: { query: ListQuery },
    responses: { 200: json(listOf(ClaimSchema, "Claim"), "The claims, newest first") },
  });
  register(app, claims, async (c) => {
    const q = c.req.valid("query");
    const site = listingSite(c, q.site);
    if (site instanceof Response) return site;
    return c.json({ items: await o.enrolment.listClaims(site, q.limit) });
  });

  const audit = defineRoute(admin("get"), {
    method: "get",
    path: "/api/v1/enrolment/audit",
    tags: ["enrolment"],
    summary: "The enrolment audit, newest first",
    request: { query: ListQuery },
    responses: { 200: json(listOf(EnrolmentAuditSchema, "EnrolmentAudit"), "The audit entries") },
  });
  register(app, audit, async (c) => {
    const q = c.req.valid("query");
    const site = listingSite(c, q.site);
    if (site instanceof Response) return site;
    return c.json({ items: await listAudit(o.enrolment.db, site, q.limit) });
  });

  // Each attempt is spent before the request is read (a burst of guesses cannot all pass the check) and any
  // answer short of the handler (415, malformed, invalid) is audited as a refused attempt.
  const reached = new WeakSet<Request>();
  const limited: MiddlewareHandler = async (c, next) => {
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
    await next();
    // A malformed body keeps the attempt spent above: it counts as a failure.
    if (!reached.has(c.req.raw)) await o.enrolment.refused("invalid-request", from);
  };
  const claimCode: Auth = {
    middleware: [limited],
    security: [],
    "x-permission": "none",
    permissionNote: `No credentials: the claim code is the credential. Failed attempts count per address; past the limit, 429 before the request is read. A refusal's \`reason\` is one of ${Object.keys(ENROL_REFUSALS).join(", ")}.`,
  };
  const enrol = defineRoute(claimCode, {
    method: "post",
    path: "/api/v1/enrol",
    tags: ["enrolment", "kiosk"],
    summary: "Enrol a kiosk with a claim code",
    request: { body: jsonRequest(EnrolRequestSchema) },
    responses: {
      201: json(EnrolResponseSchema.meta({ id: "EnrolResponse" }), "Enrolled (the same again for a retry)"),
      400: EnrolProblem("Invalid request, clock skew or a bad signature"),
      403: EnrolProblem("Claim unknown, expired, for another site, or the device was revoked"),
      409: EnrolProblem("Claim used, or the device id taken"),
      429: EnrolProblem("Too many failed attempts from this address"),
    },
  });
  register(app, enrol, async (c) => {
    reached.add(c.req.raw);
    const from = address(c);
    const body = c.req.valid("json");
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

  const rotate = defineRoute(deviceRoute(o.registry, "any"), {
    method: "post",
    path: "/api/v1/enrol/rotate",
    tags: ["enrolment", "kiosk"],
    summary: "A kiosk's new secret, signed with its enrolment key",
    request: { body: jsonRequest(RotateRequestSchema) },
    responses: {
      200: json(z.object({ rotatedAt: z.string() }), "Rotated"),
      400: EnrolProblem("Invalid request, clock skew or a bad signature"),
      403: EnrolProblem("The device was revoked"),
    },
  });
  register(app, rotate, async (c) => {
    const device = callerDevice(c);
    const body = c.req.valid("json");
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
