/**
 * Who is calling. Devices use HTTP Basic with their registry credentials
 * (`{site}/{device}:secret`), the same identity as on MQTT. Operators use a
 * bearer JWT (HS256, verified with hono/jwt) carrying a role:
 *
 *   viewer   reads wallets, ledger, payments and exposure
 *   operator also tops up wallets and refunds payments
 *   admin    also makes adjustments
 *
 * and optionally `sites`, the sites the token may touch (absent: all).
 */
import { type Identity, problemResponse, type Registry } from "@paylane/protocol";
import type { Context, MiddlewareHandler } from "hono";
import { sign, verify } from "hono/jwt";
import { z } from "zod";

export const ROLES = ["viewer", "operator", "admin"] as const;
export type Role = (typeof ROLES)[number];

export interface Operator {
  sub: string;
  role: Role;
  sites: string[] | null;
}

const ClaimsSchema = z.object({
  sub: z.string().regex(/^[A-Za-z0-9@._-]{1,128}$/),
  role: z.enum(ROLES),
  sites: z.array(z.string()).optional(),
});

export type OperatorEnv = { Variables: { operator: Operator } };

/** Requires an operator token with at least `role`; the operator is on `c.var.operator`. */
export function operatorAuth(secret: string | undefined, role: Role): MiddlewareHandler<OperatorEnv> {
  return async (c, next) => {
    if (!secret) {
      return problemResponse({
        title: "Operator API disabled",
        status: 503,
        detail: "the cloud has no CLOUD_JWT_SECRET, so it cannot verify operator tokens",
      });
    }
    const header = c.req.header("authorization");
    if (!header?.startsWith("Bearer ")) {
      return problemResponse(
        { title: "Unauthorized", status: 401, detail: "operator token required (Authorization: Bearer <JWT>)" },
        { "www-authenticate": 'Bearer realm="paylane"' },
      );
    }
    let claims: z.infer<typeof ClaimsSchema>;
    try {
      const parsed = ClaimsSchema.safeParse(await verify(header.slice(7), secret, "HS256"));
      if (!parsed.success) throw new Error("the token has no valid sub and role claims");
      claims = parsed.data;
    } catch (err) {
      return problemResponse(
        { title: "Unauthorized", status: 401, detail: `operator token refused: ${(err as Error).message}` },
        { "www-authenticate": 'Bearer realm="paylane", error="invalid_token"' },
      );
    }
    if (ROLES.indexOf(claims.role) < ROLES.indexOf(role)) {
      return problemResponse({
        title: "Forbidden",
        status: 403,
        detail: `this needs the ${role} role; the token has ${claims.role}`,
      });
    }
    c.set("operator", { sub: claims.sub, role: claims.role, sites: claims.sites ?? null });
    await next();
  };
}

/** A problem response when the operator may not touch `site`, else null. */
export function siteDenied(c: Context<OperatorEnv>, site: string): Response | null {
  const sites = c.var.operator.sites;
  if (sites === null || sites.includes(site)) return null;
  return problemResponse({ title: "Forbidden", status: 403, detail: `this token may not touch site ${site}` });
}

/** Mints an operator token (the `paylane-cloud token` command, `npm start`, tests). */
export function mintOperatorToken(
  secret: string,
  o: { sub: string; role: Role; sites?: string[]; ttlSeconds?: number; now?: Date },
): Promise<string> {
  const iat = Math.floor((o.now ?? new Date()).getTime() / 1000);
  return sign(
    { sub: o.sub, role: o.role, ...(o.sites ? { sites: o.sites } : {}), iat, exp: iat + (o.ttlSeconds ?? 8 * 3600) },
    secret,
    "HS256",
  );
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
