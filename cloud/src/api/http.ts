/** Small helpers every route module shares: problem answers, JSON bodies, opaque cursors. */
import { describeIssues, problemResponse } from "@paylane/protocol";
import type { Context, MiddlewareHandler } from "hono";
import { z } from "zod";

export function badRequest(detail: string): Response {
  return problemResponse({ title: "Invalid request", status: 400, detail });
}

export function queryError(error: z.ZodError): Response {
  return badRequest(describeIssues(error));
}

export function notFound(detail: string): Response {
  return problemResponse({ title: "Not found", status: 404, detail });
}

/** The request body validated by `schema`, or a 400/415 problem naming what is wrong. */
export async function jsonBody<S extends z.ZodType>(req: Request, schema: S): Promise<z.infer<S> | Response> {
  if (!req.headers.get("content-type")?.includes("application/json")) {
    return problemResponse({
      title: "Unsupported media type",
      status: 415,
      detail: "expected an application/json body",
    });
  }
  let json: unknown;
  try {
    json = await req.json();
  } catch (err) {
    return badRequest(`body: malformed JSON: ${(err as Error).message}`);
  }
  const nul = nulPath(json, "body");
  if (nul) return badRequest(`${nul}: ${NUL_ADVICE}`);
  const parsed = schema.safeParse(json);
  return parsed.success ? parsed.data : badRequest(describeIssues(parsed.error, "body"));
}

/**
 * What a route declared with a JSON body checks before its schema does
 * (openapi.ts's jsonGuard): 415 unless JSON, 400 for malformed JSON or a NUL
 * character anywhere in it; null when the body may go on to validation.
 */
export async function checkJsonBody(c: Context): Promise<Response | null> {
  if (!c.req.header("content-type")?.includes("application/json")) {
    return problemResponse({
      title: "Unsupported media type",
      status: 415,
      detail: "expected an application/json body",
    });
  }
  let json: unknown;
  try {
    // Hono keeps the parsed body: the validator after this reads the same one.
    json = await c.req.json();
  } catch (err) {
    return badRequest(`body: malformed JSON: ${(err as Error).message}`);
  }
  const nul = nulPath(json, "body");
  return nul ? badRequest(`${nul}: ${NUL_ADVICE}`) : null;
}

const NUL_ADVICE = "contains a NUL character (\\u0000), which no text field accepts";

/** The path of the first string (value or key) in `v` holding a NUL character, or null. */
function nulPath(v: unknown, path: string): string | null {
  if (typeof v === "string") return v.includes("\0") ? path : null;
  if (Array.isArray(v)) {
    for (const [i, x] of v.entries()) {
      const found = nulPath(x, `${path}[${i}]`);
      if (found) return found;
    }
    return null;
  }
  if (v !== null && typeof v === "object") {
    for (const [k, x] of Object.entries(v)) {
      if (k.includes("\0")) return `${path} key ${JSON.stringify(k)}`;
      const found = nulPath(x, `${path}.${k}`);
      if (found) return found;
    }
  }
  return null;
}

/**
 * Refuses a NUL character anywhere in the path or the query string (Postgres
 * keeps none in text): a 400 naming the parameter, before any route runs.
 */
export function rejectNulCharacters(): MiddlewareHandler {
  return async function rejectNulCharacters(c, next) {
    const url = c.req.url;
    const q = url.indexOf("?");
    const path = q < 0 ? url : url.slice(0, q);
    if (/%00|\0/i.test(path)) return badRequest(`path: ${NUL_ADVICE}`);
    if (q >= 0 && /%00|\0/i.test(url.slice(q))) {
      for (const [name, values] of Object.entries(c.req.queries())) {
        if (name.includes("\0")) return badRequest(`query: a parameter name ${NUL_ADVICE}`);
        if (values.some((v) => v.includes("\0"))) return badRequest(`${name}: ${NUL_ADVICE}`);
      }
    }
    await next();
  };
}

/** The kinds of value a cursor position may hold, each checked as the query will cast it. */
export type CursorField = "timestamp" | "uuid" | "text" | "int";

const Timestamp = z.iso.datetime({ offset: true });
const Uuid = z.uuid();

function cursorFieldOk(v: unknown, kind: CursorField): boolean {
  switch (kind) {
    case "timestamp":
      return Timestamp.safeParse(v).success;
    case "uuid":
      return Uuid.safeParse(v).success;
    case "text":
      return typeof v === "string" && v.length <= 1024 && !v.includes("\0");
    case "int":
      return typeof v === "number" && Number.isSafeInteger(v);
  }
}

/** An opaque keyset cursor: the sort key of the last item a page held. */
export const cursor = {
  encode: (...key: Array<string | number>) => Buffer.from(JSON.stringify(key)).toString("base64url"),
  decode(raw: string, shape: ReadonlyArray<CursorField>): Array<string | number> | null {
    if (raw.length > 4096 || !/^[A-Za-z0-9_-]+={0,2}$/.test(raw)) return null;
    try {
      const v: unknown = JSON.parse(Buffer.from(raw, "base64url").toString("utf8"));
      return Array.isArray(v) && v.length === shape.length && v.every((x, i) => cursorFieldOk(x, shape[i]!))
        ? (v as Array<string | number>)
        : null;
    } catch {
      return null;
    }
  },
};

/** Where a page starts: null without `before`, else the key a cursor of this API holds, or a 400. */
export function pageAfter(
  before: string | undefined,
  shape: ReadonlyArray<CursorField>,
): Array<string | number> | null | Response {
  if (before === undefined || before === "") return null;
  return cursor.decode(before, shape) ?? badRequest("before: not a cursor returned by this API (use a page's next)");
}

/** `?since=V`, the `what` version a kiosk holds: undefined when absent, else an integer >= 0 or a 400. */
export function sinceParam(raw: string | undefined, what: string): number | undefined | Response {
  if (raw === undefined || raw === "") return undefined;
  const n = Number(raw);
  if (Number.isSafeInteger(n) && n >= 0) return n;
  return badRequest(`since: expected the ${what} version the kiosk holds (an integer >= 0)`);
}
