/**
 * The audit log as an admin reads it (Hono's app.request, a Postgres schema of its own): a refund,
 * a command to a kiosk, a user change, a refused call and a failed login each
 * leave a row naming who, what (method and route template), the target, the
 * site, the address and the status, with no password or token in it; only
 * admins read `/api/v1/audit`, newest first, paged and filtered.
 */
import { EventEmitter } from "node:events";
import { hashSecret, Registry } from "@paylane/protocol";
import pino from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { OperatorStore } from "../src/accounts/store.ts";
import { createApi } from "../src/api/app.ts";
import { mintOperatorToken, type Role } from "../src/api/auth.ts";
import type { Database } from "../src/db/database.ts";
import { CommandDesk } from "../src/fleet/commands.ts";
import type { FleetLink } from "../src/fleet/link.ts";
import { MemoryPresence } from "../src/presence/memory-presence.ts";
import { seedSite } from "../src/seed.ts";
import { openTestSchema } from "./console-db.ts";

const SECRET = "a-test-secret-of-at-least-32-characters!";
const DEVICE_SECRET = "device-secret-0123456789";
const PASSWORD = "correct horse battery staple";
// Real time: access tokens from a login are checked against the real clock (jose), as in production.
const NOW = new Date();
let db: Database;
let drop: () => Promise<void>;
let app: ReturnType<typeof createApi>;
let commands: CommandDesk;
const published: string[] = [];

test.before(async () => {
  ({ db, drop } = await openTestSchema("console_audit"));
  await seedSite(db, { id: "s1", name: "Venue", timezone: "UTC" });
  const store = new OperatorStore({ db });
  await store.create({ username: "root", password: PASSWORD, role: "admin" });
  await store.create({ username: "bob", password: PASSWORD, role: "viewer" });
  const registry = new Registry({
    version: 1,
    devices: [{ site: "s1", device: "k1", secretHash: await hashSecret(DEVICE_SECRET) }],
    services: [],
  });
  const link: FleetLink = {
    fleet: new EventEmitter() as FleetLink["fleet"],
    connected: true,
    publish: async (topic) => {
      published.push(topic);
    },
  };
  const logger = pino({ level: "silent" });
  commands = new CommandDesk({ db, link, logger, now: () => NOW });
  commands.attach();
  app = createApi({
    db,
    presence: new MemoryPresence(),
    registry: () => registry,
    metrics: new MetricsRegistry(),
    health: async () => ({ status: "ok" }),
    now: () => NOW,
    jwtSecret: SECRET,
    commands,
    logger,
  });
});
test.after(async () => {
  await commands.detach();
  await drop();
});

const token = (role: Role, sub = `ops-${role}`, sites?: string[]) => mintOperatorToken(SECRET, { sub, role, sites });

async function call(
  method: string,
  path: string,
  o: { auth?: string; basic?: string; body?: unknown; key?: string } = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const headers: Record<string, string> = { "x-forwarded-for": "203.0.113.5" };
  if (o.auth) headers.authorization = `Bearer ${o.auth}`;
  if (o.basic) headers.authorization = `Basic ${Buffer.from(o.basic).toString("base64")}`;
  if (o.body !== undefined) headers["content-type"] = "application/json";
  if (o.key) headers["idempotency-key"] = o.key;
  const res = await app.request(path, {
    method,
    headers,
    body: o.body === undefined ? undefined : JSON.stringify(o.body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

interface Row {
  actor: string;
  action: string;
  target: string | null;
  site: string | null;
  address: string | null;
  status: number;
  detail: Record<string, unknown>;
}

async function audit(query = ""): Promise<Row[]> {
  const res = await call("GET", `/api/v1/audit${query}`, { auth: await token("admin") });
  assert.is(res.status, 200, JSON.stringify(res.body));
  return res.body.items as Row[];
}

test("a refund is audited: who, the route, the payment, the site, the status", async () => {
  const pay = await call("POST", "/api/v1/payments", {
    basic: `s1/k1:${DEVICE_SECRET}`,
    body: {
      key: "3f0c1d2e-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
      memberId: "m-ada",
      amount: 1200,
      currency: "EUR",
      itemId: "day-pass",
      at: NOW.toISOString(),
    },
  });
  assert.is(pay.status, 200, JSON.stringify(pay.body));
  const id = String(pay.body.paymentId);
  const refund = await call("POST", `/api/v1/payments/${id}/refunds`, {
    auth: await token("finance", "fiona"),
    body: { amount: 200, reason: "late start" },
    key: "refund-1",
  });
  assert.is(refund.status, 201);
  const rows = await audit("?actor=fiona");
  assert.is(rows.length, 1, "a kiosk's own payment is not an operator call: not audited");
  assert.equal(
    { ...rows[0], detail: undefined },
    {
      ...rows[0],
      actor: "fiona",
      action: "POST /api/v1/payments/:id/refunds",
      target: `id ${id}`,
      site: "s1",
      address: "in-process",
      status: 201,
      detail: undefined,
    },
  );
});

test("a command to a kiosk is audited with the device and its site", async () => {
  const sent = await call("POST", "/api/v1/devices/s1/k1/commands", {
    auth: await token("operator", "olga"),
    body: { command: "self-test", waitSeconds: 0 },
  });
  assert.ok(sent.status === 202 || sent.status === 200, JSON.stringify(sent.body));
  assert.ok(published.some((t) => t.endsWith("/cmd/self-test")));
  const [row] = await audit("?actor=olga");
  assert.is(row?.action, "POST /api/v1/devices/:site/:device/commands");
  assert.is(row?.target, "device s1/k1");
  assert.is(row?.site, "s1");
  assert.is(row?.status, sent.status);
});

test("a refused call by a known operator is audited too (403)", async () => {
  const refused = await call("POST", "/api/v1/devices/s1/k1/commands", {
    auth: await token("viewer", "vic"),
    body: { command: "self-test", waitSeconds: 0 },
  });
  assert.is(refused.status, 403);
  const [row] = await audit("?actor=vic");
  assert.is(row?.status, 403);
});

test("a user change and failed and good logins are audited, without any password", async () => {
  const login = async (username: string, password: string) =>
    call("POST", "/api/v1/auth/login", { body: { username, password } });
  assert.is((await login("bob", "wrong password, bob")).status, 401);
  assert.is((await login("ghost", "wrong password, ghost")).status, 401);
  const root = await login("root", PASSWORD);
  assert.is(root.status, 200);
  const admin = String(root.body.accessToken);
  const change = await call("PATCH", "/api/v1/users/bob", {
    auth: admin,
    body: { role: "operator", password: "bobs-new-password-1" },
  });
  assert.is(change.status, 200);

  const rows = await audit();
  // One clock instant (the injected now): the order among them is the id's.
  const failed = rows
    .filter((r) => r.action === "login failed")
    .map((r) => [r.actor, r.status, r.target])
    .sort();
  assert.equal(failed, [
    ["bob", 401, "user bob"],
    ["ghost", 401, "user ghost"],
  ]);
  const ok = rows.find((r) => r.action === "login");
  assert.is(ok?.actor, "root");
  const userChange = rows.find((r) => r.action === "PATCH /api/v1/users/:username");
  assert.is(userChange?.actor, "root");
  assert.is(userChange?.target, "user bob");
  assert.equal(userChange?.detail.role, "operator");
  assert.is(userChange?.detail.passwordChanged, true);
  assert.type(userChange?.detail.session, "string", "the login session it was made in");
  const all = JSON.stringify(rows);
  for (const secret of [PASSWORD, "wrong password", "bobs-new-password-1", admin.slice(-20)]) {
    assert.not.ok(all.includes(secret), `no ${secret.slice(0, 6)}… in the audit log`);
  }
});

test("/api/v1/audit is admin's: newest first, filtered, paged with next", async () => {
  for (const role of ["viewer", "operator", "finance"] as const) {
    assert.is((await call("GET", "/api/v1/audit", { auth: await token(role) })).status, 403, role);
  }
  assert.is((await call("GET", "/api/v1/audit")).status, 401);
  const first = await call("GET", "/api/v1/audit?limit=2", { auth: await token("admin") });
  assert.is((first.body.items as Row[]).length, 2);
  assert.type(first.body.next, "string");
  const second = await call("GET", `/api/v1/audit?limit=2&before=${first.body.next}`, { auth: await token("admin") });
  const ids = [...(first.body.items as Array<{ id: string }>), ...(second.body.items as Array<{ id: string }>)].map(
    (r) => r.id,
  );
  assert.is(new Set(ids).size, 4, "pages do not overlap");
  const byAction = await audit(`?action=${encodeURIComponent("login failed")}`);
  assert.ok(byAction.length >= 2 && byAction.every((r) => r.action === "login failed"));
  const bad = await call("GET", "/api/v1/audit?before=nope", { auth: await token("admin") });
  assert.is(bad.status, 400);
  const scoped = await call("GET", "/api/v1/audit?site=s2", { auth: await token("admin", "site-admin", ["s1"]) });
  assert.is(scoped.status, 403, "a site admin reads only their sites");
});

test.run();
