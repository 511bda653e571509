/**
 * The console's accounts wired into one API: the operator store, sessions
 * (and the session check every operator route makes through `tokens`), the
 * login limits, the audit trail middleware and the routes of sessions, users
 * and the audit log. `createApi` calls it before any other route, so the
 * audit trail sees every route's answer.
 */
import type { Hono } from "hono";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { AuditLog } from "../accounts/audit-log.ts";
import { LoginLimiter, type LoginLimitOptions } from "../accounts/login-limiter.ts";
import type { SessionRevocations } from "../accounts/session-endings.ts";
import { DEFAULT_REFRESH_TTL_S, Sessions } from "../accounts/sessions.ts";
import { OperatorStore } from "../accounts/store.ts";
import type { Database } from "../db/database.ts";
import { auditRoutes, auditTrail } from "./audit.ts";
import type { OperatorEnv, OperatorTokenConfig } from "./auth.ts";
import { sessionRoutes } from "./sessions.ts";
import { userRoutes } from "./users.ts";

export interface AccountOptions {
  db: Database;
  /** The API's operator token settings; gains the session check (`sessionLive`). */
  tokens: OperatorTokenConfig;
  now: () => Date;
  /** Access token lifetime (seconds, default 15 min). */
  accessTtlSeconds?: number;
  /** Refresh token lifetime (seconds, default 7 days). */
  refreshTtlSeconds?: number;
  /** How long a live session is believed without asking the database (ms, default 2000). */
  sessionCacheMs?: number;
  /** Sessions ended by other instances (the live feed's LISTEN); unset: they count here after `sessionCacheMs`. */
  revocations?: SessionRevocations;
  loginLimits?: Partial<LoginLimitOptions>;
  /** Shared login limits (the API's rate-limit Redis). */
  redis?: Redis;
  prefix?: string;
  trustProxy?: boolean;
  logger?: Logger;
}

export interface ConsoleAccounts {
  store: OperatorStore;
  sessions: Sessions | undefined;
  audit: AuditLog;
}

export function mountAccounts(app: Hono<OperatorEnv>, o: AccountOptions): ConsoleAccounts {
  const store = new OperatorStore({ db: o.db, now: o.now });
  const audit = new AuditLog(o.db);
  const secret = o.tokens.secret;
  const refreshTtlSeconds = o.refreshTtlSeconds ?? DEFAULT_REFRESH_TTL_S;
  const sessions = secret
    ? new Sessions({
        db: o.db,
        store,
        tokens: { ...o.tokens, secret },
        now: o.now,
        accessTtlSeconds: o.accessTtlSeconds,
        refreshTtlSeconds,
        cacheMs: o.sessionCacheMs,
        revocations: o.revocations,
      })
    : undefined;
  if (sessions) o.tokens.sessionLive = (sid) => sessions.isLive(sid);
  const limiter = new LoginLimiter({ ...o.loginLimits, redis: o.redis, prefix: o.prefix });
  app.use(auditTrail({ audit, now: o.now, trustProxy: o.trustProxy, logger: o.logger }));
  app.route(
    "/",
    sessionRoutes({
      sessions,
      limiter,
      audit,
      tokens: o.tokens,
      now: o.now,
      trustProxy: o.trustProxy,
      logger: o.logger,
      refreshTtlSeconds,
    }),
  );
  app.route("/", userRoutes({ store, sessions, tokens: o.tokens }));
  app.route("/", auditRoutes({ audit, tokens: o.tokens }));
  return { store, sessions, audit };
}
