/**
 * The API's description and its reference page, both without auth (they
 * hold no data):
 *
 *   GET /api/v1/openapi.json        OpenAPI 3.1, generated from the routes' own zod schemas
 *   GET /api/v1/docs                Swagger UI, its files served from swagger-ui-dist here (no CDN)
 *   GET /api/v1/docs/{file}         swagger-ui.css, swagger-ui-bundle.js, init.js, favicon
 *
 * The page runs under a strict Content-Security-Policy: scripts and fetches
 * from this origin only, so even a URL inside the bundle cannot be reached.
 */
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { OpenAPIHono } from "@hono/zod-openapi";
import { z } from "zod";
import type { OperatorEnv } from "./auth.ts";
import { apiApp, defineRoute, openApiDocument, register } from "./openapi.ts";

export const DOCS_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  // Swagger UI sets style attributes on its elements.
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const DIST = dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));

/** The only files of swagger-ui-dist this serves, with their types. */
const FILES: Record<string, string> = {
  "swagger-ui.css": "text/css; charset=utf-8",
  "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
  "favicon-32x32.png": "image/png",
};

const PAGE = `<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <title>PayLane cloud API reference</title>
    <link rel="stylesheet" href="/api/v1/docs/swagger-ui.css">
    <link rel="icon" type="image/png" href="/api/v1/docs/favicon-32x32.png">
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="/api/v1/docs/swagger-ui-bundle.js"></script>
    <script src="/api/v1/docs/init.js"></script>
  </body>
</html>
`;

// No validator badge (it would call validator.swagger.io); the token typed in Authorize stays in the page.
const INIT = `window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/api/v1/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
`;

const headers = (type: string) => ({
  "content-type": type,
  "content-security-policy": DOCS_CSP,
  "x-content-type-options": "nosniff",
  "cache-control": "public, max-age=300",
});

/** `/api/v1/openapi.json` describing `api` (everything mounted on it by the time of the first request). */
export function referenceRoutes(api: OpenAPIHono<OperatorEnv>): OpenAPIHono<OperatorEnv> {
  const app = apiApp();
  let doc: string | undefined;

  const spec = defineRoute(null, {
    method: "get",
    path: "/api/v1/openapi.json",
    tags: ["reference"],
    summary: "This API's OpenAPI 3.1 description",
    responses: {
      200: {
        description: "The OpenAPI document",
        content: { "application/json": { schema: z.looseObject({ openapi: z.string(), paths: z.looseObject({}) }) } },
      },
    },
  });
  register(app, spec, (c) => {
    doc ??= JSON.stringify(openApiDocument(api));
    return c.body(doc, 200, { "content-type": "application/json" });
  });

  const page = defineRoute(null, {
    method: "get",
    path: "/api/v1/docs",
    tags: ["reference"],
    summary: "The API reference page (Swagger UI, served locally)",
    responses: { 200: { description: "HTML", content: { "text/html": { schema: z.string() } } } },
  });
  register(app, page, (c) => c.body(PAGE, 200, headers("text/html; charset=utf-8")));

  const asset = defineRoute(null, {
    method: "get",
    path: "/api/v1/docs/{file}",
    tags: ["reference"],
    summary: "The reference page's scripts and styles",
    request: {
      params: z.object({
        file: z
          .enum(["init.js", ...Object.keys(FILES)] as [string, ...string[]])
          .meta({ param: { name: "file", in: "path" } }),
      }),
    },
    responses: {
      200: {
        description: "The file",
        content: {
          "text/javascript": { schema: z.string() },
          "text/css": { schema: z.string() },
          "image/png": { schema: z.string().meta({ format: "binary" }) },
        },
      },
    },
  });
  register(app, asset, async (c) => {
    const { file } = c.req.valid("param");
    if (file === "init.js") return c.body(INIT, 200, headers("text/javascript; charset=utf-8"));
    const type = FILES[file] ?? "application/octet-stream";
    return c.body(new Uint8Array(await readFile(join(DIST, file))), 200, headers(type));
  });

  return app;
}
