/**
 * Operator accounts over the API (admin of every site only: an admin scoped
 * to some sites could otherwise make themselves an admin of all):
 * `GET /api/v1/users`, `POST /api/v1/users`, `PATCH /api/v1/users/:username`.
 * A change of password, role, sites or a disable ends the account's sessions.
 * The audit log records each call with what changed, never the password.
 */
import {
  CreateOperatorSchema,
  consoleApi,
  type OperatorAccount,
  problemResponse,
  UpdateOperatorSchema,
  UsernameSchema,
} from "@paylane/protocol";
import { type Context, Hono, type MiddlewareHandler } from "hono";
import type { Sessions } from "../accounts/sessions.ts";
import { AccountError, type OperatorStore } from "../accounts/store.ts";
import { type OperatorEnv, type OperatorTokenConfig, operatorAuth } from "./auth.ts";
import { badRequest, jsonBody, notFound } from "./http.ts";

export interface UserRoutesOptions {
  store: OperatorStore;
  sessions: Sessions | undefined;
  tokens: OperatorTokenConfig;
}

/** Account management needs an admin token without a site scope. */
function everySite(): MiddlewareHandler<OperatorEnv> {
  return async function everySite(c, next) {
    if (c.var.operator.sites !== null) {
      return problemResponse({
        title: "Forbidden",
        status: 403,
        detail: "operator accounts are managed by an admin of every site; this token is scoped to some sites",
      });
    }
    await next();
  };
}

function accountError(err: unknown): Response {
  if (!(err instanceof AccountError)) throw err;
  if (err.code === "not-found") return notFound(err.message);
  return problemResponse({ title: "Conflict", status: 409, detail: err.message });
}

export function userRoutes(o: UserRoutesOptions): Hono<OperatorEnv> {
  const app = new Hono<OperatorEnv>();
  const admin = [operatorAuth(o.tokens, "admin"), everySite()] as const;

  app.get(consoleApi.users.path, ...admin, async (c) => {
    const items: OperatorAccount[] = await o.store.list();
    return c.json({ items });
  });

  app.post(consoleApi.users.path, ...admin, async (c) => {
    const body = await jsonBody(c.req.raw, CreateOperatorSchema);
    if (body instanceof Response) return body;
    note(c, body.username, { role: body.role, sites: body.sites });
    try {
      const account = await o.store.create(body);
      return c.json(account, 201, { location: `${consoleApi.users.path}/${account.username}` });
    } catch (err) {
      return accountError(err);
    }
  });

  app.patch(consoleApi.user.path, ...admin, async (c) => {
    const username = UsernameSchema.safeParse(c.req.param("username"));
    if (!username.success) return badRequest(`username: ${username.error.issues[0]?.message}`);
    const body = await jsonBody(c.req.raw, UpdateOperatorSchema);
    if (body instanceof Response) return body;
    const { password, ...rest } = body;
    const changed = { ...rest, ...(password !== undefined ? { passwordChanged: true } : {}) };
    note(c, username.data, changed);
    try {
      const { account, revoked } = await o.store.update(username.data, body);
      if (revoked > 0) o.sessions?.invalidate();
      note(c, username.data, { ...changed, sessionsRevoked: revoked });
      return c.json(account);
    } catch (err) {
      return accountError(err);
    }
  });

  return app;
}

/** What the audit row says about a user change (never the password itself). */
function note(c: Context<OperatorEnv>, username: string, detail: Record<string, unknown>): void {
  c.set("audit", { target: `user ${username}`, detail });
}
