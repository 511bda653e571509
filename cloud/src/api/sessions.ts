/**
 * Console logins: `POST /api/v1/auth/login`, `/refresh`, `/logout` and
 * `GET /api/v1/auth/me` (shapes in protocol/src/console-api.ts).
 *
 * Scripts get the refresh token in the body (`session: "token"`); the
 * dashboard (`session: "cookie"`) gets it, and the access token, as httpOnly,
 * Secure, SameSite=Strict cookies: the refresh cookie is sent to
 * /api/v1/auth only, the access cookie to /api (reads and the live feed; a
 * state-changing call needs the token as a bearer header, see auth.ts).
 *
 * A failed login answers the same 401 whether the account exists, is
 * disabled or the password is wrong, after the same argon2 work; a limit
 * answers 429 with Retry-After, the same for every username (login-limiter.ts).
 */
import {
  consoleApi,
  LoginRequestSchema,
  problemResponse,
  REFRESH_COOKIE,
  RefreshRequestSchema,
  SESSION_COOKIE,
  type SessionAnswer,
  UsernameSchema,
} from "@paylane/protocol";
import { type Context, Hono } from "hono";
import { generateCookie, getCookie } from "hono/cookie";
import type { CookieOptions } from "hono/utils/cookie";
import type { Logger } from "pino";
import type { AuditLog } from "../accounts/audit-log.ts";
import type { LoginLimiter } from "../accounts/login-limiter.ts";
import { type IssuedSession, profile, type Sessions } from "../accounts/sessions.ts";
import { noteAuthFailure } from "../metrics/http-metrics.ts";
import { type OperatorEnv, type OperatorTokenConfig, operatorAuth } from "./auth.ts";
import { jsonBody } from "./http.ts";
import { clientAddress } from "./rate-limit.ts";

export interface SessionRoutesOptions {
  sessions: Sessions | undefined;
  limiter: LoginLimiter;
  audit: AuditLog;
  tokens: OperatorTokenConfig;
  now: () => Date;
  trustProxy?: boolean;
  logger?: Logger;
  /** Seconds the refresh cookie lives (the refresh token's lifetime). */
  refreshTtlSeconds: number;
}

const COOKIE: CookieOptions = { httpOnly: true, secure: true, sameSite: "Strict" };
const ACCESS_PATH = "/api";
const REFRESH_PATH = "/api/v1/auth";

const WRONG = "the username or the password is wrong (an account that is disabled answers the same)";

function unauthorized(detail: string): Response {
  return problemResponse({ title: "Unauthorized", status: 401, detail }, { "cache-control": "no-store" });
}

/** Appends Set-Cookie headers that delete both session cookies. */
function clearCookies(res: Response): Response {
  res.headers.append("set-cookie", generateCookie(SESSION_COOKIE, "", { ...COOKIE, path: ACCESS_PATH, maxAge: 0 }));
  res.headers.append("set-cookie", generateCookie(REFRESH_COOKIE, "", { ...COOKIE, path: REFRESH_PATH, maxAge: 0 }));
  return res;
}

export function sessionRoutes(o: SessionRoutesOptions): Hono<OperatorEnv> {
  const app = new Hono<OperatorEnv>();
  const address = (c: Context) => clientAddress(c, o.trustProxy ?? false);

  const disabled = () =>
    problemResponse({
      title: "Operator API disabled",
      status: 503,
      detail: "the cloud has no CLOUD_JWT_SECRET, so it cannot sign in operators",
    });

  /** An audit row written by the route itself; a failure to write it is logged, the answer stands. */
  const audit = async (c: Context<OperatorEnv>, actor: string, action: string, status: number, detail = {}) => {
    c.set("audit", { written: true });
    await o.audit
      .write({ at: o.now(), actor, action, target: `user ${actor}`, address: address(c), status, detail })
      .catch((err: Error) => o.logger?.error({ err: err.message, action }, "audit row not written"));
  };

  /** The 200 answer with a new session: the refresh token in the body, or both tokens as cookies. */
  const answer = (issued: IssuedSession, mode: "cookie" | "token"): Response => {
    const body: SessionAnswer = {
      accessToken: issued.accessToken,
      tokenType: "Bearer",
      expiresIn: issued.expiresIn,
      ...(mode === "token" ? { refreshToken: issued.refreshToken } : {}),
      operator: issued.operator,
    };
    const res = new Response(JSON.stringify(body), {
      status: 200,
      headers: { "content-type": "application/json", "cache-control": "no-store" },
    });
    if (mode === "cookie") {
      res.headers.append(
        "set-cookie",
        generateCookie(SESSION_COOKIE, issued.accessToken, { ...COOKIE, path: ACCESS_PATH, maxAge: issued.expiresIn }),
      );
      res.headers.append(
        "set-cookie",
        generateCookie(REFRESH_COOKIE, issued.refreshToken, {
          ...COOKIE,
          path: REFRESH_PATH,
          maxAge: o.refreshTtlSeconds,
        }),
      );
    }
    return res;
  };

  app.post(consoleApi.login.path, async (c) => {
    const sessions = o.sessions;
    if (!sessions) return disabled();
    const body = await jsonBody(c.req.raw, LoginRequestSchema);
    if (body instanceof Response) return body;
    const username = body.username.toLowerCase();
    const from = address(c);
    const verdict = await o.limiter.attempt(username, from);
    if (verdict.wait > 0) {
      noteAuthFailure(c, "locked-out");
      c.set("audit", { written: true });
      return problemResponse(
        {
          title: "Too many requests",
          status: 429,
          detail: `too many failed logins for this username or from this address; retry after ${verdict.wait} s`,
        },
        { "retry-after": String(verdict.wait), "cache-control": "no-store" },
      );
    }
    const account = await sessions.authenticate(username, body.password);
    // A username that is not one (a password typed in the wrong field) is not written to the audit log.
    const actor = UsernameSchema.safeParse(username).success ? username : "(not a username)";
    if (!account) {
      const lockedFor = await o.limiter.failed(username);
      await audit(c, actor, "login failed", 401, lockedFor > 0 ? { lockedForSeconds: lockedFor } : {});
      noteAuthFailure(c, "bad-password");
      return unauthorized(WRONG);
    }
    await o.limiter.succeeded(username, from);
    const issued = await sessions.start(account);
    await audit(c, account.username, "login", 200, { session: issued.sessionId, mode: body.session });
    return answer(issued, body.session);
  });

  app.post(consoleApi.refresh.path, async (c) => {
    const sessions = o.sessions;
    if (!sessions) return disabled();
    const cookie = getCookie(c, REFRESH_COOKIE);
    let fromBody: string | undefined;
    if (c.req.header("content-type")?.includes("application/json")) {
      const body = await jsonBody(c.req.raw, RefreshRequestSchema);
      if (body instanceof Response) return body;
      fromBody = body.refreshToken;
    }
    const token = fromBody ?? cookie;
    const mode = fromBody ? "token" : "cookie";
    c.set("audit", { written: true });
    if (!token) {
      noteAuthFailure(c, "bad-refresh-token");
      return unauthorized(`no refresh token: send {"refreshToken": "…"} or the ${REFRESH_COOKIE} cookie`);
    }
    const outcome = await sessions.refresh(token);
    if ("refused" in outcome) {
      noteAuthFailure(c, "bad-refresh-token");
      if (outcome.refused === "reused") {
        await audit(c, outcome.username ?? "(unknown)", "refresh token reused", 401, { session: outcome.session });
      }
      const res = unauthorized(
        {
          unknown: "the refresh token is not one this cloud issued; log in again",
          expired: "the refresh token has expired; log in again",
          revoked: "the session has ended (logged out, or the account changed); log in again",
          reused: "the refresh token was already used, so its session is ended in case a copy was stolen; log in again",
          account: "the account is disabled",
        }[outcome.refused],
      );
      return mode === "cookie" ? clearCookies(res) : res;
    }
    return answer(outcome, mode);
  });

  app.post(consoleApi.logout.path, async (c) => {
    const sessions = o.sessions;
    if (!sessions) return disabled();
    let refreshToken = getCookie(c, REFRESH_COOKIE);
    if (c.req.header("content-type")?.includes("application/json")) {
      const body = await jsonBody(c.req.raw, RefreshRequestSchema);
      if (body instanceof Response) return body;
      refreshToken = body.refreshToken ?? refreshToken;
    }
    c.set("audit", { written: true });
    let ended: { username: string; session: string } | null = null;
    if (refreshToken) ended = await sessions.logout({ refreshToken });
    else {
      // A script that kept only its access token ends the session that token names.
      const header = c.req.header("authorization");
      const sid = header?.startsWith("Bearer ") ? await sessions.sidOf(header.slice(7).trim()) : undefined;
      if (!sid) {
        noteAuthFailure(c, "missing-token");
        return unauthorized(
          `nothing to log out: send {"refreshToken": "…"}, the ${REFRESH_COOKIE} cookie or a console access token`,
        );
      }
      ended = await sessions.logout({ sid });
    }
    if (ended) await audit(c, ended.username, "logout", 204, { session: ended.session });
    // Already ended or unknown: the same answer, the client is logged out either way.
    return clearCookies(new Response(null, { status: 204, headers: { "cache-control": "no-store" } }));
  });

  app.get(consoleApi.me.path, operatorAuth(o.tokens, "fleet:read"), (c) => {
    const { sub, role, sites } = c.var.operator;
    return c.json(profile({ username: sub, role, sites }));
  });

  return app;
}
