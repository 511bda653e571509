/**
 * Login brute force, as an attacker runs it (Hono's app.request, a Postgres schema of its own; the
 * client address is the X-Forwarded-For hop, as behind a proxy): hammering
 * account X locks X, for growing periods, while Y logs in; one address
 * spraying many usernames is stopped; no account takes more than 100
 * failures an hour from any number of addresses; an unknown username and a
 * wrong password answer alike; and with Redis two API instances share the
 * limits (real Redis, own key prefix).
 */
import { Registry } from "@paylane/protocol";
import { Redis } from "ioredis";
import { Registry as MetricsRegistry } from "prom-client";
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { LoginLimitOptions } from "../src/accounts/login-limiter.ts";
import { OperatorStore } from "../src/accounts/store.ts";
import { createApi } from "../src/api/app.ts";
import type { Database } from "../src/db/database.ts";
import { MemoryPresence } from "../src/presence/memory-presence.ts";
import { dropRedisPrefix, openTestSchema, REDIS_URL } from "./console-db.ts";

const SECRET = "a-test-secret-of-at-least-32-characters!";
const PASSWORD = "correct horse battery staple";
const PREFIX = `test-lockout-${process.pid}:`;
let db: Database;
let drop: () => Promise<void>;
let store: OperatorStore;
const redis = new Redis(REDIS_URL, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1 });

test.before(async () => {
  ({ db, drop } = await openTestSchema("console_lockout"));
  store = new OperatorStore({ db });
  for (const username of ["x", "y", "z", "w", "v", "u", "shared"]) {
    await store.create({ username: `user-${username}`, password: PASSWORD, role: "viewer" });
  }
  await redis.connect();
});
test.after(async () => {
  await dropRedisPrefix(redis, PREFIX).catch(() => undefined);
  redis.disconnect();
  await drop();
});

function api(loginLimits: Partial<LoginLimitOptions>, shared?: Redis) {
  return createApi({
    db,
    presence: new MemoryPresence(),
    registry: () => new Registry({ version: 1, devices: [], services: [] }),
    metrics: new MetricsRegistry(),
    health: async () => ({ status: "ok" }),
    jwtSecret: SECRET,
    loginLimits,
    rateLimit: {
      windowSeconds: 10,
      perCredential: 0,
      perAddress: 0,
      authFailures: 0,
      trustProxy: true,
      redis: shared,
      prefix: PREFIX,
    },
  });
}

async function login(
  app: ReturnType<typeof api>,
  username: string,
  password: string,
  from = "203.0.113.7",
): Promise<{ status: number; retryAfter: string | null; body: Record<string, unknown>; text: string }> {
  const res = await app.request("/api/v1/auth/login", {
    method: "POST",
    headers: { "content-type": "application/json", "x-forwarded-for": from },
    body: JSON.stringify({ username, password }),
  });
  const text = await res.text();
  return { status: res.status, retryAfter: res.headers.get("retry-after"), body: JSON.parse(text), text };
}

/** Polls `fn` until it holds, for at most `ms` of real time. */
async function eventually(fn: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`not within ${ms} ms: ${what}`);
}

test("an unknown username and a wrong password answer the same", async () => {
  const app = api({});
  const wrong = await login(app, "user-z", "not the password at all");
  const unknown = await login(app, "nobody-here", "not the password at all");
  assert.is(wrong.status, 401);
  assert.equal(unknown, wrong, "status, headers that matter and body are identical");
  assert.not.match(wrong.text, "not the password");
});

test("hammering X locks X (its owner too) for growing periods, answered 429 with Retry-After; Y logs in meanwhile", async () => {
  const app = api({ freeFailures: 5, firstLockSeconds: 1.5, maxLockSeconds: 60 });
  for (let i = 0; i < 5; i++) assert.is((await login(app, "user-x", `guess-${i}`, "198.51.100.1")).status, 401);
  const locked = await login(app, "user-x", "guess-5", "198.51.100.1");
  assert.is(locked.status, 429);
  assert.is(locked.retryAfter, "2", "1.5 s, rounded up");
  assert.match(String(locked.body.detail), /retry after 2 s/);
  const owner = await login(app, "user-x", PASSWORD, "192.0.2.50");
  assert.is(owner.status, 429, "the owner is locked too, from anywhere (by design)");
  const other = await login(app, "user-y", PASSWORD, "198.51.100.1");
  assert.is(other.status, 200, "another account logs in, even from the attacker's address");
  const ghost = await login(app, "no-such-user", "guess", "198.51.100.9");
  for (let i = 0; i < 5; i++) await login(app, "no-such-user", `guess-${i}`, "198.51.100.9");
  const ghostLocked = await login(app, "no-such-user", "guess", "198.51.100.9");
  assert.is(ghost.status, 401);
  assert.is(ghostLocked.status, 429, "an unknown username locks alike: a lock tells nothing");
  assert.equal(Object.keys(ghostLocked.body).sort(), Object.keys(locked.body).sort());

  // The lock ends; the next failure locks twice as long (1.5 s → 3 s). Polled: the limiter counts in real time.
  await eventually(
    async () => (await login(app, "user-x", "guess-6", "198.51.100.1")).status === 401,
    8000,
    "lock 1 ends",
  );
  const t0 = Date.now();
  await eventually(
    async () => (await login(app, "user-x", PASSWORD, "192.0.2.50")).status === 200,
    12000,
    "lock 2 ends",
  );
  assert.ok(Date.now() - t0 >= 2500, `the second lock lasted about 3 s (${Date.now() - t0} ms)`);
});

test("one address spraying many usernames is refused; other addresses are not", async () => {
  const app = api({ perAddressPerHour: 10 });
  for (let i = 0; i < 10; i++)
    assert.is((await login(app, `sprayed-${i}`, "Winter2026!", "198.51.100.66")).status, 401);
  const refused = await login(app, "sprayed-10", "Winter2026!", "198.51.100.66");
  assert.is(refused.status, 429);
  assert.ok(Number(refused.retryAfter) > 60, "the address waits for its hour");
  const alsoRefused = await login(app, "user-w", PASSWORD, "198.51.100.66");
  assert.is(alsoRefused.status, 429, "everything from that address");
  assert.is((await login(app, "user-w", PASSWORD, "192.0.2.10")).status, 200, "another address logs in");
});

test("no account takes more than 100 failed tries an hour, from any number of addresses, even sent all at once", async () => {
  const app = api({ freeFailures: 1000 });
  // A burst: each try is counted before its password is checked, so 110 at once cannot all be checked.
  const tries = await Promise.all(
    Array.from({ length: 110 }, (_, i) => login(app, "user-v", `guess-${i}`, `10.9.${i >> 8}.${i & 255}`)),
  );
  const statuses = tries.map((r) => r.status);
  assert.is(statuses.filter((s) => s === 401).length, 100);
  assert.is(statuses.filter((s) => s === 429).length, 10);
  const over = await login(app, "user-v", "guess-101", "10.10.0.1");
  assert.is(over.status, 429);
  assert.ok(Number(over.retryAfter) > 60);
  const owner = await login(app, "user-v", PASSWORD, "10.10.0.2");
  assert.is(owner.status, 429, "the 101st try is refused whatever the password");
  assert.is((await login(app, "user-u", PASSWORD, "10.10.0.3")).status, 200);
});

test("with Redis, two API instances share the limits", async () => {
  const a = api({ freeFailures: 3, firstLockSeconds: 30 }, redis);
  const b = api({ freeFailures: 3, firstLockSeconds: 30 }, redis);
  assert.is((await login(a, "user-shared", "guess-1", "198.51.100.20")).status, 401);
  assert.is((await login(b, "user-shared", "guess-2", "198.51.100.21")).status, 401);
  assert.is((await login(a, "user-shared", "guess-3", "198.51.100.22")).status, 401);
  const onB = await login(b, "user-shared", PASSWORD, "198.51.100.23");
  assert.is(onB.status, 429, "instance b knows of a's failures");
  assert.ok(Number(onB.retryAfter) >= 29);
  const keys = await redis.keys(`${PREFIX}rl:login-*`);
  assert.ok(keys.length > 0, "counted in Redis under the prefix");
  assert.ok(
    keys.every((k) => !k.includes("user-shared")),
    "keys hold a digest, not the username",
  );
});

test.run();
