/**
 * The console's routes in the OpenAPI document: sessions, users, the audit
 * log, the CSV exports and the live feed's upgrade. They are written as plain
 * Hono routes (sessions.ts, users.ts, audit.ts, exports.ts, live.ts) and
 * validate with the contract schemas of protocol/src/console-api.ts, which
 * this registers as their description; they are not (yet) declared with
 * createRoute, so these entries are kept beside them by hand, and the
 * contract test checks their answers against them like every other route.
 */
import type { OpenAPIHono, RouteConfig } from "@hono/zod-openapi";
import {
  AuditEntrySchema,
  CreateOperatorSchema,
  LoginRequestSchema,
  OperatorAccountSchema,
  OperatorProfileSchema,
  type Permission,
  RefreshRequestSchema,
  rolesWith,
  SessionAnswerSchema,
  UpdateOperatorSchema,
  UsernameSchema,
} from "@paylane/protocol";
import { z } from "zod";
import type { OperatorEnv } from "./auth.ts";
import { ExportQuerySchema } from "./exports.ts";
import { json, PageParams, pageOf, problems } from "./openapi.ts";

const read: Array<Record<string, string[]>> = [{ bearerAuth: [] }, { cookieAuth: [] }];
const write: Array<Record<string, string[]>> = [{ bearerAuth: [] }];

function operator(permission: Permission, security: typeof read) {
  return {
    security,
    "x-permission": permission,
    description: `Needs \`${permission}\` (roles: ${rolesWith(permission).join(", ")}).`,
  };
}

const common = { 400: problems[400], 429: problems[429] };
const authed = { ...common, 401: problems[401], 403: problems[403], 503: problems[503] };

const Account = OperatorAccountSchema.meta({ id: "OperatorAccount" });
const Session = SessionAnswerSchema.meta({ id: "SessionAnswer" });
const UserPath = z.object({ username: UsernameSchema.meta({ param: { name: "username", in: "path" } }) });
const AuditQuery = z.object({
  actor: z.string().max(128).optional(),
  action: z.string().max(300).optional(),
  site: z.string().max(64).optional(),
  limit: PageParams.limit(),
  before: PageParams.before(),
});
const csv = (what: string) => ({
  description: `${what} as CSV (streamed, oldest first)`,
  content: { "text/csv": { schema: z.string() } },
});

export const CONSOLE_ROUTES: RouteConfig[] = [
  {
    method: "post",
    path: "/api/v1/auth/login",
    tags: ["console"],
    summary: "Log in: a short-lived access token and a rotating refresh token (body, or an httpOnly cookie)",
    description:
      'No credentials. Failed logins are limited per account and per address (429 with Retry-After). `session: "cookie"` sets the refresh token as a cookie instead of returning it.',
    security: [],
    request: { body: { required: true, content: { "application/json": { schema: LoginRequestSchema } } } },
    responses: { 200: json(Session, "Logged in"), ...common, 401: problems[401], 415: problems[415] },
  },
  {
    method: "post",
    path: "/api/v1/auth/refresh",
    tags: ["console"],
    summary: "A new access token for a refresh token (which is rotated; a reused one ends the session)",
    description: "The refresh token in the body or its cookie.",
    security: [],
    request: { body: { content: { "application/json": { schema: RefreshRequestSchema } } } },
    responses: { 200: json(Session, "Refreshed"), ...common, 401: problems[401] },
  },
  {
    method: "post",
    path: "/api/v1/auth/logout",
    tags: ["console"],
    summary: "End the session (its refresh tokens and access tokens)",
    security: [],
    request: { body: { content: { "application/json": { schema: RefreshRequestSchema } } } },
    responses: { 204: { description: "Logged out" }, ...common, 401: problems[401] },
  },
  {
    method: "get",
    path: "/api/v1/auth/me",
    tags: ["console"],
    summary: "Who the token stands for, with the permissions of its role",
    ...operator("fleet:read", read),
    responses: { 200: json(OperatorProfileSchema.meta({ id: "OperatorProfile" }), "The operator"), ...authed },
  },
  {
    method: "get",
    path: "/api/v1/users",
    tags: ["console"],
    summary: "Operator accounts",
    ...operator("admin", read),
    responses: { 200: json(z.object({ items: z.array(Account) }), "The accounts"), ...authed },
  },
  {
    method: "post",
    path: "/api/v1/users",
    tags: ["console"],
    summary: "Add an operator account",
    ...operator("admin", write),
    request: { body: { required: true, content: { "application/json": { schema: CreateOperatorSchema } } } },
    responses: { 201: json(Account, "Created"), ...authed, 409: problems[409], 415: problems[415] },
  },
  {
    method: "patch",
    path: "/api/v1/users/{username}",
    tags: ["console"],
    summary: "Change an account's role, sites, password or disable it (its sessions end)",
    ...operator("admin", write),
    request: {
      params: UserPath,
      body: { required: true, content: { "application/json": { schema: UpdateOperatorSchema } } },
    },
    responses: { 200: json(Account, "Changed"), ...authed, 404: problems[404], 415: problems[415] },
  },
  {
    method: "get",
    path: "/api/v1/audit",
    tags: ["console"],
    summary: "The audit log of state-changing calls, newest first (filter by actor, action, site)",
    ...operator("admin", read),
    request: { query: AuditQuery },
    responses: { 200: json(pageOf(AuditEntrySchema.meta({ id: "AuditEntry" }), "AuditEntry"), "A page"), ...authed },
  },
  {
    method: "get",
    path: "/api/v1/exports/checkins.csv",
    tags: ["console", "check-ins"],
    summary: "Check-ins as CSV",
    ...operator("fleet:read", read),
    request: { query: ExportQuerySchema },
    responses: { 200: csv("Check-ins"), ...authed },
  },
  {
    method: "get",
    path: "/api/v1/exports/ledger.csv",
    tags: ["console", "money"],
    summary: "Ledger entries as CSV",
    ...operator("money:read", read),
    request: { query: ExportQuerySchema },
    responses: { 200: csv("Ledger entries"), ...authed },
  },
  {
    method: "get",
    path: "/api/v1/live",
    tags: ["console"],
    summary: "The live feed: a WebSocket upgrade (events filtered by the token's permissions and sites)",
    description:
      "Needs `fleet:read` (money events: `money:read`). Bearer header or the session cookie. Frames are LiveHello then LiveEvent (protocol/src/console-api.ts); see docs/live-feed.md.",
    security: read,
    "x-permission": "fleet:read",
    responses: {
      101: { description: "Switching protocols to WebSocket" },
      ...authed,
      426: { description: "Not a WebSocket upgrade", content: problems[400].content },
    },
  },
];

/** Adds the console routes' descriptions to `app`'s document. */
export function documentConsoleRoutes(app: OpenAPIHono<OperatorEnv>): void {
  for (const route of CONSOLE_ROUTES) app.openAPIRegistry.registerPath(route);
}
