/** Small helpers every route module shares: problem answers, JSON bodies, opaque cursors. */
import { describeIssues, problemResponse } from "@paylane/protocol";
import type { z } from "zod";

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
  const parsed = schema.safeParse(json);
  return parsed.success ? parsed.data : badRequest(describeIssues(parsed.error, "body"));
}

/** An opaque keyset cursor: the sort key of the last item a page held. */
export const cursor = {
  encode: (...key: Array<string | number>) => Buffer.from(JSON.stringify(key)).toString("base64url"),
  decode(raw: string, shape: ReadonlyArray<"string" | "number">): Array<string | number> | null {
    try {
      const v: unknown = JSON.parse(Buffer.from(raw, "base64url").toString("utf8"));
      return Array.isArray(v) && v.length === shape.length && v.every((x, i) => typeof x === shape[i])
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
  shape: ReadonlyArray<"string" | "number">,
): Array<string | number> | null | Response {
  if (!before) return null;
  return cursor.decode(before, shape) ?? badRequest("before: not a cursor returned by this API");
}

/** `?since=V`, the `what` version a kiosk holds: undefined when absent, else an integer >= 0 or a 400. */
export function sinceParam(raw: string | undefined, what: string): number | undefined | Response {
  if (raw === undefined || raw === "") return undefined;
  const n = Number(raw);
  if (Number.isSafeInteger(n) && n >= 0) return n;
  return badRequest(`since: expected the ${what} version the kiosk holds (an integer >= 0)`);
}
