/**
 * Two full cloud instances (CloudService, each with its own pools, LISTEN
 * and Redis connections) on one Postgres schema and one Redis prefix,
 * behind a round-robin proxy (test/support/round-robin.ts) that sends each
 * request and each WebSocket upgrade to the other instance than the one
 * before, no stickiness: whatever one instance learns, the other must know
 * (issue 19). Sessions, logout, the rate limits, the failed-auth, login and
 * enrolment limits, idempotency keys, the live feed, REST and GraphQL.
 *
 * Every scenario's client has an address of its own on the loopback network
 * (127.0.0.x, passed on in X-Forwarded-For; CLOUD_TRUST_PROXY is on), so one
 * scenario's per-address budgets do not touch another's.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CloudService, type Database, openPg, parseCloudEnv, seedSite } from "@paylane/cloud";
import { Gateway } from "@paylane/gateway";
import { deviceIdentity, hashSecret, PROTOCOL_VERSION, Registry, type RegistryFile, topics } from "@paylane/protocol";
import mqtt from "mqtt";
import pino from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import WebSocket from "ws";
import { OperatorStore } from "../../cloud/src/accounts/store.ts";
import { loud } from "../support/hooks.ts";
import { RoundRobin } from "../support/round-robin.ts";
import { dropRedisPrefix, PG_URL, REDIS_URL } from "../support/site.ts";
import { within } from "../support/within.ts";

/** Requests per credential per window, for both instances together. */
const PER_CREDENTIAL = 20;
/** 401 answers per address per window before 429. */
const AUTH_FAILURES = 6;
/** Failed enrolments per address per minute before 429. */
const ENROL_FAILURES = 4;
const PASSWORD = "correct horse battery staple";

const it = suite("two API instances behind a round-robin load balancer");
const quiet = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });
const site = `t${randomBytes(4).toString("hex")}`;
const schema = `t_${randomBytes(6).toString("hex")}`;
const prefix = `test:${randomBytes(6).toString("hex")}:`;
const jwtSecret = randomBytes(32).toString("base64url");
const cloudSecret = randomBytes(18).toString("base64url");
const kioskSecret = randomBytes(18).toString("base64url");
let dir = "";
let gateway: Gateway;
let db: Database;
const instances: Record<string, CloudService> = {};
let proxy: RoundRobin;

it.before(
  loud("a gateway, two cloud instances and the proxy", async () => {
    dir = await mkdtemp(join(tmpdir(), "paylane-apis-"));
    const registryPath = join(dir, "registry.json");
    const file: RegistryFile = {
      version: 1,
      devices: [{ site, device: "k1", secretHash: await hashSecret(kioskSecret) }],
      services: [{ id: "cloud", role: "bridge", secretHash: await hashSecret(cloudSecret) }],
    };
    await Registry.save(registryPath, file);
    gateway = new Gateway({ registry: new Registry(file), port: 0, logger: quiet, metrics: new MetricsRegistry() });
    await gateway.start();
    db = await openPg({ url: PG_URL, schema });
    for (const name of ["a", "b"]) {
      const cloud = new CloudService({
        logger: quiet,
        config: parseCloudEnv({
          CLOUD_PORT: "0",
          CLOUD_INSTANCE: `apis-${name}`,
          MQTT_URL: `mqtt://127.0.0.1:${gateway.port}`,
          CLOUD_MQTT_SECRET: cloudSecret,
          REGISTRY_PATH: registryPath,
          DATABASE_URL: PG_URL,
          DATABASE_SCHEMA: schema,
          REDIS_URL,
          REDIS_PREFIX: prefix,
          CLOUD_JWT_SECRET: jwtSecret,
          CLOUD_TRUST_PROXY: "true",
          CLOUD_RATE_WINDOW_S: "60",
          CLOUD_RATE_PER_CREDENTIAL: String(PER_CREDENTIAL),
          CLOUD_RATE_AUTH_FAILURES: String(AUTH_FAILURES),
          CLOUD_ENROL_FAILURES_PER_MIN: String(ENROL_FAILURES),
        }),
      });
      await cloud.start();
      instances[name] = cloud;
      // After the first instance migrated the schema.
      if (name === "a") {
        await seedSite(db, { id: site, name: "Scale venue", timezone: "UTC" });
        const store = new OperatorStore({ db });
        await store.create({ username: "root", password: PASSWORD, role: "admin" });
        // The lockout scenario's own account: a locked root would refuse the other scenarios' logins.
        await store.create({ username: "locky", password: PASSWORD, role: "viewer" });
        await store.create({ username: "vic", password: PASSWORD, role: "viewer" });
      }
    }
    proxy = new RoundRobin([
      { name: "a", port: instances.a!.port },
      { name: "b", port: instances.b!.port },
    ]);
    await proxy.start();
  }),
);

it.after(async () => {
  console.log(`served: ${proxy?.summary()}`);
  await proxy?.stop();
  for (const cloud of Object.values(instances)) await cloud.stop();
  await gateway?.stop();
  await db?.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await db?.close();
  await dropRedisPrefix(prefix);
  await rm(dir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  /** The instance that answered (the proxy's X-Served-By). */
  by: string;
  headers: Record<string, string | string[] | undefined>;
  // biome-ignore lint/suspicious/noExplicitAny: answers are read field by field
  body: any;
}

/** One request through the proxy from client address 127.0.0.`from`. */
function call(
  from: number,
  method: string,
  path: string,
  o: { bearer?: string; basic?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { ...o.headers };
  if (o.bearer) headers.authorization = `Bearer ${o.bearer}`;
  if (o.basic) headers.authorization = `Basic ${Buffer.from(o.basic).toString("base64")}`;
  const body = o.body === undefined ? undefined : JSON.stringify(o.body);
  if (body !== undefined) headers["content-type"] = "application/json";
  return new Promise((resolve, reject) => {
    const req = request(
      { host: "127.0.0.1", port: proxy.port, method, path, headers, localAddress: `127.0.0.${from}`, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let parsed: unknown = text;
          try {
            parsed = text ? JSON.parse(text) : null;
          } catch {
            // not JSON: kept as text
          }
          resolve({
            status: res.statusCode ?? 0,
            by: String(res.headers["x-served-by"]),
            headers: res.headers,
            body: parsed,
          });
        });
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

async function login(from: number, username = "root"): Promise<{ access: string; refresh: string }> {
  const res = await call(from, "POST", "/api/v1/auth/login", {
    body: { username, password: PASSWORD, session: "token" },
  });
  assert.is(res.status, 200, `login: ${JSON.stringify(res.body)}`);
  return { access: res.body.accessToken, refresh: res.body.refreshToken };
}

/** Each instance's answers to `calls`, asserting both instances served some. */
function byInstance(answers: Answer[]): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const a of answers) {
    out[a.by] ??= [];
    out[a.by]!.push(a.status);
  }
  assert.ok(out.a && out.b, `both instances served (${JSON.stringify(out)})`);
  return out;
}

/** Prints which instance gave which answer, in order: `label: a:200 b:200 …`. */
function show(label: string, answers: Answer[]): void {
  console.log(`  ${label}: ${answers.map((a) => `${a.by}:${a.status}`).join(" ")}`);
}

/** A live-feed WebSocket through the proxy; which instance took it; its frames. */
async function liveSocket(from: number, access: string | { cookie: string; origin: string }) {
  const before = proxy.log.length;
  const frames: Record<string, unknown>[] = [];
  const ws = new WebSocket(`ws://127.0.0.1:${proxy.port}/api/v1/live`, {
    headers: typeof access === "string" ? { authorization: `Bearer ${access}` } : access,
    localAddress: `127.0.0.${from}`,
  });
  const closed = new Promise<number>((resolve) => ws.once("close", (code) => resolve(code)));
  ws.on("message", (data) => frames.push(JSON.parse(data.toString())));
  await within(
    new Promise<void>((resolve, reject) => {
      ws.once("message", () => resolve());
      ws.once("error", reject);
      ws.once("unexpected-response", (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    }),
    5000,
    "the live feed's hello",
  );
  const by = proxy.log.slice(before).find((l) => l.upgrade)?.upstream;
  return { ws, frames, closed, by: by ?? "?" };
}

/** Waits (bounded) for a frame `match` accepts. */
async function frame(frames: Record<string, unknown>[], match: (f: Record<string, unknown>) => boolean, what: string) {
  const deadline = performance.now() + 5000;
  for (;;) {
    const found = frames.find(match);
    if (found) return found;
    if (performance.now() > deadline)
      throw new Error(`timed out waiting for ${what}; frames: ${JSON.stringify(frames).slice(0, 1500)}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

it("a login on one instance is a session on both: every request alternates and is answered", async () => {
  const { access, refresh } = await login(2);
  const answers: Answer[] = [];
  for (let i = 0; i < 6; i++) answers.push(await call(2, "GET", "/api/v1/auth/me", { bearer: access }));
  show("one session, six requests", answers);
  const split = byInstance(answers);
  assert.equal([...split.a!, ...split.b!], [200, 200, 200, 200, 200, 200]);
  assert.is(answers[0]!.body.username, "root");
  // The refresh token works wherever it lands, once.
  const first = await call(2, "POST", "/api/v1/auth/refresh", { body: { refreshToken: refresh } });
  assert.is(first.status, 200);
  const again = await call(2, "POST", "/api/v1/auth/refresh", { body: { refreshToken: refresh } });
  assert.is.not(again.by, first.by);
  show("a refresh token spent, then spent again", [first, again]);
  assert.is(again.status, 401, "a refresh token spent on one instance is refused by the other (reuse)");
});

it("a logout on one instance is refused by both at once, and closes live sockets on both", async () => {
  const { access, refresh } = await login(3);
  // Both instances have just found the session live (and cached it).
  byInstance([
    await call(3, "GET", "/api/v1/auth/me", { bearer: access }),
    await call(3, "GET", "/api/v1/auth/me", { bearer: access }),
  ]);
  const sockets = [await liveSocket(3, access), await liveSocket(3, access)];
  assert.equal(sockets.map((s) => s.by).sort(), ["a", "b"]);

  const out = await call(3, "POST", "/api/v1/auth/logout", { body: { refreshToken: refresh } });
  assert.is(out.status, 204);
  const after = [
    await call(3, "GET", "/api/v1/auth/me", { bearer: access }),
    await call(3, "GET", "/api/v1/auth/me", { bearer: access }),
    await call(3, "POST", "/api/v1/auth/refresh", { body: { refreshToken: refresh } }),
    await call(3, "POST", "/api/v1/auth/refresh", { body: { refreshToken: refresh } }),
  ];
  show(`logout answered by ${out.by}, then me, me, refresh, refresh`, after);
  assert.equal(byInstance(after), { a: [401, 401], b: [401, 401] });
  // Closed at once (1008), not at the next ping 30 s later.
  const codes = await within(Promise.all(sockets.map((s) => s.closed)), 3000, "both live sockets to close");
  assert.equal(codes, [1008, 1008]);
  console.log(`  live sockets on ${sockets.map((s) => s.by).join(" and ")} closed at once: ${codes.join(", ")}`);
});

it("an account disabled from outside the API (paylane-admin's store) is refused by both instances at once", async () => {
  const { access } = await login(12, "vic");
  const me = () => call(12, "GET", "/api/v1/auth/me", { bearer: access });
  assert.equal(byInstance([await me(), await me()]), { a: [200], b: [200] });
  // What `paylane-admin user disable vic` does: the store's change, in a transaction on the database.
  const { revoked } = await new OperatorStore({ db }).update("vic", { disabled: true });
  assert.is(revoked, 1);
  const after = [await me(), await me()];
  show("account disabled on the database, then", after);
  assert.equal(byInstance(after), { a: [401], b: [401] });
});

it(`the per-credential limit is shared: ${PER_CREDENTIAL} requests in all, not ${PER_CREDENTIAL} per instance`, async () => {
  const { access } = await login(4);
  const answers: Answer[] = [];
  for (let i = 0; i < PER_CREDENTIAL + 10; i++)
    answers.push(await call(4, "GET", "/api/v1/auth/me", { bearer: access }));
  const ok = answers.filter((a) => a.status === 200).length;
  const limited = answers.filter((a) => a.status === 429);
  show(`one credential, ${answers.length} requests`, answers);
  byInstance(limited);
  assert.is(ok, PER_CREDENTIAL, `${ok} answered before the limit`);
  assert.is(limited.length, 10);
  assert.is(limited[0]!.body.budget, "credential");
  assert.ok(Number(limited[0]!.headers["retry-after"]) >= 1);
});

it(`failed authentications from one address are counted once: 429 after ${AUTH_FAILURES} in all`, async () => {
  const answers: Answer[] = [];
  for (let i = 0; i < AUTH_FAILURES + 3; i++)
    answers.push(await call(5, "GET", "/api/v1/auth/me", { bearer: "not-a-token" }));
  assert.equal(
    answers.map((a) => a.status),
    [...Array(AUTH_FAILURES).fill(401), 429, 429, 429],
  );
  show("a bad token from one address", answers);
  byInstance(answers.slice(0, AUTH_FAILURES));
  assert.is(answers[AUTH_FAILURES]!.body.budget, "auth-failures");
  // Another address is not touched by it.
  assert.is((await call(6, "GET", "/api/v1/auth/me", { bearer: "not-a-token" })).status, 401);
});

it("a login lockout set by failures on both instances holds on both", async () => {
  const failures: Answer[] = [];
  // The default limits: the fifth failure in a row locks the account (1 s, then doubling).
  for (let i = 0; i < 5; i++) {
    failures.push(
      await call(7, "POST", "/api/v1/auth/login", {
        body: { username: "locky", password: `wrong ${i}`, session: "token" },
      }),
    );
  }
  const split = byInstance(failures);
  assert.equal([...split.a!, ...split.b!], [401, 401, 401, 401, 401]);
  // Even the right password waits: one instance alone has seen 2 or 3 failures, under the lock's 5.
  const locked = await call(7, "POST", "/api/v1/auth/login", {
    body: { username: "locky", password: PASSWORD, session: "token" },
  });
  show("five wrong passwords, then the right one", [...failures, locked]);
  assert.is(locked.status, 429, JSON.stringify(locked.body));
  assert.match(locked.body.detail, /too many failed logins/);
});

it(`failed enrolments from one address are counted once: 429 after ${ENROL_FAILURES} in all`, async () => {
  const answers: Answer[] = [];
  for (let i = 0; i < ENROL_FAILURES + 2; i++) answers.push(await call(8, "POST", "/api/v1/enrol", { body: {} }));
  assert.equal(
    answers.map((a) => a.status),
    [...Array(ENROL_FAILURES).fill(400), 429, 429],
  );
  show("malformed enrolments from one address", answers);
  byInstance(answers);
  assert.is(answers[ENROL_FAILURES]!.body.reason, "rate-limited");
});

it("one Idempotency-Key sent to both instances at once credits the wallet once", async () => {
  const { access } = await login(9);
  const wallet = `/api/v1/wallets/${site}/m-ada`;
  const before = (await call(9, "GET", wallet, { bearer: access })).body.balance as number;
  const ROUNDS = 5;
  let replays = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const key = randomUUID();
    const topup = () =>
      call(9, "POST", `${wallet}/topups`, {
        bearer: access,
        headers: { "idempotency-key": key },
        body: { amount: 500, currency: "EUR", note: "scale test" },
      });
    const pair = await Promise.all([topup(), topup()]);
    assert.equal(pair.map((a) => a.by).sort(), ["a", "b"]);
    assert.equal(
      pair.map((a) => a.status),
      [201, 201],
    );
    assert.is(pair[0]!.body.id, pair[1]!.body.id, "the same entry answered twice");
    assert.equal(pair.map((a) => a.headers["idempotent-replayed"] ?? "false").sort(), ["false", "true"]);
    replays++;
  }
  const after = (await call(9, "GET", wallet, { bearer: access })).body.balance as number;
  assert.is(after - before, ROUNDS * 500);
  console.log(
    `  ${ROUNDS} top-up keys, each sent to a and b at once: ${ROUNDS} entries, ${replays} replayed answers, balance +${after - before}`,
  );

  // A kiosk's payment: its key in the body, both instances at once.
  const paymentKey = randomUUID();
  const pay = () =>
    call(9, "POST", "/api/v1/payments", {
      basic: `${site}/k1:${kioskSecret}`,
      body: {
        key: paymentKey,
        memberId: "m-ada",
        amount: 250,
        currency: "EUR",
        itemId: "coffee",
        at: new Date().toISOString(),
      },
    });
  const payments = await Promise.all([pay(), pay()]);
  assert.equal(payments.map((a) => a.by).sort(), ["a", "b"]);
  assert.equal(
    payments.map((a) => a.status),
    [200, 200],
  );
  assert.is(payments[0]!.body.status, "approved", JSON.stringify(payments[0]!.body));
  assert.is(payments[0]!.body.paymentId, payments[1]!.body.paymentId);
  const { rows } = await db.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM ledger_entries WHERE site_id = $1 AND kind = 'purchase' AND amount = -250",
    [site],
  );
  assert.is(rows[0]!.n, 1, "one purchase in the ledger");
  show("one payment key, sent to both at once", payments);
});

it("a live feed socket on either instance sees a status and a payment committed through the other", async () => {
  const { access } = await login(10);
  const sockets = [await liveSocket(10, access), await liveSocket(10, access)];
  assert.equal(sockets.map((s) => s.by).sort(), ["a", "b"]);

  // A kiosk comes online: both instances' bridges hear it, each feed delivers it once.
  const kiosk = { site, device: "k1" };
  const client = await mqtt.connectAsync(
    `mqtt://127.0.0.1:${gateway.port}`,
    {
      clientId: deviceIdentity.clientId(kiosk),
      username: deviceIdentity.username(kiosk),
      password: kioskSecret,
      protocolVersion: 4,
      reconnectPeriod: 0,
    },
    false,
  );
  try {
    await client.publishAsync(
      topics.status(kiosk),
      JSON.stringify({
        state: "online",
        version: "9.9.9",
        bootedAt: new Date().toISOString(),
        protocol: PROTOCOL_VERSION,
      }),
      { qos: 1, retain: true },
    );
    for (const s of sockets) {
      await frame(
        s.frames,
        (f) => f.type === "device-status" && f.device === "k1",
        `k1 online on the socket of ${s.by}`,
      );
    }
  } finally {
    await client.endAsync(true);
  }

  // A payment committed by whichever instance the proxy picks: both sockets see it.
  const key = randomUUID();
  const paid = await call(10, "POST", "/api/v1/payments", {
    basic: `${site}/k1:${kioskSecret}`,
    body: { key, memberId: "m-grace", amount: 250, currency: "EUR", itemId: "coffee", at: new Date().toISOString() },
  });
  assert.is(paid.status, 200, JSON.stringify(paid.body));
  assert.is(paid.body.status, "approved", JSON.stringify(paid.body));
  for (const s of sockets) {
    const got = await frame(
      s.frames,
      (f) => f.type === "payment" && (f.data as { id?: string }).id === paid.body.paymentId,
      `the payment on the socket of ${s.by}`,
    );
    assert.is(got.site, site);
  }
  console.log(
    `  live feed: k1 online (heard by both bridges) and the payment committed by ${paid.by} reached the sockets on ${sockets.map((s) => s.by).join(" and ")}`,
  );
  for (const s of sockets) s.ws.close();
});

it("the dashboard's cookies work on both instances, for reads only, and its cookie WebSocket on either", async () => {
  const res = await call(13, "POST", "/api/v1/auth/login", {
    body: { username: "root", password: PASSWORD, session: "cookie" },
  });
  assert.is(res.status, 200);
  const setCookies = ([] as string[]).concat(res.headers["set-cookie"] ?? []);
  const cookie = setCookies.map((c) => c.split(";")[0]!).join("; ");
  assert.match(cookie, /paylane_session=/);
  const reads = [
    await call(13, "GET", "/api/v1/auth/me", { headers: { cookie } }),
    await call(13, "GET", "/api/v1/auth/me", { headers: { cookie } }),
  ];
  show("cookie reads", reads);
  assert.equal(byInstance(reads), { a: [200], b: [200] });
  // A write by cookie alone is what a page of another site could make the browser send: refused on both.
  const write = () =>
    call(13, "POST", `/api/v1/wallets/${site}/m-ada/topups`, {
      headers: { cookie, "idempotency-key": randomUUID() },
      body: { amount: 100, currency: "EUR" },
    });
  const writes = [await write(), await write()];
  show("cookie-only writes", writes);
  assert.equal(byInstance(writes), { a: [401], b: [401] });
  // The cookie upgrade needs this host's own Origin: the proxy kept the Host header, so it holds on either.
  const origin = `http://127.0.0.1:${proxy.port}`;
  const sockets = [await liveSocket(13, { cookie, origin }), await liveSocket(13, { cookie, origin })];
  assert.equal(sockets.map((s) => s.by).sort(), ["a", "b"]);
  for (const s of sockets) s.ws.close();
});

it("REST and GraphQL answer the same from both instances", async () => {
  const { access } = await login(11);
  const path = `/api/v1/wallets/${site}/m-ada`;
  const rest = [await call(11, "GET", path, { bearer: access }), await call(11, "GET", path, { bearer: access })];
  assert.equal(rest.map((a) => a.by).sort(), ["a", "b"]);
  assert.equal(
    rest.map((a) => a.status),
    [200, 200],
  );
  assert.equal(rest[0]!.body, rest[1]!.body);
  assert.is(rest[0]!.headers.etag, rest[1]!.headers.etag, "the same ETag: a cached page revalidates on either");
  const query = `query($site: ID!, $member: ID!) { wallet(site: $site, member: $member) {
    site memberId memberName currency balance entries offlineBlocked updatedAt } }`;
  const gql = [
    await call(11, "POST", "/api/graphql", { bearer: access, body: { query, variables: { site, member: "m-ada" } } }),
    await call(11, "POST", "/api/graphql", { bearer: access, body: { query, variables: { site, member: "m-ada" } } }),
  ];
  assert.equal(gql.map((a) => a.by).sort(), ["a", "b"]);
  assert.equal(gql[0]!.body, gql[1]!.body);
  assert.equal(gql[0]!.body.data.wallet, rest[0]!.body, "GraphQL's wallet is REST's");
  show("REST wallet, GraphQL wallet (equal bodies)", [...rest, ...gql]);
});

it.run();
