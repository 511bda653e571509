/**
 * ETags on reads: a GET answered 200 with JSON carries a strong ETag (a
 * hash of its bytes); the same GET with `If-None-Match` naming it answers
 * 304 with no body. A dashboard polling the fleet then moves headers, not
 * pages. The answers are per caller, so shared caches are told to keep none
 * (`Cache-Control: private, no-cache`: revalidate every time).
 */
import { createHash } from "node:crypto";
import type { MiddlewareHandler } from "hono";

/** Whether `header` (If-None-Match) names `etag`; weak comparison, as RFC 9110 asks for this header. */
export function etagMatches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  if (header.trim() === "*") return true;
  const bare = etag.replace(/^W\//, "");
  return header.split(",").some((t) => t.trim().replace(/^W\//, "") === bare);
}

export function etagOnReads(): MiddlewareHandler {
  return async function etagOnReads(c, next) {
    await next();
    if (c.req.method !== "GET" && c.req.method !== "HEAD") return;
    const res = c.res;
    if (res.status !== 200 || !res.body) return;
    if (!/^application\/(?:[\w.+-]*\+)?json\b/.test(res.headers.get("content-type") ?? "")) return;
    // JSON answers are small and whole: read, then answered again from a copy whose headers are ours to set.
    const bytes = new Uint8Array(await res.arrayBuffer());
    const out = new Response(bytes, res);
    let etag = out.headers.get("etag");
    if (!etag) {
      etag = `"${createHash("sha256").update(bytes).digest("base64url").slice(0, 27)}"`;
      out.headers.set("etag", etag);
    }
    if (!out.headers.has("cache-control")) out.headers.set("cache-control", "private, no-cache");
    out.headers.append("vary", "Authorization, Cookie");
    let answer = out;
    if (etagMatches(c.req.header("if-none-match"), etag)) {
      const headers = new Headers();
      for (const name of ["etag", "cache-control", "vary", "content-location", "date", "expires"]) {
        const v = out.headers.get(name);
        if (v) headers.set(name, v);
      }
      answer = new Response(null, { status: 304, headers });
    }
    // Unset first: Hono merges the previous answer's headers into a new one otherwise.
    c.res = undefined;
    c.res = answer;
  };
}
