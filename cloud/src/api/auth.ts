/**
 * Who is calling. Devices use HTTP Basic with their registry credentials
 * (`{site}/{device}:secret`), the same identity as on MQTT. Operators use a
 * bearer JWT (HS256 only, verified with jose: `exp`, `iss` and `aud` are
 * required and checked) carrying a role — viewer, operator, finance or admin,
 * whose permissions are in protocol/src/console-api.ts — and optionally
 * `sites`, the sites the token may touch (absent: all). Each route names the
 * permission it needs, not a role: the roles are not a ladder.
 */
import {
  CONSOLE_ROLES,
  type ConsoleRole,
  type DeviceAddress,
  type Identity,
  type Permission,
  problemResponse,
  type Registry,
  roleAllows,
  rolesWith,
  SESSION_COOKIE,
} from "@paylane/protocol";
import type { Context, MiddlewareHandler } from "hono";
import { getCookie } from "hono/cookie";
import { errors as joseErrors, jwtVerify, SignJWT } from "jose";
import { z } from "zod";
import { noteAuthFailure } from "../metrics/http-metrics.ts";
import { notFound } from "./http.ts";

export const ROLES = CONSOLE_ROLES;
export type Role = ConsoleRole;

/** The `iss` and `aud` operator tokens carry unless configured otherwise (CLOUD_JWT_ISSUER, CLOUD_JWT_AUDIENCE). */
export const DEFAULT_JWT_ISSUER = "paylane-cloud";
export const DEFAULT_JWT_AUDIENCE = "paylane-api";
/** Clock difference between the minting host and the cloud that `exp` and `nbf` forgive (seconds). */
export const JWT_CLOCK_TOLERANCE_S = 30;

export interface Operator {
  sub: string;
  role: Role;
  sites: string[] | null;
  /** The login session a console access token belongs to (absent: a token minted by `paylane-cloud token`). */
  sid?: string;
}

/** How operator tokens are verified; `secret` unset: the operator routes answer 503. */
export interface OperatorTokenConfig {
  secret?: string;
  issuer?: string;
  audience?: string;
  /**
   * Whether the login session a token names (`sid`) is still live; unset:
   * tokens carrying a `sid` are refused (nothing could tell a logout).
   */
  sessionLive?: (sid: string) => Promise<boolean>;
}

const ClaimsSchema = z.object({
  sub: z.string().regex(/^[A-Za-z0-9@._-]{1,128}$/),
  role: z.enum(ROLES),
  sites: z.array(z.string()).optional(),
  sid: z.uuid().optional(),
});

/** What a route tells the audit log about its call, beyond the method and route (see audit.ts). */
export interface AuditNote {
  target?: string | null;
  site?: string | null;
  detail?: Record<string, unknown>;
  /** The route wrote its own row (login, logout): the middleware writes none. */
  written?: boolean;
}

export type OperatorEnv = { Variables: { operator: Operator; audit?: AuditNote } };

const encoder = new TextEncoder();

/**
 * Each secret's HMAC key, imported once: given the raw bytes, jose imports
 * them again at every verify, half of what verifying a token costs.
 */
const verifyKeys = new Map<string, Promise<CryptoKey>>();
function verifyKey(secret: string): Promise<CryptoKey> {
  let key = verifyKeys.get(secret);
  if (!key) {
    key = crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
    verifyKeys.set(secret, key);
  }
  return key;
}

/**
 * Why a token was refused, in words that never repeat any part of the token
 * (jose's messages do not either, but they are not ours to promise).
 */
function refusal(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return "the token has expired (exp)";
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    const claim = err.claim;
    if (err.reason === "missing") return `the token has no "${claim}" claim; operator tokens need exp, iss and aud`;
    if (claim === "iss" || claim === "aud") return `the token's "${claim}" claim is not the one this cloud accepts`;
    if (claim === "nbf") return "the token is not valid yet (nbf)";
    return `the token's "${claim}" claim is invalid`;
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed)
    return "the token is not signed with HS256, the only algorithm accepted";
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return "the token's signature does not verify";
  if (err instanceof joseErrors.JWTInvalid || err instanceof joseErrors.JWSInvalid) return "not a well-formed JWT";
  if (err instanceof joseErrors.JOSENotSupported) return "the token uses an unsupported JOSE feature";
  return "the token could not be verified";
}

/**
 * The operator a bearer token stands for, or why it is refused (never
 * echoing the token). A token naming a login session (`sid`) is refused once
 * that session has ended: every door (REST, GraphQL, the live feed) verifies here.
 */
export async function verifyOperatorToken(
  token: string,
  cfg: OperatorTokenConfig & { secret: string },
): Promise<Operator | { refused: string; expired?: true }> {
  try {
    const { payload } = await jwtVerify(token, await verifyKey(cfg.secret), {
      algorithms: ["HS256"],
      issuer: cfg.issuer ?? DEFAULT_JWT_ISSUER,
      audience: cfg.audience ?? DEFAULT_JWT_AUDIENCE,
      requiredClaims: ["exp", "iss", "aud", "sub"],
      clockTolerance: JWT_CLOCK_TOLERANCE_S,
    });
    const parsed = ClaimsSchema.safeParse(payload);
    if (!parsed.success) return { refused: "the token has no valid sub and role claims" };
    const { sub, role, sites, sid } = parsed.data;
    if (sid && !(cfg.sessionLive && (await cfg.sessionLive(sid)))) {
      return { refused: "its session has ended (logged out, or the account changed); log in again" };
    }
    return { sub, role, sites: sites ?? null, ...(sid ? { sid } : {}) };
  } catch (err) {
    return { refused: refusal(err), ...(err instanceof joseErrors.JWTExpired ? { expired: true as const } : {}) };
  }
}

/**
 * The presented access token: the `Authorization: Bearer` header, or for a
 * GET or HEAD only the dashboard's session cookie. A state-changing call
 * needs the header, so a page of another site cannot make the browser send
 * one on the operator's behalf with the cookie (no CSRF by cookie).
 */
function presentedToken(c: Context): string | undefined {
  const header = c.req.header("authorization");
  if (header?.startsWith("Bearer ")) return header.slice(7).trim();
  if (header === undefined && (c.req.method === "GET" || c.req.method === "HEAD")) return getCookie(c, SESSION_COOKIE);
  return undefined;
}

/** Requires an operator token whose role holds `permission`; the operator is on `c.var.operator`. */
export function operatorAuth(
  cfg: OperatorTokenConfig | string | undefined,
  permission: Permission,
): MiddlewareHandler<OperatorEnv> {
  const config: OperatorTokenConfig = typeof cfg === "string" || cfg === undefined ? { secret: cfg } : cfg;
  return async function operatorAuth(c, next) {
    const secret = config.secret;
    if (!secret) {
      return problemResponse({
        title: "Operator API disabled",
        status: 503,
        detail: "the cloud has no CLOUD_JWT_SECRET, so it cannot verify operator tokens",
      });
    }
    const token = presentedToken(c);
    if (!token) {
      noteAuthFailure(c, "missing-token");
      const cookieOnly = c.req.method !== "GET" && c.req.method !== "HEAD" && getCookie(c, SESSION_COOKIE);
      return problemResponse(
        {
          title: "Unauthorized",
          status: 401,
          detail: cookieOnly
            ? `a ${c.req.method} needs the access token as Authorization: Bearer <JWT>; the session cookie is accepted for reads only`
            : "operator token required (Authorization: Bearer <JWT>)",
        },
        { "www-authenticate": 'Bearer realm="paylane"' },
      );
    }
    const operator = await verifyOperatorToken(token, { ...config, secret });
    if ("refused" in operator) {
      noteAuthFailure(c, operator.expired ? "expired-token" : "bad-token");
      return problemResponse(
        { title: "Unauthorized", status: 401, detail: `operator token refused: ${operator.refused}` },
        { "www-authenticate": 'Bearer realm="paylane", error="invalid_token"' },
      );
    }
    // Set before the permission check: a refused call by a known operator is audited as theirs.
    c.set("operator", operator);
    if (!roleAllows(operator.role, permission)) return permissionDenied(permission, operator.role);
    await next();
  };
}

/** The 403 for a role without `permission`, naming the roles that have it. */
export function permissionDenied(permission: Permission, role: Role): Response {
  return problemResponse({ title: "Forbidden", status: 403, detail: permissionRefusal(permission, role) });
}

/** Why `role` may not do what needs `permission`, in the words every door (REST, GraphQL) answers. */
export function permissionRefusal(permission: Permission, role: Role): string {
  return `this needs ${permission}, which the ${rolesWith(permission).join(" and ")} roles have; the token has ${role}`;
}

/** A problem response when the operator may not touch `site`, else null. */
export function siteDenied(c: Context<OperatorEnv>, site: string): Response | null {
  const sites = c.var.operator.sites;
  if (sites === null || sites.includes(site)) return null;
  return problemResponse({ title: "Forbidden", status: 403, detail: `this token may not touch site ${site}` });
}

/**
 * The enrolled device a `/:site/:device` path names, when the operator may
 * touch its site; else the problem response (403 for the site, 404 for a
 * device the registry does not know).
 */
export function pathDevice(c: Context<OperatorEnv>, registry: Registry): DeviceAddress | Response {
  const device = { site: c.req.param("site") ?? "", device: c.req.param("device") ?? "" };
  const denied = siteDenied(c, device.site);
  if (denied) return denied;
  if (!registry.hasDevice(device)) return notFound(`no enrolled device ${device.site}/${device.device}`);
  return device;
}

/**
 * The site a listing is limited to: `?site=` when given (and allowed), the
 * token's only site, or every site (undefined) for an unscoped token. A
 * token scoped to several sites must choose one.
 */
export function listingSite(c: Context<OperatorEnv>, site: string | undefined): string | undefined | Response {
  if (site !== undefined) return siteDenied(c, site) ?? site;
  const sites = c.var.operator.sites;
  if (sites === null) return undefined;
  if (sites.length === 1) return sites[0];
  return problemResponse({
    title: "Invalid request",
    status: 400,
    detail: `site: required, this token may read only sites ${sites.join(", ") || "(none)"}`,
  });
}

/** Mints an operator token (the `paylane-cloud token` command, `npm start`, tests): HS256 with iss, aud, iat, exp. */
export function mintOperatorToken(
  secret: string,
  o: {
    sub: string;
    role: Role;
    sites?: string[];
    /** The login session (console sessions only): the token dies with it. */
    sid?: string;
    ttlSeconds?: number;
    now?: Date;
    issuer?: string;
    audience?: string;
  },
): Promise<string> {
  const iat = Math.floor((o.now ?? new Date()).getTime() / 1000);
  return new SignJWT({ role: o.role, ...(o.sites ? { sites: o.sites } : {}), ...(o.sid ? { sid: o.sid } : {}) })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(o.sub)
    .setIssuer(o.issuer ?? DEFAULT_JWT_ISSUER)
    .setAudience(o.audience ?? DEFAULT_JWT_AUDIENCE)
    .setIssuedAt(iat)
    .setExpirationTime(iat + (o.ttlSeconds ?? 8 * 3600))
    .sign(encoder.encode(secret));
}

async function authenticateBasic(header: string | undefined, registry: Registry): Promise<Identity | null> {
  if (!header?.startsWith("Basic ")) return null;
  const decoded = Buffer.from(header.slice(6), "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon < 0) return null;
  return registry.authenticate(decoded.slice(0, colon), decoded.slice(colon + 1));
}

/**
 * The calling device, when its credentials are of `site` (and of `device`,
 * when given); otherwise a problem response saying why not.
 */
export async function deviceOnly(
  header: string | undefined,
  registry: Registry,
  site: string,
  device?: string,
): Promise<{ device: string } | Response> {
  const identity = await authenticateBasic(header, registry);
  if (!identity) return deviceCredentialsRequired();
  if (
    identity.kind !== "device" ||
    identity.address.site !== site ||
    (device !== undefined && identity.address.device !== device)
  ) {
    const what = device === undefined ? `site ${site}` : `device ${site}/${device}`;
    return problemResponse({ title: "Forbidden", status: 403, detail: `this identity may not use ${what}` });
  }
  return { device: identity.address.device };
}

/** The calling device's address from its credentials, whatever its site; or a 401 problem. */
export async function anyDevice(
  header: string | undefined,
  registry: Registry,
): Promise<{ site: string; device: string } | Response> {
  const identity = await authenticateBasic(header, registry);
  return identity?.kind === "device" ? identity.address : deviceCredentialsRequired();
}

function deviceCredentialsRequired(): Response {
  return problemResponse(
    { title: "Unauthorized", status: 401, detail: "device credentials required (HTTP Basic, {site}/{device}:secret)" },
    { "www-authenticate": 'Basic realm="paylane"' },
  );
}
