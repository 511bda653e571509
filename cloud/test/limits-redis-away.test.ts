/**
 * The limits while Redis is away (cloud/src/api/api-instances.ts): each API
 * instance counts in process then, and allows its share of each budget —
 * ceil(points / N), N the live instances it counted while Redis was up — so
 * two instances together allow the budget, not twice it. Real Redis behind a
 * fault proxy per test (the cut: RST every connection, refuse new ones), a
 * Postgres schema of its own, fake timers for the beats; the client address
 * is the X-Forwarded-For hop.
 */
import { randomBytes } from "node:crypto";
import { Registry } from "@paylane/protocol";
import { Redis } from "ioredis";
import { Registry as MetricsRegistry } from "prom-client";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { FakeTimers } from "../../test/support/fake-timers.ts";
import { FaultProxy } from "../../test/support/fault-proxy.ts";
import type { LoginLimitOptions } from "../src/accounts/login-limiter.ts";
import { OperatorStore } from "../src/accounts/store.ts";
import { ApiInstances, DEFAULT_BEAT_MS } from "../src/api/api-instances.ts";
import { createApi } from "../src/api/app.ts";
import type { Database } from "../src/db/database.ts";
import { EnrolLimiter } from "../src/enrolment/limiter.ts";
import { MemoryPresence } from "../src/presence/memory-presence.ts";
import { dropRedisPrefix, openTestSchema, REDIS_URL } from "./console-db.ts";

const it = suite("rate limits while Redis is away");
const SECRET = "a-test-secret-of-at-least-32-characters!";
const PASSWORD = "correct horse battery staple";
/** Failed logins an account may take an hour, for all instances together. */
const PER_ACCOUNT = 6;
/** Failures in a row before an account is locked. */
const FREE_FAILURES = 4;
/** 401 answers per address per window before 429. */
const AUTH_FAILURES = 4;
/** Failed enrolments per address per minute. */
const ENROL_FAILURES = 4;

let db: Database;
let drop: () => Promise<void>;
const admin = new Redis(REDIS_URL, { lazyConnect: true });
const prefixes: string[] = [];
const cleanups: (() => Promise<void>)[] = [];

it.before(async () => {
  ({ db, drop } = await openTestSchema("limits_redis_away"));
  const store = new OperatorStore({ db });
  for (const name of ["hourly", "locked", "solo"]) {
    await store.create({ username: `user-${name}`, password: PASSWORD, role: "viewer" });
  }
  await admin.connect();
});
it.after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  for (const prefix of prefixes) await dropRedisPrefix(admin, prefix);
  admin.disconnect();
  await drop();
});

function newPrefix(): string {
  const prefix = `test:${randomBytes(6).toString("hex")}:`;
  prefixes.push(prefix);
  return prefix;
}

/** A fault proxy in front of Redis; `cut()` resets every connection and refuses new ones, resolving when each client saw it. */
async function redisBehindProxy(): Promise<{ proxy: FaultProxy; cut: (...clients: Redis[]) => Promise<void> }> {
  const proxy = new FaultProxy({ target: { host: "127.0.0.1", port: Number(new URL(REDIS_URL).port || 6379) } });
  await proxy.start();
  cleanups.push(() => proxy.stop());
  return {
    proxy,
    async cut(...clients) {
      // Not events.once: the client's "error" (ECONNRESET) comes first and would reject it.
      const closed = clients.map((c) => new Promise((resolve) => c.once("close", resolve)));
      proxy.refuse();
      proxy.reset();
      await Promise.all(closed);
      for (const c of clients) assert.is.not(c.status, "ready", "the client knows Redis is away");
    },
  };
}

/** One API instance's Redis client (as the cloud makes it for the limits) and its beat. */
async function apiInstance(name: string, url: string, prefix: string, timers: FakeTimers) {
  const redis = new Redis(url, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1 });
  redis.on("error", () => {});
  await redis.connect();
  const fleet = new ApiInstances({ redis, instance: name, prefix, now: timers.now, timers });
  await fleet.start();
  cleanups.push(async () => {
    await fleet.stop();
    redis.disconnect();
  });
  return { redis, fleet, prefix };
}

type Instance = Awaited<ReturnType<typeof apiInstance>>;

function api(instance: Instance, loginLimits: Partial<LoginLimitOptions>) {
  return createApi({
    db,
    presence: new MemoryPresence(),
    registry: () => new Registry({ version: 1, devices: [], services: [] }),
    metrics: new MetricsRegistry(),
    health: async () => ({ status: "ok" }),
    jwtSecret: SECRET,
    loginLimits: { perAddressPerHour: 0, ...loginLimits },
    rateLimit: {
      windowSeconds: 60,
      perCredential: 0,
      perAddress: 0,
      authFailures: AUTH_FAILURES,
      trustProxy: true,
      redis: instance.redis,
      prefix: instance.prefix,
    },
  });
}

type Api = ReturnType<typeof api>;

async function login(app: Api, username: string, password: string, from: string): Promise<number> {
  const res = await app.request("/api/v1/auth/login", {
    method: "POST",
    headers: { "content-type": "application/json", "x-forwarded-for": from },
    body: JSON.stringify({ username, password }),
  });
  await res.body?.cancel();
  return res.status;
}

/** `tries` wrong passwords for `username`, sent to the apps in turn, each from an address of its own. */
async function guess(apps: Api[], username: string, tries: number): Promise<number[]> {
  const statuses: number[] = [];
  for (let i = 0; i < tries; i++) {
    statuses.push(await login(apps[i % apps.length]!, username, `guess-${i}`, `10.20.${apps.length}.${i}`));
  }
  return statuses;
}

const count = (statuses: number[], status: number) => statuses.filter((s) => s === status).length;

it("each instance counts the live ones: a clean stop leaves at once, a silent one after three beats", async () => {
  const prefix = newPrefix();
  const timers = new FakeTimers();
  const a = await apiInstance("api-a", REDIS_URL, prefix, timers);
  assert.is(a.fleet.count, 1, "alone");
  const b = await apiInstance("api-b", REDIS_URL, prefix, timers);
  assert.is(b.fleet.count, 2);
  // c's clock never moves: it beat once and then went silent, as a killed process does.
  const c = await apiInstance("api-c", REDIS_URL, prefix, new FakeTimers());
  assert.is(c.fleet.count, 3);
  assert.is(await a.fleet.beat(), 3, "a learns of b and c at its next beat");
  for (let beat = 1; beat <= 3; beat++) {
    timers.advance(DEFAULT_BEAT_MS);
    await Promise.all([a.fleet.beat(), b.fleet.beat()]);
    assert.is(a.fleet.count, 3, `c still counts ${beat} beat(s) later`);
  }
  timers.advance(DEFAULT_BEAT_MS);
  assert.is(await a.fleet.beat(), 2, "c is dropped once it is more than three beats old");
  await b.fleet.stop();
  assert.is(await a.fleet.beat(), 1, "b left at its stop");
  assert.is(timers.pending, 1, "b's beat is no longer scheduled, a's is");
});

it("Redis away, two instances: together they allow each budget once, not twice", async () => {
  const prefix = newPrefix();
  const timers = new FakeTimers();
  const { proxy, cut } = await redisBehindProxy();
  const a = await apiInstance("api-a", proxy.url(REDIS_URL), prefix, timers);
  const b = await apiInstance("api-b", proxy.url(REDIS_URL), prefix, timers);
  await a.fleet.beat();
  assert.equal([a.fleet.count, b.fleet.count], [2, 2]);
  const hourly = [a, b].map((i) => api(i, { perAccountPerHour: PER_ACCOUNT, freeFailures: 1000 }));
  const locking = [a, b].map((i) =>
    api(i, { perAccountPerHour: 0, freeFailures: FREE_FAILURES, firstLockSeconds: 600 }),
  );
  const enrol = [a, b].map((i) => new EnrolLimiter({ failuresPerMinute: ENROL_FAILURES, redis: i.redis, prefix }));

  await cut(a.redis, b.redis);
  assert.is(await a.fleet.beat(), 2, "the count seen before the outage holds");

  const perAccount = await guess(hourly, "user-hourly", 2 * PER_ACCOUNT);
  const streak = await guess(locking, "user-locked", 2 * FREE_FAILURES);
  const lockedOut: number[] = [];
  for (const app of locking) lockedOut.push(await login(app, "user-locked", PASSWORD, "192.0.2.9"));
  const badToken: number[] = [];
  for (let i = 0; i < 2 * AUTH_FAILURES; i++) {
    const res = await hourly[i % 2]!.request("/api/v1/devices", {
      headers: { authorization: "Bearer not-a-token", "x-forwarded-for": "198.51.100.77" },
    });
    await res.body?.cancel();
    badToken.push(res.status);
  }
  const enrolments: { wait: number; first: boolean }[] = [];
  for (let i = 0; i < 2 * ENROL_FAILURES; i++) enrolments.push(await enrol[i % 2]!.attempt("198.51.100.88"));

  // All at once, so a failure shows every budget.
  assert.equal(
    {
      "failed logins an account took": count(perAccount, 401),
      "failed logins before the lock": count(streak, 401),
      "the right password while locked, on a and b": lockedOut,
      "401s to one address before 429": count(badToken, 401),
      "failed enrolments allowed": enrolments.filter((e) => e.wait === 0).length,
      "refusals audited (each instance's first)": enrolments.filter((e) => e.first).length,
    },
    {
      "failed logins an account took": PER_ACCOUNT,
      "failed logins before the lock": FREE_FAILURES,
      "the right password while locked, on a and b": [429, 429],
      "401s to one address before 429": AUTH_FAILURES,
      "failed enrolments allowed": ENROL_FAILURES,
      "refusals audited (each instance's first)": 2,
    },
    `logins ${perAccount.join(" ")} | streak ${streak.join(" ")} | tokens ${badToken.join(" ")}`,
  );
});

it("Redis away, one instance: the budget is unchanged; a lock of one point stays one", async () => {
  const prefix = newPrefix();
  const { proxy, cut } = await redisBehindProxy();
  const solo = await apiInstance("api-solo", proxy.url(REDIS_URL), prefix, new FakeTimers());
  assert.is(solo.fleet.count, 1);
  const app = api(solo, { perAccountPerHour: PER_ACCOUNT, freeFailures: 1000 });
  await cut(solo.redis);
  const statuses = await guess([app], "user-solo", PER_ACCOUNT + 2);
  assert.is(count(statuses, 401), PER_ACCOUNT, statuses.join(" "));
  assert.is(count(statuses, 429), 2);
});

it.run();
