/**
 * The ops console's contract: operator roles and what each may do, the
 * login/session calls, operator accounts, the audit log and the live feed.
 * The cloud enforces it (REST, GraphQL and the live feed share the same
 * permission check), the dashboard and `paylane-admin` speak it.
 *
 * (The broker's MQTT operator roles are another thing: registry.ts.)
 *
 * Roles are not a ladder: finance reads money but does not command kiosks,
 * operators command kiosks but never see the ledger. Admin holds every
 * permission. A role applies to the operator's sites (`sites`, null: all).
 */
import { z } from "zod";

export const CONSOLE_ROLES = ["viewer", "operator", "finance", "admin"] as const;
export type ConsoleRole = (typeof CONSOLE_ROLES)[number];

export const PERMISSIONS = [
  /** Fleet, telemetry, check-ins, alerts, conflicts, commands and configs: read. */
  "fleet:read",
  /** Commands, desired configuration, resolving alerts, conflicts and collisions. */
  "fleet:operate",
  /** Wallets, ledger, payments, exposure, CSV exports. */
  "money:read",
  /** Refunds, top-ups and wallet adjustments. */
  "money:write",
  /** Operator accounts, sites, price lists and offline limits, devices, enrolment, the audit log. */
  "admin",
] as const;
export type Permission = (typeof PERMISSIONS)[number];

export const ROLE_PERMISSIONS: Record<ConsoleRole, readonly Permission[]> = {
  viewer: ["fleet:read"],
  operator: ["fleet:read", "fleet:operate"],
  finance: ["fleet:read", "money:read", "money:write"],
  admin: PERMISSIONS,
};

export function roleAllows(role: ConsoleRole, permission: Permission): boolean {
  return ROLE_PERMISSIONS[role].includes(permission);
}

/** The roles that hold `permission`, for messages ("this needs finance or admin"). */
export function rolesWith(permission: Permission): ConsoleRole[] {
  return CONSOLE_ROLES.filter((r) => roleAllows(r, permission));
}

/** Usernames: what `paylane-admin user add` and the users API accept (also the JWT `sub`). */
export const UsernameSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._@-]{1,63}$/, "expected 2-64 of a-z 0-9 . _ @ -, starting with a letter or digit");

/** At least 12 characters; at most 256 (hashing a megabyte is a denial of service, not a password). */
export const PasswordSchema = z.string().min(12, "expected at least 12 characters").max(256, "at most 256 characters");

export const SiteListSchema = z
  .array(z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/))
  .nullable()
  .describe("the sites this operator may touch; null: every site");

// ---- sessions -----------------------------------------------------------

/** The dashboard's session cookies: both httpOnly, Secure, SameSite=Strict. */
export const SESSION_COOKIE = "paylane_session"; // the access token, path /api (the live feed reads it)
export const REFRESH_COOKIE = "paylane_refresh"; // the refresh token, path /api/v1/auth

export const LoginRequestSchema = z.object({
  username: z.string().min(1).max(64),
  password: z.string().min(1).max(256),
  /**
   * "cookie" (the dashboard): the refresh token is set as an httpOnly cookie
   * and not returned in the body. "token" (scripts, the default): it is in the body.
   */
  session: z.enum(["cookie", "token"]).default("token"),
});
export type LoginRequest = z.input<typeof LoginRequestSchema>;

export const OperatorProfileSchema = z.object({
  username: UsernameSchema,
  role: z.enum(CONSOLE_ROLES),
  sites: SiteListSchema,
  permissions: z.array(z.enum(PERMISSIONS)),
});
export type OperatorProfile = z.infer<typeof OperatorProfileSchema>;

/** What login and refresh answer. */
export const SessionAnswerSchema = z.object({
  accessToken: z.string(),
  tokenType: z.literal("Bearer"),
  /** Seconds the access token lives. */
  expiresIn: z.number().int().positive(),
  /** Present for `session: "token"` only; each refresh returns a new one and retires the old. */
  refreshToken: z.string().optional(),
  operator: OperatorProfileSchema,
});
export type SessionAnswer = z.infer<typeof SessionAnswerSchema>;

/** Scripts send their refresh token in the body; the dashboard's is its cookie (empty body). */
export const RefreshRequestSchema = z.object({ refreshToken: z.string().min(1).max(512).optional() });

export const consoleApi = {
  login: { method: "POST", path: "/api/v1/auth/login" },
  refresh: { method: "POST", path: "/api/v1/auth/refresh" },
  logout: { method: "POST", path: "/api/v1/auth/logout" },
  me: { method: "GET", path: "/api/v1/auth/me" },
  users: { method: "GET", path: "/api/v1/users" },
  user: { method: "PATCH", path: "/api/v1/users/:username" },
  audit: { method: "GET", path: "/api/v1/audit" },
  live: { method: "GET", path: "/api/v1/live" },
  graphql: { method: "POST", path: "/api/graphql" },
  openapi: { method: "GET", path: "/api/v1/openapi.json" },
  dashboard: { method: "GET", path: "/dashboard/" },
} as const;

// ---- accounts -----------------------------------------------------------

export const OperatorAccountSchema = z.object({
  username: UsernameSchema,
  role: z.enum(CONSOLE_ROLES),
  sites: SiteListSchema,
  disabled: z.boolean(),
  createdAt: z.iso.datetime({ offset: true }),
  lastLoginAt: z.iso.datetime({ offset: true }).nullable(),
});
export type OperatorAccount = z.infer<typeof OperatorAccountSchema>;

export const CreateOperatorSchema = z.object({
  username: UsernameSchema,
  password: PasswordSchema,
  role: z.enum(CONSOLE_ROLES),
  sites: SiteListSchema.default(null),
});

export const UpdateOperatorSchema = z
  .object({
    role: z.enum(CONSOLE_ROLES).optional(),
    sites: SiteListSchema.optional(),
    disabled: z.boolean().optional(),
    password: PasswordSchema.optional(),
  })
  .refine((u) => Object.keys(u).length > 0, "expected at least one of role, sites, disabled, password");

// ---- audit --------------------------------------------------------------

/** One state-changing call: who, what, when, from where. */
export const AuditEntrySchema = z.object({
  id: z.string(),
  at: z.iso.datetime({ offset: true }),
  /** The operator's username (or a service token's sub). */
  actor: z.string(),
  /** `METHOD /route/template`, e.g. `POST /api/v1/payments/:id/refunds`, or a named action. */
  action: z.string(),
  /** What it touched, e.g. `payment 4c1e…`, `user alice`, `device demo/kiosk-1`. */
  target: z.string().nullable(),
  site: z.string().nullable(),
  /** The client address. */
  address: z.string().nullable(),
  /** The HTTP status answered. */
  status: z.number().int(),
  detail: z.record(z.string(), z.unknown()),
});
export type AuditEntry = z.infer<typeof AuditEntrySchema>;

// ---- live feed ----------------------------------------------------------

export const LIVE_EVENT_TYPES = ["checkin", "payment", "device-status", "alert", "command-result"] as const;
export type LiveEventType = (typeof LIVE_EVENT_TYPES)[number];

/** Which permission a live event needs: payments are money, the rest fleet. */
export const LIVE_EVENT_PERMISSION: Record<LiveEventType, Permission> = {
  checkin: "fleet:read",
  payment: "money:read",
  "device-status": "fleet:read",
  alert: "fleet:read",
  "command-result": "fleet:read",
};

/**
 * One message on `/api/v1/live` (a WebSocket text frame, JSON). The feed
 * sends only events of the operator's sites and permissions; `?site=` and
 * `?types=checkin,alert` narrow it further.
 */
export const LiveEventSchema = z.object({
  type: z.enum(LIVE_EVENT_TYPES),
  site: z.string(),
  device: z.string().nullable(),
  /** When it was committed in the cloud. */
  at: z.iso.datetime({ offset: true }),
  /** The row as the matching REST read shows it (a check-in, a ledger entry, a status, an alert, a command). */
  data: z.record(z.string(), z.unknown()),
});
export type LiveEvent = z.infer<typeof LiveEventSchema>;

/** The feed's first frame, and its answer to an unusable request before it closes. */
export const LiveHelloSchema = z.object({
  type: z.literal("hello"),
  operator: z.string(),
  sites: SiteListSchema,
  types: z.array(z.enum(LIVE_EVENT_TYPES)),
});
