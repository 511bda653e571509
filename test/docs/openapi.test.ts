/**
 * The HTTP reference is what the cloud serves (issue 19): the committed
 * docs/reference/openapi.json, dumped by `npm run docs:reference` without a
 * server, equals the document a started cloud (PGlite, aedes, every route
 * group) answers at /api/v1/openapi.json; it validates as OpenAPI 3.1 with
 * @apidevtools/swagger-parser (which does refuse a broken one); and the
 * rendered http-api.md names every operation.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import SwaggerParser from "@apidevtools/swagger-parser";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { buildOpenApi } from "../../scripts/docs/openapi.ts";
import { REFERENCE_DIR, ROOT } from "../../scripts/docs/reference.ts";
import { operationAnchor } from "../../scripts/docs/render-http.ts";
import { TestSite } from "../support/site.ts";

type Json = Record<string, unknown>;

let site: TestSite;
let served: Json;
let committed: Json;

test.before(async () => {
  committed = JSON.parse(await readFile(join(ROOT, REFERENCE_DIR, "openapi.json"), "utf8")) as Json;
  site = new TestSite({ db: "pglite", presence: "memory", broker: "aedes", kiosks: [], probes: [] });
  await site.start();
  const res = await fetch(`${site.cloud?.url}/api/v1/openapi.json`);
  assert.is(res.status, 200);
  served = (await res.json()) as Json;
});

test.after(async () => {
  await site?.stop();
});

/** Where two JSON values first differ, as a path. */
function firstDifference(a: unknown, b: unknown, at = "$"): string | undefined {
  if (JSON.stringify(a) === JSON.stringify(b)) return undefined;
  if (a && b && typeof a === "object" && typeof b === "object" && !Array.isArray(a) && !Array.isArray(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
    for (const k of keys) {
      const d = firstDifference((a as Json)[k], (b as Json)[k], `${at}.${k}`);
      if (d) return d;
    }
  }
  return at;
}

test("the committed openapi.json equals what a started cloud serves at /api/v1/openapi.json", () => {
  const where = firstDifference(committed, served);
  assert.is(
    where,
    undefined,
    `docs/reference/openapi.json differs from the served document at ${where}: run npm run docs:reference`,
  );
  assert.ok(Object.keys(served.paths as Json).length >= 40, "the served document has too few paths");
});

test("the dump without a server (stand-in services) is the served document", async () => {
  const dumped = await buildOpenApi();
  assert.is(firstDifference(dumped, served), undefined);
});

test("the document validates as OpenAPI 3.1 (swagger-parser)", async () => {
  const api = (await SwaggerParser.validate(structuredClone(committed) as never)) as Json;
  assert.is(api.openapi, "3.1.0");
});

test("control: swagger-parser refuses a broken $ref and a missing required field", async () => {
  const brokenRef = structuredClone(committed);
  const paths = brokenRef.paths as Record<string, Record<string, Json>>;
  const [path, item] = Object.entries(paths).find(([, i]) => i.get?.responses) as [string, Record<string, Json>];
  const responses = (item.get as Json).responses as Record<string, Json>;
  responses["200"] = {
    description: "x",
    content: { "application/json": { schema: { $ref: "#/components/schemas/NoSuchSchema" } } },
  };
  const refError = await SwaggerParser.validate(brokenRef as never).then(
    () => "accepted",
    (err: Error) => err.message,
  );
  assert.match(refError, /NoSuchSchema/, `the broken $ref under ${path} was not named: ${refError}`);

  const noInfo = structuredClone(committed);
  delete noInfo.info;
  const infoError = await SwaggerParser.validate(noInfo as never).then(
    () => "accepted",
    (err: Error) => err.message,
  );
  assert.match(infoError, /info/, `a document without info was not refused for it: ${infoError}`);
});

test("http-api.md names every operation with its anchor", async () => {
  const page = await readFile(join(ROOT, REFERENCE_DIR, "http-api.md"), "utf8");
  for (const [path, item] of Object.entries(committed.paths as Record<string, Json>)) {
    for (const method of Object.keys(item).filter((m) => ["get", "put", "post", "patch", "delete"].includes(m))) {
      assert.ok(page.includes(`<a id="${operationAnchor(method, path)}"></a>`), `${method} ${path} has no section`);
      assert.ok(page.includes(`### ${method.toUpperCase()} \`${path}\``), `${method} ${path} has no heading`);
    }
  }
});

test.run();
