/**
 * `/api/v1/live` as clients see it, over a real socket (the API on Postgres,
 * events pushed through an in-process LiveFeed): refusals answered as
 * problem+json before any upgrade, the hello frame, what each role and site
 * scope receives, the cookie from a foreign page refused (cross-site
 * WebSocket hijacking), a slow reader closed with 1013, a silent one dropped
 * by the keepalive, and every client closed (1001) when the cloud stops.
 */
import { randomBytes } from "node:crypto";
import { hashSecret, type LiveEvent, Registry, SESSION_COOKIE } from "@paylane/protocol";
import { type Listening, listen } from "@paylane/protocol/service";
import { Registry as MetricsRegistry } from "prom-client";
import { test } from "uvu";
import * as assert from "uvu/assert";
import WebSocket from "ws";
import { OperatorStore } from "../src/accounts/store.ts";
import { createApi } from "../src/api/app.ts";
import { mintOperatorToken, type Role } from "../src/api/auth.ts";
import { LiveSockets } from "../src/api/live.ts";
import type { Database } from "../src/db/database.ts";
import { migrate } from "../src/db/migrate.ts";
import { openPg } from "../src/db/pg.ts";
import type { LiveFeed } from "../src/live/live-feed.ts";
import { MemoryPresence } from "../src/presence/memory-presence.ts";
import { seedSite } from "../src/seed.ts";

const SECRET = "a-live-feed-test-secret-of-32-chars-or-more";
const PG_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const SCHEMA = `t_${randomBytes(6).toString("hex")}`;

class PushFeed implements LiveFeed {
  readonly listeners = new Set<(e: LiveEvent) => void>();
  subscribe(listener: (e: LiveEvent) => void) {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }
  push(e: Partial<LiveEvent> & Pick<LiveEvent, "type">): void {
    const event: LiveEvent = { site: "s1", device: "k1", at: new Date().toISOString(), data: {}, ...e };
    for (const l of this.listeners) l(event);
  }
}

let db: Database;
let feed: PushFeed;
let sockets: LiveSockets;
let metrics: MetricsRegistry;
let http: Listening;
let base: string;

test.before(async () => {
  // Real Postgres (a schema of its own): it starts in milliseconds where PGlite compiles its WASM first.
  db = await openPg({ url: PG_URL, schema: SCHEMA });
  await migrate(db);
  await seedSite(db, { id: "s1", name: "Venue", timezone: "UTC" });
  await seedSite(db, { id: "s2", name: "Other venue", timezone: "UTC" });
  const registry = new Registry({
    version: 1,
    devices: [{ site: "s1", device: "k1", secretHash: await hashSecret("device-secret-0123456789") }],
    services: [],
  });
  feed = new PushFeed();
  metrics = new MetricsRegistry();
  sockets = new LiveSockets({ feed, metrics, pingIntervalMs: 100, maxBufferedBytes: 64 * 1024, maxPerOperator: 3 });
  const app = createApi({
    db,
    presence: new MemoryPresence(),
    registry: () => registry,
    metrics,
    health: async () => ({ status: "ok" }),
    jwtSecret: SECRET,
    live: feed,
    liveSockets: sockets,
  });
  http = await listen(app, {
    port: 0,
    host: "127.0.0.1",
    setting: "TEST_PORT",
    configure: (server) => sockets.attach(server, app),
  });
  base = `ws://127.0.0.1:${http.port}/api/v1/live`;
});
test.after(async () => {
  await sockets.close();
  await http.close();
  await db.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
  await db.close();
});

const token = (role: Role, sites?: string[]) => mintOperatorToken(SECRET, { sub: `ops-${role}`, role, sites });

/** A connected client and every frame it got, or the HTTP refusal of its upgrade. */
interface Client {
  ws: WebSocket;
  frames: Record<string, unknown>[];
  closed: Promise<{ code: number; reason: string }>;
}

function connect(query = "", headers: Record<string, string> = {}): Promise<Client> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${base}${query}`, { headers });
    const frames: Record<string, unknown>[] = [];
    const closed = new Promise<{ code: number; reason: string }>((r) =>
      ws.on("close", (code, reason) => r({ code, reason: reason.toString() })),
    );
    ws.on("message", (data) => frames.push(JSON.parse(data.toString())));
    ws.on("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (c: Buffer) => {
        body += c.toString();
      });
      res.on("end", () =>
        reject(Object.assign(new Error(`refused ${res.statusCode}`), { status: res.statusCode, res, body })),
      );
    });
    ws.on("error", reject);
    // The hello is the first frame: connected means it arrived.
    ws.on("message", function first() {
      ws.off("message", first);
      resolve({ ws, frames, closed });
    });
  });
}

async function refusal(query: string, headers: Record<string, string> = {}) {
  try {
    const c = await connect(query, headers);
    c.ws.close();
  } catch (err) {
    const e = err as { status: number; body: string; res: { headers: Record<string, string> } };
    return { status: e.status, type: e.res.headers["content-type"], body: JSON.parse(e.body) as { detail: string } };
  }
  throw new Error("the upgrade was accepted");
}

async function until(what: string, ok: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const bearer = async (role: Role, sites?: string[]) => ({ authorization: `Bearer ${await token(role, sites)}` });

test("no token, a bad token, or a plain GET: refused before any upgrade, as problem+json", async () => {
  const none = await refusal("");
  assert.is(none.status, 401);
  assert.is(none.type, "application/problem+json");
  assert.match(none.body.detail, /Authorization: Bearer/);
  const bad = await refusal("", { authorization: "Bearer not.a.jwt" });
  assert.is(bad.status, 401);
  assert.match(bad.body.detail, /not a well-formed JWT/);
  const forged = await refusal("", {
    authorization: `Bearer ${await mintOperatorToken("another-secret-32-characters-long!!", { sub: "x", role: "admin" })}`,
  });
  assert.is(forged.status, 401);
  assert.is(sockets.clients, 0);

  const plain = await fetch(`http://127.0.0.1:${http.port}/api/v1/live`, { headers: await bearer("admin") });
  assert.is(plain.status, 426);
  assert.match(((await plain.json()) as { detail: string }).detail, /WebSocket/);
});

test("the first frame says who is connected and what they will receive", async () => {
  const c = await connect("", await bearer("viewer", ["s1"]));
  assert.equal(c.frames[0], {
    type: "hello",
    operator: "ops-viewer",
    sites: ["s1"],
    types: ["checkin", "device-status", "alert", "command-result"],
  });
  c.ws.close();
});

test("a viewer never receives a payment; finance does", async () => {
  const viewer = await connect("", await bearer("viewer"));
  const finance = await connect("", await bearer("finance"));
  feed.push({ type: "payment", data: { id: "p1", amount: -300 } });
  feed.push({ type: "checkin", data: { id: "c1" } });
  await until("both got the check-in", () => viewer.frames.length === 2 && finance.frames.length === 3);
  assert.equal(
    viewer.frames.map((f) => f.type),
    ["hello", "checkin"],
  );
  assert.equal(
    finance.frames.map((f) => f.type),
    ["hello", "payment", "checkin"],
  );
  assert.equal(finance.frames[1]!.data, { id: "p1", amount: -300 });
  // asking for payments outright is refused, naming the permission
  const asked = await refusal("?types=payment", await bearer("viewer"));
  assert.is(asked.status, 403);
  assert.match(asked.body.detail, /money:read/);
  viewer.ws.close();
  finance.ws.close();
});

test("a site-scoped operator gets only their site; ?site= and ?types= narrow", async () => {
  const scoped = await connect("", await bearer("operator", ["s1"]));
  const narrowed = await connect("?site=s2&types=alert", await bearer("admin"));
  feed.push({ type: "checkin", site: "s2", data: { id: "other-site" } });
  feed.push({ type: "checkin", site: "s2", data: { id: "other-site-2" } });
  feed.push({ type: "alert", site: "s2", data: { key: "a2" } });
  feed.push({ type: "checkin", site: "s1", data: { id: "mine" } });
  await until("the scoped operator's check-in", () => scoped.frames.length === 2);
  await until("the narrowed alert", () => narrowed.frames.length === 2);
  assert.equal(scoped.frames[1]!.data, { id: "mine" });
  assert.equal(narrowed.frames[1]!.data, { key: "a2" });
  assert.equal(narrowed.frames[0]!.sites, ["s2"]);

  const other = await refusal("?site=s2", await bearer("operator", ["s1"]));
  assert.is(other.status, 403);
  assert.match(other.body.detail, /site s2/);
  const unknown = await refusal("?types=checkin,gossip", await bearer("admin"));
  assert.is(unknown.status, 400);
  assert.match(unknown.body.detail, /"gossip" is not an event type/);
  scoped.ws.close();
  narrowed.ws.close();
});

test("the session cookie opens the feed from this cloud's own page only (no cross-site WebSocket hijacking)", async () => {
  const cookie = `${SESSION_COOKIE}=${await token("finance")}`;
  const own = `http://127.0.0.1:${http.port}`;
  const foreign = await refusal("", { cookie, origin: "https://evil.example" });
  assert.is(foreign.status, 403);
  assert.match(foreign.body.detail, /evil\.example may not open/);
  const noOrigin = await refusal("", { cookie });
  assert.is(noOrigin.status, 403);
  // another port of the same host is another origin
  const otherPort = await refusal("", { cookie, origin: "http://127.0.0.1:1" });
  assert.is(otherPort.status, 403);
  const page = await connect("", { cookie, origin: own });
  assert.is(page.frames[0]!.operator, "ops-finance");
  page.ws.close();
});

test("one operator cannot hold more than its share of connections", async () => {
  const auth = await bearer("viewer");
  const held = [];
  for (let i = 0; i < 3; i++) held.push(await connect("", auth));
  const fourth = await refusal("", auth);
  assert.is(fourth.status, 429);
  assert.match(fourth.body.detail, /ops-viewer has 3 live feed connections open/);
  // another operator is not affected
  const other = await connect("", await bearer("finance"));
  for (const c of [...held, other]) c.ws.close();
  await until("all closed", () => sockets.clients === 0);
});

test("a socket lives no longer than its token: closed with 1008 at its expiry", async () => {
  // a token of an hour, minted an hour minus a second ago
  const short = await mintOperatorToken(SECRET, {
    sub: "ops-short",
    role: "viewer",
    ttlSeconds: 3600,
    now: new Date(Date.now() - 3599_000),
  });
  const c = await connect("", { authorization: `Bearer ${short}` });
  const { code, reason } = await c.closed;
  assert.is(code, 1008);
  assert.match(reason, /token expired/);
});

test("a dashboard login's socket is closed (1008) once the operator logs out", async () => {
  await new OperatorStore({ db }).create({ username: "fiona", password: "a-long-enough-password", role: "finance" });
  const login = await fetch(`http://127.0.0.1:${http.port}/api/v1/auth/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: "fiona", password: "a-long-enough-password" }),
  });
  assert.is(login.status, 200);
  const { accessToken, refreshToken } = (await login.json()) as { accessToken: string; refreshToken: string };
  const c = await connect("", { authorization: `Bearer ${accessToken}` });
  assert.is(c.frames[0]!.operator, "fiona");
  const out = await fetch(`http://127.0.0.1:${http.port}/api/v1/auth/logout`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${accessToken}` },
    body: JSON.stringify({ refreshToken }),
  });
  assert.ok(out.status < 300, `logout answered ${out.status}`);
  const { code, reason } = await c.closed;
  assert.is(code, 1008);
  assert.match(reason, /session has ended/);
  // and the token no longer opens the feed
  const again = await refusal("", { authorization: `Bearer ${accessToken}` });
  assert.is(again.status, 401);
});

test("a client that does not read is closed with 1013 instead of buffering without end", async () => {
  const slow = await connect("", await bearer("admin"));
  const before = sockets.clients;
  // The client stops reading: the kernel's buffers fill, then the server's.
  (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();
  const big = "x".repeat(32 * 1024);
  for (let i = 0; i < 2000 && sockets.clients === before; i++) feed.push({ type: "checkin", data: { big } });
  assert.is(sockets.clients, before - 1, "the server let go of it");
  (slow.ws as unknown as { _socket: { resume(): void } })._socket.resume();
  const { code, reason } = await slow.closed;
  assert.is(code, 1013);
  assert.match(reason, /too slow/);
  assert.match(await metrics.metrics(), /paylane_live_clients_closed_total\{reason="slow"\} 1/);
});

test("a client that answers no ping is dropped by the keepalive", async () => {
  const silent = await connect("", await bearer("viewer"));
  const live = await connect("", await bearer("viewer"));
  (silent.ws as unknown as { _socket: { pause(): void } })._socket.pause();
  await until("the silent client dropped", () => sockets.clients === 1, 3000);
  // the one that answers stays
  feed.push({ type: "checkin", data: { id: "still-here" } });
  await until("the live client's event", () => live.frames.length === 2);
  live.ws.close();
  silent.ws.terminate();
  assert.match(await metrics.metrics(), /paylane_live_clients_closed_total\{reason="no-pong"\} 1/);
});

test("metrics count clients and events; a stop closes every client with 1001 and refuses new ones", async () => {
  await until("earlier clients gone", () => sockets.clients === 0);
  const a = await connect("", await bearer("viewer"));
  const b = await connect("", await bearer("admin"));
  const text = await metrics.metrics();
  assert.match(text, /paylane_live_clients 2/);
  assert.match(text, /paylane_live_events_sent_total\{type="checkin"\} \d+/);
  await sockets.close();
  assert.is((await a.closed).code, 1001);
  assert.is((await b.closed).code, 1001);
  const after = await refusal("", await bearer("admin"));
  assert.is(after.status, 503);
});

test.run();
