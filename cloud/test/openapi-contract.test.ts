/**
 * The API is what /api/v1/openapi.json says it is: the document is OpenAPI
 * 3.1 whose every $ref resolves, every /api/v1 route the app registers is in
 * it, and every documented operation, called against a seeded cloud (a site,
 * a kiosk, members, check-ins, a top-up, a payment) with a token that may,
 * answers a documented status with a body its JSON Schema (from the
 * document, checked by Ajv) accepts. Also: an ETag'd read answers 304, a
 * validation failure is problem+json naming the field, and the reference
 * page loads only this origin's files.
 */
import { randomUUID } from "node:crypto";
import { hashSecret, Registry } from "@paylane/protocol";
import { Ajv2020 } from "ajv/dist/2020.js";
import pino from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { createApi } from "../src/api/app.ts";
import { mintOperatorToken } from "../src/api/auth.ts";
import { Ingestor } from "../src/bridge/ingest.ts";
import type { Database } from "../src/db/database.ts";
import { migrate } from "../src/db/migrate.ts";
import { openPglite } from "../src/db/pglite.ts";
import { MemoryPresence } from "../src/presence/memory-presence.ts";
import { seedSite } from "../src/seed.ts";

const SECRET = "a-test-secret-of-at-least-32-characters!";
const DEVICE_SECRET = "device-secret-0123456789";
const NOW = new Date("2026-11-25T10:00:00Z");
const SITE = "s1";
const KIOSK = "k1";

type Doc = {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: Record<string, Record<string, unknown>>;
};
type Operation = {
  parameters?: Array<{ name: string; in: string; required?: boolean }>;
  requestBody?: unknown;
  responses: Record<string, { content?: Record<string, { schema: unknown }> }>;
  security?: Array<Record<string, string[]>>;
  "x-permission"?: string;
};

let db: Database;
let app: ReturnType<typeof createApi>;
let doc: Doc;
let admin: string;
let paymentId: string;
const kiosk = `Basic ${Buffer.from(`${SITE}/${KIOSK}:${DEVICE_SECRET}`).toString("base64")}`;

test.before(async () => {
  db = await openPglite();
  await migrate(db);
  await seedSite(db, { id: SITE, name: "Venue", timezone: "UTC" });
  await db.query("INSERT INTO devices (site_id, id) VALUES ($1, $2) ON CONFLICT DO NOTHING", [SITE, KIOSK]);
  const registry = new Registry({
    version: 1,
    devices: [{ site: SITE, device: KIOSK, secretHash: await hashSecret(DEVICE_SECRET) }],
    services: [],
  });
  app = createApi({
    db,
    presence: new MemoryPresence(),
    registry: () => registry,
    metrics: new MetricsRegistry(),
    health: async () => ({ status: "ok" }),
    now: () => NOW,
    jwtSecret: SECRET,
  });
  admin = `Bearer ${await mintOperatorToken(SECRET, { sub: "contract-admin", role: "admin" })}`;

  // Check-ins, as the bridge writes them.
  const ingestor = new Ingestor({
    db,
    now: () => NOW,
    logger: pino({ level: "silent" }),
    onCommitted: () => {},
    onFailed: () => {},
  });
  ingestor.add(
    [1, 2, 3].map((seq) => ({
      site: SITE,
      device: KIOSK,
      seq,
      entryId: randomUUID(),
      kind: "checkin",
      applied: {
        at: new Date(NOW.getTime() - seq * 60_000).toISOString(),
        body: JSON.stringify({
          memberId: "m-ada",
          credential: { type: "card", uid: "04A2B3C4" },
          replicaVersion: 1,
          offline: false,
        }),
      },
    })),
  );
  await ingestor.drain();
  await ingestor.stop();

  // A top-up by finance, then a purchase at the kiosk.
  const topup = await app.request(`/api/v1/wallets/${SITE}/m-ada/topups`, {
    method: "POST",
    headers: { authorization: admin, "content-type": "application/json", "idempotency-key": randomUUID() },
    body: JSON.stringify({ amount: 5000, currency: "EUR" }),
  });
  assert.is(topup.status, 201, await topup.clone().text());
  const pay = await app.request("/api/v1/payments", {
    method: "POST",
    headers: { authorization: kiosk, "content-type": "application/json" },
    body: JSON.stringify({ key: randomUUID(), memberId: "m-ada", amount: 250, currency: "EUR", at: NOW.toISOString() }),
  });
  const paid = (await pay.json()) as { status: string; paymentId: string };
  assert.is(paid.status, "approved", JSON.stringify(paid));
  paymentId = paid.paymentId;

  doc = (await (await app.request("/api/v1/openapi.json")).json()) as Doc;
});
test.after(async () => {
  await db.close();
});

/** Every `$ref` in `v`, with where it is. */
function refs(v: unknown, at = "#", out: Array<[string, string]> = []): Array<[string, string]> {
  if (Array.isArray(v)) {
    for (const [i, x] of v.entries()) refs(x, `${at}/${i}`, out);
  } else if (v && typeof v === "object") {
    for (const [k, x] of Object.entries(v)) {
      if (k === "$ref" && typeof x === "string") out.push([at, x]);
      else refs(x, `${at}/${k}`, out);
    }
  }
  return out;
}

function pointer(root: unknown, ref: string): unknown {
  if (!ref.startsWith("#/")) return undefined;
  return ref
    .slice(2)
    .split("/")
    .map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"))
    .reduce<unknown>(
      (node, key) => (node && typeof node === "object" ? (node as Record<string, unknown>)[key] : undefined),
      root,
    );
}

const METHODS = ["get", "post", "put", "patch", "delete"] as const;

test("the document is OpenAPI 3.1: every $ref resolves, every operation has responses, security and tags", () => {
  assert.is(doc.openapi, "3.1.0");
  const broken = refs(doc).filter(([, ref]) => pointer(doc, ref) === undefined);
  assert.equal(broken, [], `unresolved $refs: ${JSON.stringify(broken)}`);
  const schemes = Object.keys(doc.components.securitySchemes ?? {});
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const where = `${method.toUpperCase()} ${path}`;
      assert.ok(Object.keys(op.responses).length > 0, `${where}: no responses`);
      assert.ok(Array.isArray(op.security), `${where}: no security (an empty list says: none)`);
      for (const req of op.security ?? []) {
        for (const name of Object.keys(req)) assert.ok(schemes.includes(name), `${where}: unknown scheme ${name}`);
      }
      if ((op.security ?? []).some((s) => "bearerAuth" in s)) assert.ok(op["x-permission"], `${where}: x-permission`);
      for (const p of path.match(/\{(\w+)\}/g) ?? []) {
        const name = p.slice(1, -1);
        assert.ok(
          op.parameters?.some((q) => q.in === "path" && q.name === name && q.required),
          `${where}: path parameter ${name} undocumented`,
        );
      }
    }
  }
  // Every schema compiles (Ajv, JSON Schema 2020-12, which OpenAPI 3.1 uses).
  const ajv = new Ajv2020({ strict: false, validateFormats: false });
  ajv.addSchema(doc, "doc");
  for (const name of Object.keys(doc.components.schemas ?? {})) {
    assert.type(ajv.getSchema(`doc#/components/schemas/${name}`), "function", `schema ${name} compiles`);
  }
});

test("every /api/v1 route the app registers is documented", () => {
  const missing = new Set<string>();
  for (const r of app.routes) {
    if (r.method === "ALL" || !r.path.startsWith("/api/v1/")) continue;
    const path = r.path.replace(/:([A-Za-z]+)/g, "{$1}");
    if (!doc.paths[path]?.[r.method.toLowerCase()]) missing.add(`${r.method} ${path}`);
  }
  assert.equal([...missing], [], "routes missing from openapi.json");
});

/** A value for each path parameter, from the fixtures. */
const PATH_VALUES = (): Record<string, string> => ({
  site: SITE,
  device: KIOSK,
  member: "m-ada",
  id: paymentId,
  item: "coffee",
  key: "no-such-alert",
  file: "init.js",
  username: "nobody",
});

const QUERY_VALUES: Record<string, string> = { site: SITE, after: "0", upTo: "10" };

/** Bodies for the writes (anything else gets {}), and required query values. */
const BODIES: Record<string, unknown> = {
  "POST /api/v1/payments": {
    key: randomUUID(),
    memberId: "m-ada",
    amount: 100,
    currency: "EUR",
    at: NOW.toISOString(),
  },
  "POST /api/v1/payments/void": {
    key: randomUUID(),
    memberId: "m-ada",
    amount: 100,
    currency: "EUR",
    at: NOW.toISOString(),
  },
  "POST /api/v1/topups/intents": { key: randomUUID(), memberId: "m-ada", amount: 500, currency: "EUR" },
  "POST /api/v1/wallets/{site}/{member}/topups": { amount: 100, currency: "EUR" },
  "POST /api/v1/collisions/{id}/resolve": { kept: "held", note: "contract test" },
  "POST /api/v1/wallets/{site}/{member}/adjustments": { amount: -50, currency: "EUR", note: "contract test" },
  "POST /api/v1/payments/{id}/refunds": { amount: 50, reason: "contract test" },
  "PUT /api/v1/sites/{site}/items/{item}": { name: "Coffee", price: 250 },
  "POST /api/v1/users": {
    username: "contract-viewer",
    password: "a long enough password",
    role: "viewer",
    sites: null,
  },
  "PATCH /api/v1/users/{username}": { role: "finance" },
  "PUT /api/v1/sites/{site}/offline-limits": { perPayment: 1000, perCardDaily: 3000, kioskExposure: 20000 },
};
/** Operations that answer a documented problem with these fixtures (nothing of theirs exists here). */
const NOT_2XX = new Set([
  "POST /api/v1/alerts/{key}/resolve",
  "POST /api/v1/collisions/{id}/resolve",
  "GET /api/v1/devices/{site}/{device}/telemetry/latest",
  "POST /api/v1/enrol/rotate",
  "POST /api/v1/auth/login",
  "POST /api/v1/auth/refresh",
  "POST /api/v1/auth/logout",
  "PATCH /api/v1/users/{username}",
  "GET /api/v1/live",
]);

test("every documented operation answers a documented status with a body its schema accepts", async () => {
  const ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });
  ajv.addSchema(doc, "doc");
  const values = PATH_VALUES();
  const mounted = new Set(app.routes.map((r) => `${r.method} ${r.path.replace(/:([A-Za-z]+)/g, "{$1}")}`));
  const failures: string[] = [];
  let called = 0;
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const name = `${method.toUpperCase()} ${path}`;
      // Documented, but not part of this cloud's configuration (the live feed needs its sockets).
      if (!mounted.has(name)) continue;
      const url = new URL(
        path.replace(/\{(\w+)\}/g, (_, p: string) => encodeURIComponent(values[p] ?? p)),
        "http://x",
      );
      for (const p of op.parameters ?? []) {
        const value = QUERY_VALUES[p.name];
        if (p.in === "query" && (p.required || (value && p.name !== "site")))
          url.searchParams.set(p.name, value ?? "x");
      }
      const headers: Record<string, string> = {};
      const device = op.security?.some((s) => "basicAuth" in s);
      if (device) headers.authorization = kiosk;
      else if (op.security?.length) headers.authorization = admin;
      if (op.parameters?.some((p) => p.in === "header" && p.name === "idempotency-key")) {
        headers["idempotency-key"] = randomUUID();
      }
      let body: string | undefined;
      if (op.requestBody) {
        headers["content-type"] = "application/json";
        body = JSON.stringify(BODIES[name] ?? {});
      }
      const res = await app.request(url.pathname + url.search, { method: method.toUpperCase(), headers, body });
      called++;
      const documented = op.responses[String(res.status)];
      const text = await res.text();
      if (!documented) {
        failures.push(`${name}: ${res.status} is not documented (${text.slice(0, 200)})`);
        continue;
      }
      // A documented problem is not enough: with these fixtures every other operation, a write too, succeeds.
      if (!NOT_2XX.has(name) && (res.status < 200 || res.status >= 300)) {
        failures.push(`${name}: answered ${res.status} with the fixtures (${text.slice(0, 200)})`);
      }
      const type = (res.headers.get("content-type") ?? "").split(";")[0]!.trim();
      const media = documented.content?.[type];
      if (!documented.content) continue;
      if (!media) {
        failures.push(`${name}: ${res.status} answered ${type}, documented ${Object.keys(documented.content)}`);
        continue;
      }
      if (!type.includes("json")) continue;
      const pointerTo = `doc#/paths/${path.replace(/~/g, "~0").replace(/\//g, "~1")}/${method}/responses/${res.status}/content/${type.replace(/\//g, "~1")}/schema`;
      const validate = ajv.getSchema(pointerTo);
      if (!validate) {
        failures.push(`${name}: no schema at ${pointerTo}`);
        continue;
      }
      if (!validate(JSON.parse(text))) {
        failures.push(`${name} ${res.status}: ${ajv.errorsText(validate.errors)} in ${text.slice(0, 300)}`);
      }
    }
  }
  assert.ok(called >= 40, `only ${called} operations called`);
  assert.equal(failures, [], failures.join("\n"));
});

test("a read carries a strong ETag; the same read with If-None-Match answers 304 with no body", async () => {
  const first = await app.request(`/api/v1/checkins?site=${SITE}`, { headers: { authorization: admin } });
  assert.is(first.status, 200);
  const etag = first.headers.get("etag");
  assert.ok(etag && /^"[^"]+"$/.test(etag), `strong ETag, got ${etag}`);
  assert.match(first.headers.get("cache-control") ?? "", /private/);
  const again = await app.request(`/api/v1/checkins?site=${SITE}`, {
    headers: { authorization: admin, "if-none-match": etag },
  });
  assert.is(again.status, 304);
  assert.is(await again.text(), "");
  assert.is(again.headers.get("etag"), etag);
  // Another token's answer differs, or the data changed: a full answer again.
  const other = await app.request(`/api/v1/checkins?site=${SITE}&limit=1`, {
    headers: { authorization: admin, "if-none-match": etag },
  });
  assert.is(other.status, 200);
  // No one learns anything from an ETag without credentials.
  const anonymous = await app.request(`/api/v1/checkins?site=${SITE}`, { headers: { "if-none-match": etag } });
  assert.is(anonymous.status, 401);
});

test("a request the schema refuses is a problem+json 400 naming the field (query, path, header and body)", async () => {
  const query = await app.request(`/api/v1/checkins?limit=0`, { headers: { authorization: admin } });
  assert.is(query.status, 400);
  assert.is(query.headers.get("content-type"), "application/problem+json");
  assert.match(((await query.json()) as { detail: string }).detail, /^limit: /);

  const path = await app.request("/api/v1/payments/not-a-uuid", { headers: { authorization: admin } });
  assert.is(((await path.json()) as { detail: string }).detail, "id: expected a payment id (UUID)");

  const header = await app.request(`/api/v1/wallets/${SITE}/m-ada/topups`, {
    method: "POST",
    headers: { authorization: admin, "content-type": "application/json" },
    body: JSON.stringify({ amount: 100, currency: "EUR" }),
  });
  assert.is(header.status, 400);
  assert.match(((await header.json()) as { detail: string }).detail, /^Idempotency-Key: header required/);

  const body = await app.request("/api/v1/collisions/00000000-0000-4000-8000-000000000000/resolve", {
    method: "POST",
    headers: { authorization: admin, "content-type": "application/json" },
    body: JSON.stringify({ kept: "mine", note: "x" }),
  });
  assert.is(body.status, 400);
  assert.match(((await body.json()) as { detail: string }).detail, /^body\.kept: /);

  // An anonymous caller is refused before anything about the request is checked.
  const anonymous = await app.request(`/api/v1/checkins?limit=0`);
  assert.is(anonymous.status, 401);
});

test("the reference page and its scripts come from this origin only, under a strict CSP", async () => {
  const page = await app.request("/api/v1/docs");
  assert.is(page.status, 200);
  const csp = page.headers.get("content-security-policy") ?? "";
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self'(;|$)/);
  assert.match(csp, /connect-src 'self'/);
  const html = await page.text();
  const urls = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
  assert.ok(urls.length >= 3, html);
  for (const u of urls) {
    assert.ok(u.startsWith("/api/v1/docs/"), `${u} is not a local path`);
    const res = await app.request(u);
    assert.is(res.status, 200, u);
  }
  const init = await (await app.request("/api/v1/docs/init.js")).text();
  assert.match(init, /url: "\/api\/v1\/openapi\.json"/);
  assert.match(init, /validatorUrl: null/);
  assert.not.match(init, /https?:\/\//);
  assert.not.match(html, /https?:\/\//);
});

test.run();
