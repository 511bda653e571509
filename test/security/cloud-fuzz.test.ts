/**
 * Issue 12, the cloud API: "NUL bytes or a hand-made cursor give a 500 with
 * the raw Postgres error." fast-check throws REST bodies, query strings,
 * path segments and cursors at every route, with valid credentials so the
 * input reaches the code behind authentication: NUL characters, lone
 * surrogates and other unicode, huge and non-integer numbers, numbers as
 * strings and strings as numbers, wrong JSON types, calendar-impossible
 * times, hand-made cursors. Every answer is below 500; every error is
 * problem+json; no answer carries Postgres' wording; a 400 names the field
 * (the database never has to refuse a value for the API).
 *
 *   FUZZ_SEED=n FUZZ_RUNS=n   replay a failure (the seed is printed) or search harder
 */
import { randomUUID } from "node:crypto";
import fc from "fast-check";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { ApiHarness } from "../support/cloud-api.ts";
import { loud } from "../support/hooks.ts";

const RUNS = Number(process.env.FUZZ_RUNS ?? 120);
const SEED = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);

const it = suite("cloud: fuzzed requests");
// limits far above what the fuzz sends: this file is about input, cloud-limits.test.ts about floods
const api = new ApiHarness({
  db: "pg",
  rateLimit: { perCredential: 10_000_000, perAddress: 10_000_000, authFailures: 10_000_000 },
});
let admin = "";
let payment = "";
it.before(
  loud("starting the API", async () => {
    await api.start();
    admin = `Bearer ${await api.token("admin")}`;
    // one real payment, so payment routes and cursors have something behind them
    const res = await api.request("/api/v1/payments", {
      method: "POST",
      headers: { authorization: api.device(), "content-type": "application/json" },
      body: JSON.stringify({
        key: randomUUID(),
        memberId: "m-ada",
        amount: 250,
        currency: "EUR",
        itemId: "coffee",
        at: new Date().toISOString(),
      }),
    });
    const body = (await res.json()) as { paymentId?: string; id?: string; entryId?: string };
    payment = body.paymentId ?? body.entryId ?? body.id ?? randomUUID();
  }),
);
it.after(loud("stopping the API", () => api.close()));

// ---- what an attacker sends ---------------------------------------------------

const NASTY = [
  "\u0000",
  "a\u0000b",
  "m-ada\u0000",
  "",
  " ",
  "-1",
  "0",
  "1e400",
  "-1e400",
  "9".repeat(400),
  "1.5",
  "NaN",
  "Infinity",
  "0x10",
  "true",
  "null",
  "[]",
  "{}",
  "%00",
  "%",
  "'; DROP TABLE wallets; --",
  "2026-02-30T00:00:00Z",
  "2026-13-01T00:00:00Z",
  "0000-01-01T00:00:00Z",
  "9999-12-31T23:59:59-14:00",
  "275760-09-13T00:00:00Z",
  "2026-12-04T10:00:00Z",
  "00000000-0000-0000-0000-000000000000",
  "ffffffff-ffff-ffff-ffff-ffffffffffff",
  "\uD800",
  "\uDFFF\uD800",
  "\uFEFF",
  "😀".repeat(50),
  "a".repeat(5000),
  "EUR",
  "coffee",
];

const text = fc.oneof(
  fc.constantFrom(...NASTY),
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.string({ unit: "grapheme", maxLength: 20 }),
  fc.string({ maxLength: 20 }).map((s) => `${s}\u0000${s}`),
  fc.integer().map(String),
  fc.double().map(String),
  fc.bigInt().map(String),
);

const anyValue: fc.Arbitrary<unknown> = fc.oneof(
  text,
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(1e308, -1e308, 2 ** 53 + 1, -(2 ** 63), 2 ** 63, 0.1, -0, 10_000_000_001),
  fc.boolean(),
  fc.constant(null),
  fc.array(text, { maxLength: 3 }),
  fc.dictionary(text, text, { maxKeys: 3 }),
);

/** Percent-encodes every UTF-8 byte that is not unreserved (lone surrogates become U+FFFD, as a client's would). */
function encode(s: string): string {
  let out = "";
  for (const byte of Buffer.from(s, "utf8")) {
    const ch = String.fromCharCode(byte);
    out += /[A-Za-z0-9_.~-]/.test(ch) ? ch : `%${byte.toString(16).padStart(2, "0").toUpperCase()}`;
  }
  return out;
}

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v) ?? "null").toString("base64url");
const cursorValue = fc.oneof(
  text,
  fc.tuple(anyValue).map(b64),
  fc.tuple(anyValue, anyValue).map(b64),
  fc.tuple(text, fc.uuid()).map(b64),
  fc.tuple(fc.constantFrom(...NASTY), fc.constantFrom(...NASTY)).map(b64),
  fc
    .tuple(
      fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
      text,
    )
    .map(b64),
  fc.array(anyValue, { maxLength: 5 }).map(b64),
  anyValue.map(b64),
  fc.string({ unit: "binary", maxLength: 30 }).map((s) => Buffer.from(s).toString("base64url")),
);

/** A query string from the route's own parameters (and strangers), sometimes with raw, broken escapes. */
function query(params: string[]): fc.Arbitrary<string> {
  const name = fc.oneof(fc.constantFrom(...params, "before"), text);
  const value = fc.oneof(text, cursorValue);
  const pairs = fc.array(fc.tuple(name, value), { maxLength: 5 });
  const raw = fc.oneof(
    { weight: 6, arbitrary: fc.constant("") },
    {
      weight: 1,
      arbitrary: fc.constantFrom("&%", "&limit=%ZZ", "&site=%C0%80", "&site=%FF%FE", "&before=%00", "&&&=", "&a=b=c"),
    },
  );
  return fc.tuple(pairs, raw).map(([ps, r]) => {
    const s = ps.map(([k, v]) => `${encode(k)}=${encode(v)}`).join("&") + r;
    return s ? `?${s}` : "";
  });
}

/** A path segment: usually the real thing (to get past auth and into the handler), otherwise anything. */
const segment = (real: () => string) =>
  fc.oneof(
    { weight: 3, arbitrary: fc.constant(null).map(() => real()) },
    { weight: 2, arbitrary: text.map(encode) },
    { weight: 1, arbitrary: fc.constantFrom("%", "%ZZ", "%00", "%C0%80", "..", "%2F", "%252F") },
  );

const body = (keys: Record<string, fc.Arbitrary<unknown>>) =>
  fc.oneof(
    // the route's own fields, each valid or not, some missing, some extra
    {
      weight: 4,
      arbitrary: fc
        .record(
          Object.fromEntries(
            Object.entries(keys).map(([k, good]) => [
              k,
              fc.oneof({ weight: 6, arbitrary: good }, { weight: 1, arbitrary: anyValue }),
            ]),
          ),
          { requiredKeys: [] },
        )
        .chain((o) =>
          fc
            .option(fc.dictionary(text, anyValue, { maxKeys: 1 }), { freq: 5 })
            .map((extra) => JSON.stringify({ ...extra, ...o })),
        ),
    },
    { weight: 1, arbitrary: fc.jsonValue().map((v) => JSON.stringify(v)) },
    { weight: 1, arbitrary: anyValue.map((v) => JSON.stringify(v) ?? "null") },
    { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 50 }) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        "",
        "{",
        '{"amount":1e400}',
        '{"amount":-0}',
        '{"a":"\\u0000"}',
        '{"\\u0000":1}',
        "[".repeat(5000),
      ),
    },
  );

const headerSafe = fc.oneof(
  { weight: 1, arbitrary: fc.string({ maxLength: 200 }).filter((s) => /^[\x20-\x7e]*$/.test(s)) },
  { weight: 1, arbitrary: fc.constant(undefined) },
  { weight: 4, arbitrary: fc.uuid() },
);
const contentType = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom("application/json", "application/json; charset=utf-8") },
  { weight: 1, arbitrary: fc.constantFrom("text/plain", "application/x-www-form-urlencoded", undefined) },
);

const amount = fc.integer({ min: 1, max: 10_000 });
const currency = fc.constantFrom("EUR", "USD", "eur");
const uuid = fc.uuid();
const iso = fc
  .date({ min: new Date("2020-01-01"), max: new Date("2030-01-01"), noInvalidDate: true })
  .map((d) => d.toISOString());

interface Route {
  method: "GET" | "POST" | "PUT";
  /** The path with its segments already chosen. */
  path: fc.Arbitrary<string>;
  params: string[];
  auth: "operator" | "device" | "metrics" | "none";
  body?: fc.Arbitrary<string>;
}

const site = segment(() => api.site);
const member = segment(() => "m-ada");
const paymentId = segment(() => payment);
const ROUTES: Route[] = [
  { method: "GET", path: fc.constant("/api/v1/checkins"), params: ["site", "device", "limit"], auth: "operator" },
  {
    method: "GET",
    path: fc.constant("/api/v1/conflicts"),
    params: ["site", "kind", "since", "until", "limit"],
    auth: "operator",
  },
  { method: "GET", path: fc.constant("/api/v1/alerts"), params: ["site", "device", "limit"], auth: "operator" },
  { method: "GET", path: fc.constant("/api/v1/devices"), params: ["site"], auth: "operator" },
  { method: "GET", path: fc.constant("/api/v1/wallets"), params: ["site", "limit"], auth: "operator" },
  {
    method: "GET",
    path: fc.tuple(site, member).map(([s, m]) => `/api/v1/wallets/${s}/${m}`),
    params: [],
    auth: "operator",
  },
  {
    method: "GET",
    path: fc.tuple(site, member).map(([s, m]) => `/api/v1/wallets/${s}/${m}/entries`),
    params: ["limit"],
    auth: "operator",
  },
  { method: "GET", path: fc.constant("/api/v1/ledger"), params: ["site", "kind", "limit"], auth: "operator" },
  { method: "GET", path: fc.constant("/api/v1/payments"), params: ["site", "kind", "limit"], auth: "operator" },
  { method: "GET", path: paymentId.map((p) => `/api/v1/payments/${p}`), params: [], auth: "operator" },
  { method: "GET", path: fc.constant("/api/v1/exposure"), params: ["site"], auth: "operator" },
  { method: "GET", path: site.map((s) => `/api/v1/sites/${s}/items`), params: [], auth: "operator" },
  {
    method: "PUT",
    path: fc
      .tuple(
        site,
        segment(() => "coffee"),
      )
      .map(([s, i]) => `/api/v1/sites/${s}/items/${i}`),
    params: [],
    auth: "operator",
    body: body({ name: fc.string({ maxLength: 80 }), price: amount, active: fc.boolean() }),
  },
  {
    method: "PUT",
    path: site.map((s) => `/api/v1/sites/${s}/offline-limits`),
    params: [],
    auth: "operator",
    body: body({ perPayment: amount, perCardDaily: amount, kioskExposure: amount }),
  },
  {
    method: "POST",
    path: fc.tuple(site, member).map(([s, m]) => `/api/v1/wallets/${s}/${m}/topups`),
    params: [],
    auth: "operator",
    body: body({ amount, currency, note: fc.string({ maxLength: 500 }) }),
  },
  {
    method: "POST",
    path: fc.tuple(site, member).map(([s, m]) => `/api/v1/wallets/${s}/${m}/adjustments`),
    params: [],
    auth: "operator",
    body: body({ amount: fc.integer({ min: -1000, max: 1000 }), currency, note: fc.string({ maxLength: 500 }) }),
  },
  {
    method: "POST",
    path: paymentId.map((p) => `/api/v1/payments/${p}/refunds`),
    params: [],
    auth: "operator",
    body: body({ amount: fc.integer({ min: 1, max: 300 }), reason: fc.string({ minLength: 3, maxLength: 500 }) }),
  },
  { method: "GET", path: site.map((s) => `/api/v1/sites/${s}/members`), params: ["since"], auth: "device" },
  { method: "GET", path: site.map((s) => `/api/v1/sites/${s}/wallets`), params: ["since"], auth: "device" },
  {
    method: "GET",
    path: fc
      .tuple(
        site,
        segment(() => "k1"),
      )
      .map(([s, d]) => `/api/v1/sites/${s}/devices/${d}/stream`),
    params: [],
    auth: "device",
  },
  {
    method: "GET",
    path: fc
      .tuple(
        site,
        segment(() => "k1"),
      )
      .map(([s, d]) => `/api/v1/sites/${s}/devices/${d}/stream/entries`),
    params: ["after", "upTo"],
    auth: "device",
  },
  {
    method: "POST",
    path: fc.constant("/api/v1/topups/intents"),
    params: [],
    auth: "device",
    body: body({ key: uuid, memberId: fc.constantFrom("m-ada", "m-grace", "nobody"), amount, currency }),
  },
  { method: "GET", path: fc.constant("/api/v1/collisions"), params: ["site", "open", "limit"], auth: "operator" },
  {
    method: "POST",
    path: fc
      .oneof(
        uuid,
        segment(() => "not-a-collision"),
      )
      .map((id) => `/api/v1/collisions/${id}/resolve`),
    params: [],
    auth: "operator",
    body: body({ kept: fc.constantFrom("held", "arrived", "both"), note: fc.string({ maxLength: 1200 }) }),
  },
  ...(["/api/v1/payments", "/api/v1/payments/void"] as const).map(
    (p): Route => ({
      method: "POST",
      path: fc.constant(p),
      params: [],
      auth: "device",
      body: body({
        key: uuid,
        memberId: fc.constantFrom("m-ada", "m-grace", "nobody"),
        amount,
        currency,
        itemId: fc.constantFrom("coffee", null),
        at: iso,
      }),
    }),
  ),
  {
    method: "POST",
    path: fc.constant("/api/v1/topups/intents"),
    params: [],
    auth: "device",
    body: body({ key: uuid, memberId: fc.constantFrom("m-ada", "nobody"), amount, currency }),
  },
  { method: "GET", path: fc.constantFrom("/healthz", "/readyz"), params: [], auth: "none" },
];

/** Answers by route kind and status, printed at the end: a fuzz that never gets past validation proves little. */
const statuses = new Map<string, number>();

/** Postgres' own words: none of them may reach a client. */
const POSTGRES_WORDS =
  /syntax for type|invalid byte sequence|out of range for type|violates|relation "|column "|SQLSTATE|unterminated|value too long|malformed array|null value in|does not exist|at character \d+/i;
/** The API's last resort when the database refuses a value: means a validation is missing. */
const DATABASE_REFUSED = /does not fit the field it is for/;

async function check(route: Route, path: string, q: string, payload: string | undefined, key?: string, type?: string) {
  const headers: Record<string, string> = {};
  if (route.auth === "operator") headers.authorization = admin;
  if (route.auth === "device") headers.authorization = api.device();
  if (payload !== undefined && type) headers["content-type"] = type;
  if (key !== undefined) headers["idempotency-key"] = key;
  const res = await api.request(`${path}${q}`, { method: route.method, headers, body: payload });
  const textBody = await res.text();
  const tally = `${route.method} ${route.auth} ${res.status}`;
  statuses.set(tally, (statuses.get(tally) ?? 0) + 1);
  if (process.env.FUZZ_DEBUG && res.status === 400 && route.method !== "GET") console.log(path, textBody.slice(0, 200));
  const what = `${route.method} ${path}${q} ${payload === undefined ? "" : `body ${payload.slice(0, 300)}`} -> ${res.status} ${textBody.slice(0, 300)}`;
  assert.ok(res.status < 500, what);
  assert.not.match(textBody, POSTGRES_WORDS, `Postgres' wording reached the client: ${what}`);
  if (res.status >= 400) {
    assert.is(res.headers.get("content-type"), "application/problem+json", what);
    const p = JSON.parse(textBody) as { status: number; title: string; detail?: string };
    assert.is(p.status, res.status, what);
    assert.type(p.title, "string", what);
    if (res.status === 400) {
      assert.type(p.detail, "string", what);
      assert.not.match(p.detail!, DATABASE_REFUSED, `no validation named the field: ${what}`);
    }
  }
}

for (const route of ROUTES) {
  it(`${route.method} ${describeRoute(route)}: no 5xx, problem+json errors, fields named`, async () => {
    await fc.assert(
      fc.asyncProperty(
        route.path,
        // writes: mostly no query, so the body is what gets fuzzed
        route.body ? fc.oneof({ weight: 4, arbitrary: fc.constant("") }, query(route.params)) : query(route.params),
        route.body ?? fc.constant(undefined),
        headerSafe,
        contentType,
        async (path, q, payload, key, type) => check(route, path, q, payload, key, type),
      ),
      { numRuns: RUNS, seed: SEED, endOnFailure: true, includeErrorInReport: true },
    );
  });
}

function describeRoute(route: Route): string {
  // the first value the path arbitrary gives for a fixed seed, with real segments: a stable, readable name
  const [sample] = fc.sample(route.path, { numRuns: 1, seed: 1 });
  return sample!.replace(api.site || "SITE", "{site}");
}

it("hand-made cursors and NUL characters, the issue's examples: 400 naming the field", async () => {
  const cases: Array<[string, RegExp]> = [
    [`/api/v1/checkins?before=${b64(["not a time", "not a uuid"])}`, /^before:/],
    [`/api/v1/checkins?before=${b64(["2026-12-04T10:00:00Z", "x"])}`, /^before:/],
    [`/api/v1/ledger?site=${api.site}&before=${b64(["2026-02-30T00:00:00Z", randomUUID()])}`, /^before:/],
    [`/api/v1/wallets/${api.site}/m-ada/entries?before=${b64([1e300])}`, /^before:/],
    [`/api/v1/wallets?site=${api.site}&before=${b64(["m\u0000"])}`, /^before:/],
    [`/api/v1/checkins?site=a%00b`, /^site:/],
    [`/api/v1/alerts?device=%00`, /^device:/],
    [`/api/v1/wallets/${api.site}/m%00ada`, /^path:/],
    [`/api/v1/conflicts?since=2026-02-30T00:00:00Z`, /^since:/],
    [`/api/v1/checkins?limit=1e400`, /^limit:/],
  ];
  for (const [path, field] of cases) {
    const res = await api.request(path, { headers: { authorization: admin } });
    const p = (await res.json()) as { detail: string };
    assert.is(res.status, 400, `${path}: ${JSON.stringify(p)}`);
    assert.match(p.detail, field, path);
  }
  const nulBody = await api.request(`/api/v1/wallets/${api.site}/m-ada/topups`, {
    method: "POST",
    headers: { authorization: admin, "content-type": "application/json", "idempotency-key": "key-with-nul-note" },
    body: JSON.stringify({ amount: 100, currency: "EUR", note: "hi\u0000there" }),
  });
  assert.is(nulBody.status, 400);
  assert.match(((await nulBody.json()) as { detail: string }).detail, /^body\.note: contains a NUL/);
});

it("(the answers the fuzz got)", () => {
  console.log(
    [...statuses]
      .sort()
      .map(([k, n]) => `  ${k}: ${n}`)
      .join("\n"),
  );
  assert.ok(
    [...statuses.keys()].some((k) => / 20[01]$/.test(k)),
    "some fuzzed requests got through to a 2xx",
  );
});

it.run();
