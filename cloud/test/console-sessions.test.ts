/**
 * Console logins as a client sees them (Hono's app.request, a Postgres schema of its own): login
 * answers an access token and a refresh token; each refresh rotates them; a
 * refresh token used twice ends its whole session (the attacker's copy and
 * the owner's newest token alike); logout ends the session and the access
 * tokens naming it; the dashboard's cookies work for reads and never for a
 * state-changing call; a disabled account or a new password ends sessions.
 */
import { REFRESH_COOKIE, Registry, SESSION_COOKIE } from "@paylane/protocol";
import { Registry as MetricsRegistry } from "prom-client";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { OperatorStore } from "../src/accounts/store.ts";
import { createApi } from "../src/api/app.ts";
import { mintOperatorToken } from "../src/api/auth.ts";
import type { Database } from "../src/db/database.ts";
import { MemoryPresence } from "../src/presence/memory-presence.ts";
import { openTestSchema } from "./console-db.ts";

const SECRET = "a-test-secret-of-at-least-32-characters!";
const PASSWORD = "correct horse battery staple";
let db: Database;
let drop: () => Promise<void>;
let store: OperatorStore;
let app: ReturnType<typeof createApi>;

test.before(async () => {
  ({ db, drop } = await openTestSchema("console_sessions"));
  store = new OperatorStore({ db });
  await store.create({ username: "alice", password: PASSWORD, role: "operator", sites: ["s1"] });
  await store.create({ username: "root", password: PASSWORD, role: "admin" });
  await store.create({ username: "bob", password: PASSWORD, role: "viewer" });
  app = createApi({
    db,
    presence: new MemoryPresence(),
    registry: () => new Registry({ version: 1, devices: [], services: [] }),
    metrics: new MetricsRegistry(),
    health: async () => ({ status: "ok" }),
    jwtSecret: SECRET,
  });
});
test.after(async () => {
  await drop();
});

interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

async function call(
  method: string,
  path: string,
  o: { auth?: string; body?: unknown; cookie?: string } = {},
): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (o.auth) headers.authorization = `Bearer ${o.auth}`;
  if (o.cookie) headers.cookie = o.cookie;
  if (o.body !== undefined) headers["content-type"] = "application/json";
  const res = await app.request(path, {
    method,
    headers,
    body: o.body === undefined ? undefined : JSON.stringify(o.body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

const login = (username: string, password = PASSWORD, session?: "cookie" | "token") =>
  call("POST", "/api/v1/auth/login", { body: { username, password, ...(session ? { session } : {}) } });

test("login answers a 15-minute access token and a refresh token; /auth/me names the operator", async () => {
  const res = await login("alice");
  assert.is(res.status, 200);
  assert.is(res.headers.get("cache-control"), "no-store");
  assert.is(res.body.tokenType, "Bearer");
  assert.is(res.body.expiresIn, 900);
  assert.type(res.body.refreshToken, "string");
  assert.equal(res.body.operator, {
    username: "alice",
    role: "operator",
    sites: ["s1"],
    permissions: ["fleet:read", "fleet:operate"],
  });
  const claims = JSON.parse(Buffer.from(String(res.body.accessToken).split(".")[1]!, "base64url").toString());
  assert.is(claims.exp - claims.iat, 900);
  assert.equal(
    [claims.iss, claims.aud, claims.sub, claims.role],
    ["paylane-cloud", "paylane-api", "alice", "operator"],
  );
  assert.type(claims.sid, "string");
  const me = await call("GET", "/api/v1/auth/me", { auth: String(res.body.accessToken) });
  assert.is(me.status, 200);
  assert.is(me.body.username, "alice");
  const accounts = await store.list();
  assert.ok(accounts.find((a) => a.username === "alice")?.lastLoginAt, "last login recorded");
});

test("refresh rotates; the spent refresh token used again ends the whole session (reuse detection)", async () => {
  const first = await login("alice");
  const r1 = String(first.body.refreshToken);
  const second = await call("POST", "/api/v1/auth/refresh", { body: { refreshToken: r1 } });
  assert.is(second.status, 200);
  const r2 = String(second.body.refreshToken);
  assert.is.not(r2, r1, "a new refresh token");
  assert.is((await call("GET", "/api/v1/auth/me", { auth: String(second.body.accessToken) })).status, 200);
  const third = await call("POST", "/api/v1/auth/refresh", { body: { refreshToken: r2 } });
  assert.is(third.status, 200);
  const r3 = String(third.body.refreshToken);

  // An attacker replays r1 (or the owner's r2 was stolen and used first): the family is revoked.
  const replay = await call("POST", "/api/v1/auth/refresh", { body: { refreshToken: r1 } });
  assert.is(replay.status, 401);
  assert.match(String(replay.body.detail), /already used/);
  const newest = await call("POST", "/api/v1/auth/refresh", { body: { refreshToken: r3 } });
  assert.is(newest.status, 401, "the family's newest token is refused too");
  const access = await call("GET", "/api/v1/auth/me", { auth: String(third.body.accessToken) });
  assert.is(access.status, 401, "and the access tokens of that session");
  assert.match(String(access.body.detail), /session has ended/);
  assert.not.match(JSON.stringify(replay.body), r1.slice(0, 12), "the token is never echoed");

  const other = await login("alice");
  assert.is(other.status, 200, "a new login starts a new session");
  const rows = await db.query<{ reason: string }>(
    "SELECT reason FROM operator_sessions WHERE revoked_at IS NOT NULL AND reason = 'refresh token reused'",
  );
  assert.is(rows.rows.length, 1);
});

test("logout ends the refresh token and, through sid, the access token at once", async () => {
  const s = await login("alice");
  const access = String(s.body.accessToken);
  assert.is((await call("GET", "/api/v1/auth/me", { auth: access })).status, 200);
  const out = await call("POST", "/api/v1/auth/logout", { body: { refreshToken: s.body.refreshToken } });
  assert.is(out.status, 204);
  assert.is((await call("GET", "/api/v1/auth/me", { auth: access })).status, 401, "the cached session forgotten");
  const refresh = await call("POST", "/api/v1/auth/refresh", { body: { refreshToken: s.body.refreshToken } });
  assert.is(refresh.status, 401);

  // A script that kept only its access token logs out with it.
  const t = await login("alice");
  assert.is((await call("POST", "/api/v1/auth/logout", { auth: String(t.body.accessToken) })).status, 204);
  assert.is((await call("GET", "/api/v1/auth/me", { auth: String(t.body.accessToken) })).status, 401);

  // Tokens without sid (paylane-cloud token, npm start) keep working as before.
  const minted = await mintOperatorToken(SECRET, { sub: "script", role: "viewer" });
  assert.is((await call("GET", "/api/v1/auth/me", { auth: minted })).status, 200);
});

/** `name=value` of each Set-Cookie, and the attributes of the one named. */
function cookies(h: Headers): Map<string, { value: string; attrs: string }> {
  const out = new Map<string, { value: string; attrs: string }>();
  for (const line of h.getSetCookie()) {
    const [pair, ...attrs] = line.split("; ");
    const eq = pair!.indexOf("=");
    out.set(pair!.slice(0, eq), { value: pair!.slice(eq + 1), attrs: attrs.join("; ") });
  }
  return out;
}

test("dashboard cookies: httpOnly, Secure, SameSite=Strict; a GET with the cookie works, a POST with it alone is 401", async () => {
  const s = await login("root", PASSWORD, "cookie");
  assert.is(s.status, 200);
  assert.is(s.body.refreshToken, undefined, "not in the body for a cookie session");
  const jar = cookies(s.headers);
  const session = jar.get(SESSION_COOKIE)!;
  const refresh = jar.get(REFRESH_COOKIE)!;
  assert.match(session.attrs, /Max-Age=900/);
  assert.match(session.attrs, /Path=\/api(;|$)/);
  assert.match(refresh.attrs, /Path=\/api\/v1\/auth(;|$)/);
  for (const c of [session, refresh]) {
    assert.match(c.attrs, /HttpOnly/);
    assert.match(c.attrs, /Secure/);
    assert.match(c.attrs, /SameSite=Strict/);
  }
  const cookie = `${SESSION_COOKIE}=${session.value}`;
  const read = await call("GET", "/api/v1/users", { cookie });
  assert.is(read.status, 200, "a read with the session cookie");
  const write = await call("POST", "/api/v1/users", {
    cookie,
    body: { username: "csrf-made", password: "a-long-enough-password", role: "admin" },
  });
  assert.is(write.status, 401, "no state change by cookie alone (CSRF)");
  assert.match(String(write.body.detail), /Authorization: Bearer/);
  assert.is(await store.get("csrf-made"), null);

  // The refresh cookie rotates through cookies too.
  const next = await call("POST", "/api/v1/auth/refresh", { cookie: `${REFRESH_COOKIE}=${refresh.value}` });
  assert.is(next.status, 200);
  assert.is(next.body.refreshToken, undefined);
  const rotated = cookies(next.headers).get(REFRESH_COOKIE)!;
  assert.is.not(rotated.value, refresh.value);
  const out = await call("POST", "/api/v1/auth/logout", { cookie: `${REFRESH_COOKIE}=${rotated.value}` });
  assert.is(out.status, 204);
  assert.match(cookies(out.headers).get(SESSION_COOKIE)!.attrs, /Max-Age=0/, "logout clears the cookies");
});

test("an account disabled or given a new password through the API loses its sessions; the last admin cannot be demoted", async () => {
  const admin = String((await login("root")).body.accessToken);
  const bob = await login("bob");
  assert.is((await call("GET", "/api/v1/auth/me", { auth: String(bob.body.accessToken) })).status, 200);
  const off = await call("PATCH", "/api/v1/users/bob", { auth: admin, body: { disabled: true } });
  assert.is(off.status, 200);
  assert.is(off.body.disabled, true);
  assert.is((await call("GET", "/api/v1/auth/me", { auth: String(bob.body.accessToken) })).status, 401);
  assert.is(
    (await call("POST", "/api/v1/auth/refresh", { body: { refreshToken: bob.body.refreshToken } })).status,
    401,
  );
  const refused = await login("bob");
  assert.is(refused.status, 401, "a disabled account cannot log in");
  assert.is((await call("PATCH", "/api/v1/users/bob", { auth: admin, body: { disabled: false } })).status, 200);
  assert.is((await login("bob")).status, 200);

  const newPassword = "another-password-for-bob";
  const changed = await call("PATCH", "/api/v1/users/bob", { auth: admin, body: { password: newPassword } });
  assert.is(changed.status, 200);
  assert.not.match(JSON.stringify(changed.body), newPassword);
  assert.is((await login("bob")).status, 401, "the old password no longer works");
  assert.is((await login("bob", newPassword)).status, 200);

  const demote = await call("PATCH", "/api/v1/users/root", { auth: admin, body: { role: "viewer" } });
  assert.is(demote.status, 409);
  assert.match(String(demote.body.detail), /last enabled admin/);

  const created = await call("POST", "/api/v1/users", {
    auth: admin,
    body: { username: "carol", password: "carols-password-1", role: "finance", sites: ["s1"] },
  });
  assert.is(created.status, 201);
  assert.not.ok("password" in created.body || "passwordHash" in created.body);
  const again = await call("POST", "/api/v1/users", {
    auth: admin,
    body: { username: "carol", password: "carols-password-1", role: "finance" },
  });
  assert.is(again.status, 409);
  const short = await call("POST", "/api/v1/users", {
    auth: admin,
    body: { username: "dave", password: "short", role: "viewer" },
  });
  assert.is(short.status, 400);
  assert.match(String(short.body.detail), /password/);
  const alice = String((await login("alice")).body.accessToken);
  assert.is((await call("GET", "/api/v1/users", { auth: alice })).status, 403, "users are admin's");
  const list = await call("GET", "/api/v1/users", { auth: admin });
  assert.equal(
    (list.body.items as Array<{ username: string }>).map((u) => u.username),
    ["alice", "bob", "carol", "root"],
  );
});

test.run();
