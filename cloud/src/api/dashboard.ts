/**
 * The ops dashboard (ui/src/dashboard, built into ui/dist/dashboard by
 * `npm run build`), served as static files:
 *
 *   GET /                 302 to /dashboard/
 *   GET /dashboard        302 to /dashboard/
 *   GET /dashboard/       index.html
 *   GET /dashboard/{file} app.js, app.css and their source maps
 *
 * The page is public (it holds no data; every call it makes is authenticated)
 * and runs under a strict CSP: its own scripts, styles and connections only
 * (the live feed is a same-origin WebSocket), nothing inline, never framed.
 */
import { readFile } from "node:fs/promises";
import { extname, join } from "node:path";
import { problemResponse } from "@paylane/protocol";
import { dashboardDist } from "@paylane/ui/dist";
import { type Context, Hono } from "hono";

/** `connect-src 'self'` covers the same-origin ws:/wss: too (CSP Level 3, what Chromium and Firefox do). */
export const DASHBOARD_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".png": "image/png",
  ".svg": "image/svg+xml",
};

/** Plain file names only: no folder, no dot-file, so nothing outside the dist is reachable. */
const FILE_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;

export interface DashboardRoutesOptions {
  /** Where the built dashboard is (default: ui/dist/dashboard). */
  dist?: string;
}

export function dashboardRoutes(o: DashboardRoutesOptions = {}): Hono {
  const dist = o.dist ?? dashboardDist;
  const app = new Hono();

  const serve = async (c: Context, name: string) => {
    const type = TYPES[extname(name)];
    if (!FILE_NAME.test(name) || !type) {
      return problemResponse({ title: "Not found", status: 404, detail: `the dashboard has no file ${name}` });
    }
    let body: Buffer;
    try {
      body = await readFile(join(dist, name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      if (name === "index.html") {
        return problemResponse({
          title: "Dashboard not built",
          status: 404,
          detail: "the dashboard is not built on this machine: run npm run build (it builds ui/dist/dashboard)",
        });
      }
      return problemResponse({ title: "Not found", status: 404, detail: `the dashboard has no file ${name}` });
    }
    return c.body(new Uint8Array(body), 200, {
      "content-type": type,
      // Not hashed names: revalidate each time, so a new build is never mixed with an old one.
      "cache-control": "no-cache",
      "content-security-policy": DASHBOARD_CSP,
      "x-content-type-options": "nosniff",
      "x-frame-options": "DENY",
      "referrer-policy": "no-referrer",
    });
  };

  app.get("/", (c) => c.redirect("/dashboard/", 302));
  app.get("/dashboard", (c) => c.redirect("/dashboard/", 302));
  app.get("/dashboard/", (c) => serve(c, "index.html"));
  app.get("/dashboard/:file", (c) => serve(c, c.req.param("file")));
  return app;
}
