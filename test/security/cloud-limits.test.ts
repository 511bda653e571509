/**
 * Issue 12, the cloud API: "a 20 MB body is parsed; 431 is not
 * problem+json", and per-token and per-address rate limits answer 429 with
 * `Retry-After`. Over a real socket where the server's own handling counts
 * (413, 431); in process for the rate limits, in memory and in Redis (one
 * budget shared by every API instance).
 */
import { randomBytes } from "node:crypto";
import { connect } from "node:net";
import { Redis } from "ioredis";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { ApiHarness } from "../support/cloud-api.ts";
import { loud } from "../support/hooks.ts";

const REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
const MiB = 1024 * 1024;

async function problem(res: Response, status: number, what: string): Promise<{ detail: string; status: number }> {
  const text = await res.text();
  assert.is(res.status, status, `${what}: ${text}`);
  assert.is(res.headers.get("content-type"), "application/problem+json", what);
  const body = JSON.parse(text) as { detail: string; status: number };
  assert.is(body.status, status, what);
  return body;
}

/** One request over a fresh socket; what the server wrote back until it closed. */
function rawExchange(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let out = "";
    socket.setTimeout(10_000, () => socket.destroy(new Error("no answer within 10 s")));
    socket.on("data", (d) => {
      out += d;
    });
    socket.on("close", () => resolve(out));
    socket.on("error", (err) => (out ? resolve(out) : reject(err)));
    socket.write(request);
  });
}

// ---- bodies and headers ------------------------------------------------------

const sizes = suite("cloud: body and header limits");
const api = new ApiHarness({ db: "pg" });
let url = "";
sizes.before(
  loud("starting the API", async () => {
    await api.start();
    url = await api.serve();
  }),
);
sizes.after(loud("stopping the API", () => api.close()));

sizes(
  "a 2 MiB body is refused with 413 problem+json before it is parsed, with or without a Content-Length",
  async () => {
    const big = JSON.stringify({ note: "x".repeat(2 * MiB) });
    const kiosk = { authorization: api.device(), "content-type": "application/json" };
    await problem(await fetch(`${url}/api/v1/payments`, { method: "POST", headers: kiosk, body: big }), 413, "kiosk");
    const admin = {
      authorization: `Bearer ${await api.token("admin")}`,
      "content-type": "application/json",
      "idempotency-key": "key-413-topup",
    };
    const topup = await fetch(`${url}/api/v1/wallets/${api.site}/m-ada/topups`, {
      method: "POST",
      headers: admin,
      body: big,
    });
    const body = await problem(topup, 413, "operator");
    assert.match(body.detail, /1 MiB/);
    // chunked: no length announced, the server counts as it reads and stops at the limit
    const chunks = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < 32; i++) c.enqueue(new Uint8Array(64 * 1024).fill(0x20));
        c.close();
      },
    });
    const chunked = await fetch(`${url}/api/v1/payments`, {
      method: "POST",
      headers: kiosk,
      body: chunks,
      duplex: "half",
    } as RequestInit);
    await problem(chunked, 413, "chunked");
    // and the server is still there for everyone else
    assert.is((await fetch(`${url}/healthz`)).status, 200);
  },
);

sizes("a body just under 1 MiB is read and validated as usual (400 naming the field, not 413)", async () => {
  const res = await fetch(`${url}/api/v1/payments`, {
    method: "POST",
    headers: { authorization: api.device(), "content-type": "application/json" },
    body: JSON.stringify({ note: "x".repeat(MiB - 100) }),
  });
  const body = await problem(res, 400, "under the limit");
  assert.match(body.detail, /body/);
});

sizes("headers too large: 431 as problem+json, not Node's bare status line", async () => {
  const answer = await rawExchange(
    api.port,
    `GET /api/v1/checkins HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Filler: ${"a".repeat(64 * 1024)}\r\n\r\n`,
  );
  const [head, body] = answer.split("\r\n\r\n");
  assert.match(head!, /^HTTP\/1\.1 431 /);
  assert.match(head!, /content-type: application\/problem\+json/i);
  const problemBody = JSON.parse(body!) as { status: number; title: string; detail: string };
  assert.is(problemBody.status, 431);
  assert.match(problemBody.detail, /headers/);
  // a malformed request line is problem+json too
  const garbage = await rawExchange(api.port, "NOT HTTP AT ALL\r\n\r\n");
  assert.match(garbage, /^HTTP\/1\.1 400 [\s\S]*application\/problem\+json/i);
});

// ---- rate limits -----------------------------------------------------------

const limits = suite("cloud: rate limits");
const redis = new Redis(REDIS_URL, { lazyConnect: true, enableOfflineQueue: false });
const prefix = `test:${randomBytes(6).toString("hex")}:`;
const memoryApi = new ApiHarness({ db: "pg", rateLimit: { perCredential: 20, perAddress: 60, authFailures: 5 } });
let redisApis: ApiHarness[] = [];
limits.before(
  loud("starting the APIs", async () => {
    await redis.connect();
    await memoryApi.start();
    // two API instances on one Redis: one budget, as behind a load balancer
    redisApis = [0, 1].map(
      () => new ApiHarness({ db: "pg", rateLimit: { perCredential: 20, perAddress: 1000, redis, prefix } }),
    );
    for (const a of redisApis) await a.start();
  }),
);
limits.after(
  loud("stopping the APIs", async () => {
    await memoryApi.close();
    for (const a of redisApis) await a.close();
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  }),
);

/** A request from `address` (the socket's peer as the node server would pass it). */
const from = (h: ApiHarness, address: string, path: string, headers: Record<string, string> = {}) =>
  Promise.resolve(h.app.request(path, { headers }, { incoming: { socket: { remoteAddress: address } } }));

async function floodUntil429(send: () => Promise<Response>, max: number): Promise<{ ok: number; refused: Response }> {
  let ok = 0;
  for (let i = 0; i < max; i++) {
    const res = await send();
    if (res.status === 429) return { ok, refused: res };
    assert.is(res.status, 200, await res.text());
    ok++;
  }
  throw new Error(`no 429 within ${max} requests`);
}

limits("a flood from one token gets 429 with Retry-After; another token and a kiosk are unaffected", async () => {
  const a = `Bearer ${await memoryApi.token("viewer", { sub: "flooder" })}`;
  const b = `Bearer ${await memoryApi.token("viewer", { sub: "bystander" })}`;
  const path = `/api/v1/alerts?site=${memoryApi.site}`;
  const { ok, refused } = await floodUntil429(() => from(memoryApi, "10.0.0.1", path, { authorization: a }), 100);
  assert.is(ok, 20, "exactly the budget got through");
  const retryAfter = Number(refused.headers.get("retry-after"));
  assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 10, `Retry-After: ${retryAfter}`);
  const body = await problem(refused, 429, "flood");
  assert.match(body.detail, /this credential/);
  assert.is((await from(memoryApi, "10.0.0.1", path, { authorization: b })).status, 200, "another token");
  const stream = `/api/v1/sites/${memoryApi.site}/devices/k1/stream`;
  assert.is((await from(memoryApi, "10.0.0.1", stream, { authorization: memoryApi.device() })).status, 200, "a kiosk");
});

limits("a flood from one address gets 429; another address is unaffected", async () => {
  const { refused } = await floodUntil429(() => from(memoryApi, "10.0.0.2", "/healthz"), 200);
  const body = await problem(refused, 429, "address flood");
  assert.match(body.detail, /this address/);
  assert.ok(refused.headers.get("retry-after"));
  assert.is((await from(memoryApi, "10.0.0.3", "/healthz")).status, 200);
});

limits("an address that keeps failing to authenticate gets 429 before its next credential is checked", async () => {
  for (let i = 0; i < 5; i++) {
    const res = await from(memoryApi, "10.0.0.4", "/api/v1/devices", { authorization: `Bearer guess-${i}` });
    assert.is(res.status, 401);
  }
  const valid = `Bearer ${await memoryApi.token("viewer")}`;
  const blocked = await from(memoryApi, "10.0.0.4", "/api/v1/devices", { authorization: valid });
  const body = await problem(blocked, 429, "guessing address");
  assert.match(body.detail, /failed authentications/);
  assert.is((await from(memoryApi, "10.0.0.5", "/api/v1/devices", { authorization: valid })).status, 200);
});

limits("in Redis, two API instances share one token's budget; another token is unaffected", async () => {
  const [one, two] = redisApis as [ApiHarness, ApiHarness];
  const a = `Bearer ${await one.token("viewer", { sub: "flooder" })}`;
  const path = "/api/v1/devices";
  let i = 0;
  // alternate instances, as a load balancer would
  const { ok, refused } = await floodUntil429(
    () => from(i++ % 2 ? two : one, "10.0.1.1", path, { authorization: a }),
    100,
  );
  assert.is(ok, 20, "the budget is shared, not per instance");
  await problem(refused, 429, "redis flood");
  assert.ok(Number(refused.headers.get("retry-after")) >= 1);
  const b = `Bearer ${await one.token("viewer", { sub: "bystander" })}`;
  assert.is((await from(two, "10.0.1.1", path, { authorization: b })).status, 200);
  assert.ok((await redis.keys(`${prefix}rl:credential*`)).length > 0, "counted in Redis");
});

sizes.run();
limits.run();
