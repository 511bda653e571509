/**
 * The money routes as a client sees them (Hono's app.request, PGlite): who
 * may do what, idempotency keys on every write, problem+json that names what
 * is wrong, refunds within what was paid, and cursor pagination.
 */
import { hashSecret, Registry } from "@paylane/protocol";
import { Registry as MetricsRegistry } from "prom-client";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { createApi } from "../src/api/app.ts";
import { mintOperatorToken, type Role } from "../src/api/auth.ts";
import type { Database } from "../src/db/database.ts";
import { migrate } from "../src/db/migrate.ts";
import { openPglite } from "../src/db/pglite.ts";
import { MemoryPresence } from "../src/presence/memory-presence.ts";
import { seedSite } from "../src/seed.ts";

const SECRET = "a-test-secret-of-at-least-32-characters!";
const DEVICE_SECRET = "device-secret-0123456789";
const NOW = new Date("2026-11-25T10:00:00Z");

let db: Database;
let app: ReturnType<typeof createApi>;

test.before(async () => {
  db = await openPglite();
  await migrate(db);
  await seedSite(db, { id: "s1", name: "Venue", timezone: "UTC" });
  await seedSite(db, { id: "s2", name: "Other venue", timezone: "UTC" });
  const registry = new Registry({
    version: 1,
    devices: [
      { site: "s1", device: "k1", secretHash: await hashSecret(DEVICE_SECRET) },
      { site: "s2", device: "x1", secretHash: await hashSecret(DEVICE_SECRET) },
    ],
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
});
test.after(async () => {
  await db.close();
});

const token = (role: Role, sites?: string[]) => mintOperatorToken(SECRET, { sub: `ops-${role}`, role, sites });
const device = (site = "s1", id = "k1") => `Basic ${Buffer.from(`${site}/${id}:${DEVICE_SECRET}`).toString("base64")}`;

async function call(
  method: string,
  path: string,
  o: { auth?: string; body?: unknown; raw?: string; key?: string } = {},
): Promise<{ status: number; type: string | null; body: Record<string, unknown>; replayed: boolean }> {
  const headers: Record<string, string> = {};
  if (o.auth) headers.authorization = o.auth;
  if (o.body !== undefined || o.raw !== undefined) headers["content-type"] = "application/json";
  if (o.key) headers["idempotency-key"] = o.key;
  const res = await app.request(path, {
    method,
    headers,
    body: o.raw ?? (o.body === undefined ? undefined : JSON.stringify(o.body)),
  });
  return {
    status: res.status,
    type: res.headers.get("content-type"),
    body: (await res.json()) as Record<string, unknown>,
    replayed: res.headers.get("idempotent-replayed") === "true",
  };
}

const bearer = async (role: Role, sites?: string[]) => `Bearer ${await token(role, sites)}`;

test("operator routes: no token 401, a bad token 401, too small a role 403, another site 403; all problem+json", async () => {
  const none = await call("GET", "/api/v1/wallets/s1/m-ada");
  assert.is(none.status, 401);
  assert.is(none.type, "application/problem+json");
  const forged = await call("GET", "/api/v1/wallets/s1/m-ada", {
    auth: `Bearer ${await mintOperatorToken("another-secret-of-at-least-32-chars!!", { sub: "x", role: "admin" })}`,
  });
  assert.is(forged.status, 401);
  assert.match(String(forged.body.detail), /operator token refused/);
  const viewer = await call("POST", "/api/v1/wallets/s1/m-ada/topups", {
    auth: await bearer("viewer"),
    body: { amount: 100, currency: "EUR" },
    key: "k-viewer-1",
  });
  assert.is(viewer.status, 403);
  assert.match(
    String(viewer.body.detail),
    /needs money:write, which the finance and admin roles have; the token has viewer/,
  );
  const viewerRead = await call("GET", "/api/v1/wallets/s1/m-ada", { auth: await bearer("viewer") });
  assert.is(viewerRead.status, 403, "a viewer reads the fleet, not the money");
  const operatorRefund = await call("POST", "/api/v1/wallets/s1/m-ada/topups", {
    auth: await bearer("operator"),
    body: { amount: 100, currency: "EUR" },
    key: "k-operator-1",
  });
  assert.is(operatorRefund.status, 403, "an operator steers kiosks, it does not move money");
  const elsewhere = await call("GET", "/api/v1/wallets/s1/m-ada", { auth: await bearer("admin", ["s2"]) });
  assert.is(elsewhere.status, 403);
  const ok = await call("GET", "/api/v1/wallets/s1/m-ada", { auth: await bearer("finance", ["s1"]) });
  assert.is(ok.status, 200);
  assert.is(ok.body.balance, 2500);
});

test("a write without an Idempotency-Key is refused, saying why it is needed", async () => {
  const r = await call("POST", "/api/v1/wallets/s1/m-ada/topups", {
    auth: await bearer("finance"),
    body: { amount: 100, currency: "EUR" },
  });
  assert.is(r.status, 400);
  assert.match(String(r.body.detail), /Idempotency-Key: header required/);
});

test("bad bodies name the field: a decimal amount, an unknown field, malformed JSON, the wrong media type", async () => {
  const auth = await bearer("finance");
  const decimal = await call("POST", "/api/v1/wallets/s1/m-ada/topups", {
    auth,
    body: { amount: 2.5, currency: "EUR" },
    key: "key-decimal-1",
  });
  assert.is(decimal.status, 400);
  assert.match(String(decimal.body.detail), /body\.amount: expected an integer number of minor units/);
  const extra = await call("POST", "/api/v1/wallets/s1/m-ada/topups", {
    auth,
    body: { amount: 250, currency: "EUR", cardNumber: "x" },
    key: "key-extra-1",
  });
  assert.is(extra.status, 400);
  assert.match(String(extra.body.detail), /cardNumber/);
  const shortKey = await call("POST", "/api/v1/wallets/s1/m-ada/topups", {
    auth,
    body: { amount: 250, currency: "EUR" },
    key: "short",
  });
  assert.is(shortKey.status, 400);
  assert.match(String(shortKey.body.detail), /Idempotency-Key: expected 8 to 128/);
  const malformed = await call("POST", "/api/v1/wallets/s1/m-ada/topups", {
    auth,
    raw: "{nope",
    key: "key-malformed-1",
  });
  assert.is(malformed.status, 400);
  assert.match(String(malformed.body.detail), /malformed JSON/);
  const res = await app.request("/api/v1/payments", {
    method: "POST",
    headers: { authorization: device() },
    body: "x",
  });
  assert.is(res.status, 415);
});

test("an operator top-up: 201 with the entry; its retry is replayed; the same key for another amount is 422", async () => {
  const auth = await bearer("finance");
  const first = await call("POST", "/api/v1/wallets/s1/m-grace/topups", {
    auth,
    body: { amount: 500, currency: "EUR", note: "desk" },
    key: "k-grace-1",
  });
  assert.is(first.status, 201);
  assert.equal([first.body.kind, first.body.amount, first.body.balanceAfter], ["topup", 500, 1500]);
  assert.equal(first.body.origin, { operator: "ops-finance" });
  const again = await call("POST", "/api/v1/wallets/s1/m-grace/topups", {
    auth,
    body: { amount: 500, currency: "EUR", note: "desk" },
    key: "k-grace-1",
  });
  assert.ok(again.replayed);
  assert.equal(again.body, first.body);
  const other = await call("POST", "/api/v1/wallets/s1/m-grace/topups", {
    auth,
    body: { amount: 900, currency: "EUR", note: "desk" },
    key: "k-grace-1",
  });
  assert.is(other.status, 422);
  assert.match(String(other.body.detail), /first used with different parameters/);
  const wrong = await call("POST", "/api/v1/wallets/s1/m-grace/topups", {
    auth,
    body: { amount: 900, currency: "USD" },
    key: "k-grace-usd",
  });
  assert.is(wrong.status, 422);
  assert.match(String(wrong.body.detail), /currency USD does not match the wallet's EUR/);
  const nobody = await call("POST", "/api/v1/wallets/s1/m-nobody/topups", {
    auth,
    body: { amount: 100, currency: "EUR" },
    key: "k-nobody",
  });
  assert.is(nobody.status, 404);
});

test("a kiosk pays online; an operator refunds part, then the rest; a third refund is refused", async () => {
  const pay = await call("POST", "/api/v1/payments", {
    auth: device(),
    body: {
      key: "3f0c1d2e-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
      memberId: "m-ada",
      amount: 1200,
      currency: "EUR",
      itemId: "day-pass",
      at: NOW.toISOString(),
    },
  });
  assert.is(pay.status, 200);
  assert.is(pay.body.status, "approved");
  const id = String(pay.body.paymentId);
  const auth = await bearer("finance");
  const partial = await call("POST", `/api/v1/payments/${id}/refunds`, {
    auth,
    body: { amount: 200, reason: "late start" },
    key: "refund-1",
  });
  assert.is(partial.status, 201);
  const rest = await call("POST", `/api/v1/payments/${id}/refunds`, {
    auth,
    body: { reason: "cancelled" },
    key: "refund-2",
  });
  assert.is(rest.status, 201);
  assert.is(rest.body.amount, 1000, "no amount: what is left");
  const more = await call("POST", `/api/v1/payments/${id}/refunds`, {
    auth,
    body: { reason: "again" },
    key: "refund-3",
  });
  assert.is(more.status, 409);
  const shown = await call("GET", `/api/v1/payments/${id}`, { auth: await bearer("finance") });
  assert.equal([shown.body.refunded, shown.body.refundable], [1200, 0]);
  const viewerRefund = await call("POST", `/api/v1/payments/${id}/refunds`, {
    auth: await bearer("viewer"),
    body: { reason: "nope" },
    key: "refund-4",
  });
  assert.is(viewerRefund.status, 403);
});

test("kiosk routes: no credentials 401; a device of another site may not read this site's wallets", async () => {
  const anonymous = await call("POST", "/api/v1/payments", { body: {} });
  assert.is(anonymous.status, 401);
  const other = await call("GET", "/api/v1/sites/s1/wallets", { auth: device("s2", "x1") });
  assert.is(other.status, 403);
  const bad = await call("POST", "/api/v1/payments", {
    auth: device(),
    body: { key: "not-a-uuid", memberId: "m-ada", amount: -5, currency: "eur", at: "yesterday" },
  });
  assert.is(bad.status, 400);
  for (const field of ["body.key", "body.amount", "body.currency", "body.at"]) {
    assert.ok(String(bad.body.detail).includes(field), `names ${field}: ${bad.body.detail}`);
  }
  const own = await call("GET", "/api/v1/sites/s1/wallets?since=abc", { auth: device() });
  assert.is(own.status, 400);
  assert.match(String(own.body.detail), /since/);
});

test("a wallet's entries page by cursor, newest first, every entry once", async () => {
  const auth = await bearer("finance");
  for (let i = 1; i <= 7; i++) {
    const r = await call("POST", "/api/v1/wallets/s1/m-katherine/topups", {
      auth,
      body: { amount: i, currency: "EUR" },
      key: `page-key-${i}`,
    });
    assert.is(r.status, 201);
  }
  const seen: number[] = [];
  let next: string | null = null;
  do {
    const q: string = next ? `&before=${next}` : "";
    const page = await call("GET", `/api/v1/wallets/s1/m-katherine/entries?limit=3${q}`, { auth });
    assert.is(page.status, 200);
    seen.push(...(page.body.items as Array<{ amount: number }>).map((e) => e.amount));
    next = page.body.next as string | null;
  } while (next);
  assert.equal(seen, [7, 6, 5, 4, 3, 2, 1]);
  const junk = await call("GET", "/api/v1/wallets/s1/m-katherine/entries?before=garbage", { auth });
  assert.is(junk.status, 400);
  const payments = await call("GET", "/api/v1/payments?site=s1", { auth });
  const kinds = new Set((payments.body.items as Array<{ kind: string }>).map((e) => e.kind));
  assert.equal([...kinds], ["purchase"], "the payments list holds purchases only");
  const ledger = await call("GET", "/api/v1/ledger?site=s1&kind=topup&limit=2", { auth });
  assert.is((ledger.body.items as unknown[]).length, 2);
  assert.type(ledger.body.next, "string");
});

test("a void settles a key once: unknown → voided (and the late request is voided too); approved → the approval", async () => {
  const request = {
    key: "8c1d2e3f-4a5b-4c6d-9e7f-0a1b2c3d4e5f",
    memberId: "m-ada",
    amount: 150,
    currency: "EUR",
    itemId: "water",
    at: NOW.toISOString(),
  };
  const before = await call("GET", "/api/v1/wallets/s1/m-ada", { auth: await bearer("finance") });
  const voided = await call("POST", "/api/v1/payments/void", { auth: device(), body: request });
  assert.is(voided.status, 200);
  assert.equal([voided.body.status, voided.body.reason], ["declined", "voided"]);
  const late = await call("POST", "/api/v1/payments", { auth: device(), body: request });
  assert.ok(late.replayed, "the original request, arriving after the void, gets the void");
  assert.is(late.body.reason, "voided");
  const after = await call("GET", "/api/v1/wallets/s1/m-ada", { auth: await bearer("finance") });
  assert.is(after.body.balance, before.body.balance, "nothing charged");

  const paid = { ...request, key: "9d2e3f4a-5b6c-4d7e-8f9a-1b2c3d4e5f60" };
  const approved = await call("POST", "/api/v1/payments", { auth: device(), body: paid });
  assert.is(approved.body.status, "approved");
  const settled = await call("POST", "/api/v1/payments/void", { auth: device(), body: paid });
  assert.ok(settled.replayed);
  assert.equal(settled.body, approved.body, "a decided key keeps its answer");
});

test("a venue admin sets a price and the offline limits; kiosks get them with their next sync", async () => {
  const admin = await bearer("admin");
  const tea = await call("PUT", "/api/v1/sites/s1/items/tea", { auth: admin, body: { name: "Tea", price: 220 } });
  assert.equal(tea.body, { id: "tea", name: "Tea", price: 220, active: true });
  const decimal = await call("PUT", "/api/v1/sites/s1/items/tea", { auth: admin, body: { name: "Tea", price: 2.2 } });
  assert.is(decimal.status, 400);
  assert.match(String(decimal.body.detail), /body\.price/);
  const notAdmin = await call("PUT", "/api/v1/sites/s1/items/tea", {
    auth: await bearer("finance"),
    body: { name: "Tea", price: 1 },
  });
  assert.is(notAdmin.status, 403);
  const limits = { perPayment: 1500, perCardDaily: 3000, kioskExposure: 10_000 };
  const set = await call("PUT", "/api/v1/sites/s1/offline-limits", { auth: admin, body: limits });
  assert.is(set.status, 200);
  const negative = await call("PUT", "/api/v1/sites/s1/offline-limits", {
    auth: admin,
    body: { ...limits, perPayment: -1 },
  });
  assert.is(negative.status, 400);
  const sync = await call("GET", "/api/v1/sites/s1/wallets", { auth: device() });
  // topupDaily (offline top-ups) is 0, off, unless an admin sets it
  assert.equal(sync.body.limits, { ...limits, topupDaily: 0 });
  assert.ok((sync.body.items as Array<{ id: string }>).some((i) => i.id === "tea"));
  const retired = await call("PUT", "/api/v1/sites/s1/items/tea", {
    auth: admin,
    body: { name: "Tea", price: 220, active: false },
  });
  assert.is(retired.body.active, false);
  const after = await call("GET", "/api/v1/sites/s1/wallets", { auth: device() });
  assert.not.ok(
    (after.body.items as Array<{ id: string }>).some((i) => i.id === "tea"),
    "a retired item is not sold",
  );
});

test.run();
