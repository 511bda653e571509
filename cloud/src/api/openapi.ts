/**
 * The REST API's one description: every route is declared with
 * `@hono/zod-openapi`'s createRoute, so the zod schema that validates a
 * request is the one `/api/v1/openapi.json` (OpenAPI 3.1) documents. This
 * module holds what the route modules share: the app factory whose
 * validation failures answer this API's problem+json 400 naming the field,
 * the problem and page schemas, the security schemes, and `secured()`, which
 * puts a permission check on a route and documents it (security, `x-permission`).
 */
import { readFileSync } from "node:fs";
import type { RouteConfig } from "@hono/zod-openapi";
import { OpenAPIHono } from "@hono/zod-openapi";
import { describeIssues, type Permission, problemResponse, type Registry, rolesWith } from "@paylane/protocol";
import type { Context, Env, MiddlewareHandler } from "hono";
import { z } from "zod";
import { noteAuthFailure } from "../metrics/http-metrics.ts";
import { anyDevice, deviceOnly, type OperatorEnv, type OperatorTokenConfig, operatorAuth } from "./auth.ts";
import { badRequest, checkJsonBody } from "./http.ts";

const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };

/** The device a route's HTTP Basic credentials stand for (set by `deviceRoute`). */
export type DeviceEnv = { Variables: { device: { site: string; device: string } } };
export type ApiEnv = OperatorEnv & DeviceEnv;

// ---- shared schemas ------------------------------------------------------

export const ProblemSchema = z
  .object({
    type: z.string().meta({ example: "about:blank" }),
    title: z.string().meta({ example: "Invalid request" }),
    status: z.number().int(),
    detail: z.string().optional().meta({ description: "what is wrong and how to fix it" }),
  })
  .catchall(z.unknown())
  .meta({ id: "Problem", description: "RFC 9457 problem details (application/problem+json)" });

/**
 * `x` or null. Not `x.nullable()`: for a schema with an id the generator
 * would make the shared component itself nullable.
 */
export const orNull = <T extends z.ZodType>(x: T) => z.union([x, z.null()]);

/** `{ items, next }`: `next` is the cursor to send as `before` for the following page, null on the last one. */
export function pageOf<T extends z.ZodType>(item: T, name: string) {
  return z
    .object({
      items: z.array(item),
      next: z
        .string()
        .nullable()
        .meta({ description: "send as `before` for the next page; null: this was the last page" }),
    })
    .meta({ id: `${name}Page`, description: `A page of ${name} items, newest first (cursor pagination)` });
}

/** The answer of a list short enough to come whole: `{ items }`. */
export function listOf<T extends z.ZodType>(item: T, name: string) {
  return z.object({ items: z.array(item) }).meta({ id: `${name}List` });
}

/** The cursor convention every paged list shares. */
export const PageParams = {
  limit: (max = 500, dflt = 50) =>
    z.coerce
      .number()
      .int()
      .min(1)
      .max(max)
      .default(dflt)
      .meta({ description: `items per page (1-${max}, default ${dflt})` }),
  before: () =>
    z
      .string()
      .optional()
      .meta({ description: "the `next` of the previous page (an opaque cursor); absent: the first page" }),
};

/** `?site=`: one site; may be left out by a token for all sites or for a single one. */
export const SiteFilter = z
  .string()
  .max(64)
  .optional()
  .meta({ description: "only this site; required when the token is scoped to several sites" });

export const IsoTime = z.iso
  .datetime({ offset: true, error: "expected an ISO 8601 time with an offset, e.g. 2026-12-04T10:00:00Z" })
  .meta({ example: "2026-12-04T10:00:00Z" });

/** `?since=V`: the `what` version a kiosk holds (absent or empty: a full snapshot); the handler reads it with sinceParam. */
export const sinceQuery = (what: string) =>
  z.object({
    since: z
      .string()
      .regex(/^(?:[0-9]{1,16})?$/, `expected the ${what} version the kiosk holds (an integer >= 0)`)
      .optional()
      .meta({ description: `the ${what} version the kiosk holds; absent: a full snapshot` }),
  });

/** `{site}/{device}` path parameters. */
export const DevicePath = z.object({
  site: z.string().meta({ param: { name: "site", in: "path" }, example: "demo" }),
  device: z.string().meta({ param: { name: "device", in: "path" }, example: "kiosk-1" }),
});
export const SitePath = z.object({ site: z.string().meta({ param: { name: "site", in: "path" }, example: "demo" }) });

/** The `:name` Hono template as OpenAPI's `{name}`. */
export const openApiPath = (honoPath: string) => honoPath.replace(/:([A-Za-z]+)/g, "{$1}");

// ---- responses ------------------------------------------------------------

const problem = (description: string) => ({
  description,
  content: { "application/problem+json": { schema: ProblemSchema } },
});
export const problems = {
  400: problem("Invalid request: the detail names the field and what it expects"),
  401: problem("No credentials, or credentials refused"),
  403: problem("The credentials may not do this (permission or site)"),
  404: problem("Not found"),
  409: problem("Conflicts with the current state"),
  413: problem("Request body larger than 1 MiB"),
  415: problem("The body is not application/json"),
  422: problem("Idempotency key reused with other parameters"),
  429: problem("Rate limited (Retry-After says when to come back)"),
  503: problem("A service this needs is unavailable (the detail says which); try again"),
} as const;

export const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

/** A JSON request body, required; validated before the handler runs. */
export const jsonRequest = <T extends z.ZodType>(schema: T, description?: string) => ({
  required: true,
  ...(description ? { description } : {}),
  content: { "application/json": { schema } },
});

// ---- security -------------------------------------------------------------

/**
 * A route an operator may call when the token's role holds `permission`:
 * the check runs before any validation (an anonymous caller learns nothing
 * about the request's shape), and the document says which permission it is.
 */
export function secured(
  tokens: OperatorTokenConfig,
  permission: Permission,
  method: "get" | "post" | "put" | "delete",
): Auth {
  const roles = rolesWith(permission).join(", ");
  return {
    middleware: [operatorAuth(tokens, permission)] as MiddlewareHandler[],
    // The dashboard's session cookie is read on GETs (a cookie alone never changes anything).
    security: method === "get" ? [{ bearerAuth: [] }, { cookieAuth: [] }] : [{ bearerAuth: [] }],
    "x-permission": permission,
    permissionNote: `Needs \`${permission}\` (roles: ${roles}).`,
  };
}

/** The kiosk a deviceRoute's credentials stand for. */
export function callerDevice(c: Context): { site: string; device: string } {
  return (c as unknown as Context<DeviceEnv>).var.device;
}

/** A route a kiosk calls with its own credentials: of the path's site (and device), or any device. */
export function deviceRoute(registry: () => Registry, scope: "any" | "site" | "device"): Auth {
  const check: MiddlewareHandler<DeviceEnv> = async (c, next) => {
    const header = c.req.header("authorization");
    // anyDevice and deviceOnly answer 401 only for missing or refused credentials (403: another device's)
    const refused = (res: Response) => {
      if (res.status === 401) noteAuthFailure(c, "bad-device-credentials");
      return res;
    };
    if (scope === "any") {
      const caller = await anyDevice(header, registry());
      if (caller instanceof Response) return refused(caller);
      c.set("device", caller);
    } else {
      const site = c.req.param("site") ?? "";
      const device = scope === "device" ? (c.req.param("device") ?? "") : undefined;
      const caller = await deviceOnly(header, registry(), site, device);
      if (caller instanceof Response) return refused(caller);
      c.set("device", { site, device: caller.device });
    }
    await next();
  };
  return {
    middleware: [check] as MiddlewareHandler[],
    security: [{ basicAuth: [] }],
    "x-permission": "device",
    permissionNote: "Device credentials (HTTP Basic `{site}/{device}:secret`).",
  };
}

/** Before a JSON body is validated: 415 unless it is JSON, 400 for malformed JSON or a NUL character. */
export const jsonGuard: MiddlewareHandler = async (c, next) => {
  const refused = await checkJsonBody(c);
  if (refused) return refused;
  await next();
};

/** Who may call a route: its checks (run before any validation) and how the document says so. */
export interface Auth {
  middleware: MiddlewareHandler[];
  security: Array<Record<string, string[]>>;
  "x-permission": string;
  permissionNote: string;
}

/**
 * A route definition: `auth` (secured/deviceRoute, or null for none) adds its
 * middleware, security, permission and the 401/403 problems; a JSON body adds
 * the body guard and the 400/415 problems; every route documents 400, 413, 429
 * and 503 (the rate limit, body limit and disabled operator API apply to all).
 */
export function defineRoute<const R extends Omit<RouteConfig, "middleware" | "security">>(
  auth: Auth | null,
  route: R,
): R & { middleware: MiddlewareHandler[] } {
  const hasBody = Boolean(route.request?.body);
  const responses: RouteConfig["responses"] = { ...route.responses };
  const add = (code: number, r: (typeof problems)[keyof typeof problems]) => {
    responses[code] ??= r;
  };
  add(400, problems[400]);
  if (auth) {
    add(401, problems[401]);
    add(403, problems[403]);
  }
  if (hasBody) {
    add(413, problems[413]);
    add(415, problems[415]);
  }
  add(429, problems[429]);
  if (auth && "x-permission" in auth && auth["x-permission"] !== "device") add(503, problems[503]);
  const middleware = [...(auth?.middleware ?? []), ...(hasBody ? [jsonGuard] : [])];
  const note = auth?.permissionNote ?? "No credentials.";
  const tag = route.tags ?? [];
  return {
    ...route,
    tags: tag,
    description: [route.description, note].filter(Boolean).join("\n\n"),
    ...(auth ? { security: auth.security, "x-permission": auth["x-permission"] } : { security: [] }),
    responses,
    middleware,
  } as R & { middleware: MiddlewareHandler[] };
}

// ---- handlers -------------------------------------------------------------

type Schema<T> = T extends z.ZodType ? z.output<T> : never;
type Req<R extends RouteConfig> = NonNullable<R["request"]>;
type JsonOf<R extends RouteConfig> =
  Req<R> extends {
    body?: { content: { "application/json": { schema: infer S } } };
  }
    ? Schema<S>
    : never;
type ValidOf<R extends RouteConfig> = {
  query: Req<R> extends { query?: infer Q } ? Schema<Q> : never;
  param: Req<R> extends { params?: infer P } ? Schema<P> : never;
  header: Req<R> extends { headers?: infer H } ? Schema<H> : never;
  json: JsonOf<R>;
};

/** What a handler of route R sees: the operator or device, and the validated request (`c.req.valid`). */
export type RouteContext<R extends RouteConfig, E extends Env = OperatorEnv> = Context<
  E,
  string,
  { out: ValidOf<R>; in: ValidOf<R> }
>;

/**
 * Registers `route` on `app` with `handler`. Handlers answer plain Responses
 * (problem answers included): the contract test checks every documented
 * answer against its schema, which typing c.json against it cannot do for
 * the problems.
 */
export function register<R extends RouteConfig, E extends Env = OperatorEnv>(
  app: OpenAPIHono<E>,
  route: R,
  handler: (c: RouteContext<R, E>) => Response | Promise<Response>,
  /** Instead of the app's validation answer (e.g. to count a refusal first). */
  hook?: (result: { success: boolean; target: string; error?: z.ZodError }, c: Context) => unknown,
): void {
  // biome-ignore lint/suspicious/noExplicitAny: the handler's context is typed above; zod-openapi's own inference wants typed answers only.
  app.openapi(route as any, handler as any, hook as any);
}

/** Validation failures as this API's problem+json 400, naming the field (`body.` for the JSON body). */
export function validationProblem(
  result: { success: boolean; target: string; error?: z.ZodError },
  _c: Context,
): Response | undefined {
  if (result.success || !result.error) return undefined;
  if (result.target === "json") return badRequest(describeIssues(result.error, "body"));
  if (result.target === "header") {
    // HTTP names as people write them (Idempotency-Key), not as Hono lower-cases them.
    const titled = result.error.issues.map((i) => {
      const [head, ...rest] = i.path;
      const name = String(head ?? "").replace(/(^|-)([a-z])/g, (_, d: string, ch: string) => d + ch.toUpperCase());
      return rest.length ? `${name}.${rest.join(".")}: ${i.message}` : `${name}: ${i.message}`;
    });
    return badRequest(titled.join("; "));
  }
  return badRequest(describeIssues(result.error));
}

/** A route module's app: its validation failures are problem+json. */
export function apiApp<E extends Env = OperatorEnv>(): OpenAPIHono<E> {
  return new OpenAPIHono<E>({ defaultHook: validationProblem as never });
}

// ---- the document ---------------------------------------------------------

export const API_TAGS = [
  { name: "check-ins", description: "Members' check-ins as kiosks journaled them" },
  { name: "devices", description: "The fleet: presence, enrolment, revoke and rotate" },
  { name: "commands", description: "Commands to a kiosk and their audit" },
  { name: "config", description: "Desired and reported configuration, drift" },
  { name: "telemetry", description: "Kiosks' telemetry history and latest report" },
  { name: "alerts", description: "Alerts kiosks raised and alerts the cloud fires" },
  { name: "conflicts", description: "Conflicts found across kiosks, seq collisions" },
  { name: "enrolment", description: "Claim codes, enrolment and its audit" },
  { name: "money", description: "Wallets, ledger, payments, refunds, exposure, price lists (operators)" },
  { name: "kiosk", description: "What kiosks call with their own credentials" },
];

/** Registers the security schemes the routes name. */
export function registerSecuritySchemes(app: OpenAPIHono<never> | OpenAPIHono<ApiEnv> | OpenAPIHono<OperatorEnv>) {
  const reg = app.openAPIRegistry;
  reg.registerComponent("securitySchemes", "bearerAuth", {
    type: "http",
    scheme: "bearer",
    bearerFormat: "JWT",
    description: "An operator access token (POST /api/v1/auth/login, or `paylane-cloud token`)",
  });
  reg.registerComponent("securitySchemes", "cookieAuth", {
    type: "apiKey",
    in: "cookie",
    name: "paylane_session",
    description: "The dashboard's session cookie (reads only)",
  });
  reg.registerComponent("securitySchemes", "basicAuth", {
    type: "http",
    scheme: "basic",
    description: "A kiosk's registry credentials: `{site}/{device}` and its secret",
  });
}

/** The OpenAPI 3.1 document of every route registered on `app`. */
export function openApiDocument(app: OpenAPIHono<ApiEnv> | OpenAPIHono<OperatorEnv>) {
  return app.getOpenAPI31Document({
    openapi: "3.1.0",
    info: {
      title: "PayLane cloud API",
      version: pkg.version,
      description:
        "The cloud's REST API. Errors are application/problem+json naming what is wrong. Lists are paged " +
        "with `limit` and `before` (the previous page's `next`) and answer `{ items, next }`. GET answers carry " +
        "a strong ETag: send it back as If-None-Match for a 304. See docs/api.md.",
    },
    servers: [{ url: "/", description: "this cloud" }],
    tags: API_TAGS,
  });
}

/** The document as a response (no auth: it describes, it holds no data). */
export function serveOpenApi(app: OpenAPIHono<ApiEnv> | OpenAPIHono<OperatorEnv>): MiddlewareHandler {
  let cached: string | undefined;
  return async (c) => {
    cached ??= JSON.stringify(openApiDocument(app));
    return c.body(cached, 200, { "content-type": "application/json" });
  };
}

export { problemResponse };
