/**
 * Who calls /api/graphql and what they may touch: the same operator token as
 * REST (verifyOperatorToken), the same permissions (roleAllows) and the same
 * site scope, answered as GraphQL errors whose `extensions.code` says which
 * (UNAUTHENTICATED, FORBIDDEN, BAD_USER_INPUT, NOT_FOUND, CONFLICT,
 * SERVICE_UNAVAILABLE) and whose message reads like the REST problem's detail.
 */
import { type Permission, roleAllows, SESSION_COOKIE } from "@paylane/protocol";
import { GraphQLError } from "graphql";
import { decodeJwt } from "jose";
import { type Operator, type OperatorTokenConfig, permissionRefusal, verifyOperatorToken } from "../api/auth.ts";

/** The authenticated operator, and how the token came: a cookie alone may read, never write. */
export interface Caller {
  operator: Operator;
  via: "bearer" | "cookie";
  /** Whether the token still holds: not expired, its login session (if any) not ended. For long subscriptions. */
  stillValid(): Promise<boolean>;
  /** When the token expires (epoch ms). */
  expiresAt: number;
}

export function gqlError(code: string, message: string, status: number, headers?: Record<string, string>) {
  // `http` sets the response status when the error ends the request (yoga); `status` mirrors REST for clients.
  return new GraphQLError(message, { extensions: { code, status, http: { status, ...(headers ? { headers } : {}) } } });
}

export const forbidden = (message: string) => gqlError("FORBIDDEN", message, 403);
export const badInput = (message: string) => gqlError("BAD_USER_INPUT", message, 400);
export const notFound = (message: string) => gqlError("NOT_FOUND", message, 404);

function unauthenticated(detail: string, invalid: boolean): GraphQLError {
  const challenge = invalid ? 'Bearer realm="paylane", error="invalid_token"' : 'Bearer realm="paylane"';
  return gqlError("UNAUTHENTICATED", detail, 401, { "www-authenticate": challenge });
}

function cookie(header: string | null, name: string): string | undefined {
  for (const part of header?.split(";") ?? []) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/**
 * The caller of `request`: `Authorization: Bearer` first, else the dashboard's
 * session cookie. Anything else is refused before the query runs (introspection
 * included: the schema is for operators only).
 */
export async function authenticate(request: Request, tokens: OperatorTokenConfig): Promise<Caller> {
  const secret = tokens.secret;
  if (!secret) {
    throw gqlError(
      "SERVICE_UNAVAILABLE",
      "the cloud has no CLOUD_JWT_SECRET, so it cannot verify operator tokens",
      503,
    );
  }
  const header = request.headers.get("authorization");
  let token: string | undefined;
  let via: Caller["via"] = "bearer";
  if (header?.startsWith("Bearer ")) token = header.slice(7).trim();
  else {
    token = cookie(request.headers.get("cookie"), SESSION_COOKIE);
    via = "cookie";
  }
  if (!token) {
    throw unauthenticated(
      `operator token required (Authorization: Bearer <JWT>, or the dashboard's ${SESSION_COOKIE} cookie)`,
      false,
    );
  }
  const config = { ...tokens, secret };
  // The same check as REST's (auth.ts): signature, claims, and the login session a console token names.
  const operator = await verifyOperatorToken(token, config);
  if ("refused" in operator) throw unauthenticated(`operator token refused: ${operator.refused}`, true);
  const expiresAt = (decodeJwt(token).exp ?? 0) * 1000;
  const stillValid = async () =>
    Date.now() < expiresAt && !("refused" in (await verifyOperatorToken(token as string, config)));
  return { operator, via, stillValid, expiresAt };
}

/** Throws FORBIDDEN unless the caller's role holds `permission` (the REST 403's words). */
export function need(caller: Caller, permission: Permission): void {
  const { role } = caller.operator;
  if (roleAllows(role, permission)) return;
  throw forbidden(permissionRefusal(permission, role));
}

/** Throws FORBIDDEN unless the caller may touch `site`. */
export function needSite(caller: Caller, site: string): void {
  const sites = caller.operator.sites;
  if (sites !== null && !sites.includes(site)) throw forbidden(`this token may not touch site ${site}`);
}

export function mayTouch(caller: Caller, site: string): boolean {
  const sites = caller.operator.sites;
  return sites === null || sites.includes(site);
}

/**
 * The site a listing is limited to, as REST's listingSite: the one asked for
 * (when allowed), the token's only site, or every site (undefined) for an
 * unscoped token; a token of several sites must name one.
 */
export function listingSite(caller: Caller, site: string | null | undefined): string | undefined {
  if (site !== null && site !== undefined) {
    needSite(caller, site);
    return site;
  }
  const sites = caller.operator.sites;
  if (sites === null) return undefined;
  if (sites.length === 1) return sites[0];
  throw badInput(`site: required, this token may read only sites ${sites.join(", ") || "(none)"}`);
}

/** Writes need the Authorization header: a cookie is sent by the browser on its own (cross-site request forgery). */
export function needBearer(caller: Caller): void {
  if (caller.via === "bearer") return;
  throw forbidden(
    `mutations need the access token in the Authorization header (Bearer); the ${SESSION_COOKIE} cookie alone may only read`,
  );
}
