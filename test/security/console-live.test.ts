/**
 * Issue 16, the live feed (/api/v1/live) attacked over a real socket with
 * real logins: the session cookie from pages that only look like the
 * cloud's (user-info and suffix tricks, a sandboxed page's "null"), tokens
 * that are not access tokens, a logged-out session, a viewer asking for
 * payments, a site's token asking for another site (twice in one query
 * string), and a client sending what the feed never reads (an oversized
 * frame) without harming the feed of others.
 */
import { LIVE_EVENT_TYPES, type LiveEvent, SESSION_COOKIE } from "@paylane/protocol";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import WebSocket from "ws";
import { within } from "../support/within.ts";
import { ConsoleCloud, DEVICE_SECRET } from "./console-harness.ts";

const it = suite("console: live feed attacks");
const cloud = new ConsoleCloud();
let base = "";
let port = 0;
it.before(async () => {
  await cloud.start();
  ({ live: base, port } = await cloud.serve());
});
it.after(() => cloud.close());

interface Client {
  ws: WebSocket;
  frames: Array<Record<string, unknown>>;
  closed: Promise<{ code: number; reason: string }>;
}

/** A connected client (its hello arrived), or a rejection carrying the upgrade's HTTP status. */
function connect(query: string, headers: Record<string, string>, origin?: string): Promise<Client> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${base}${query}`, { headers, ...(origin ? { origin } : {}) });
    const frames: Array<Record<string, unknown>> = [];
    const closed = new Promise<{ code: number; reason: string }>((r) =>
      ws.on("close", (code, reason) => r({ code, reason: reason.toString() })),
    );
    ws.on("message", (data) => frames.push(JSON.parse(data.toString())));
    ws.on("unexpected-response", (_req, res) => {
      res.resume();
      reject(Object.assign(new Error(`refused ${res.statusCode}`), { status: res.statusCode }));
    });
    ws.on("error", reject);
    ws.once("message", () => resolve({ ws, frames, closed }));
  });
}

async function refused(query: string, headers: Record<string, string>, origin?: string): Promise<number> {
  try {
    const c = await within(connect(query, headers, origin), 5000, "the upgrade's answer");
    c.ws.close();
  } catch (err) {
    const status = (err as { status?: number }).status;
    if (status) return status;
    throw err;
  }
  throw new Error(`the upgrade ${query} was accepted`);
}

const event = (type: LiveEvent["type"], site: string, n: number): LiveEvent => ({
  type,
  site,
  device: site === "s1" ? "k1" : "x1",
  at: new Date().toISOString(),
  data: { n },
});

/** Pushes `events`, then a marker every client receives, and waits for it at `clients`. */
async function deliver(clients: Client[], events: LiveEvent[]): Promise<void> {
  for (const e of events) cloud.live.push(e);
  const marker = event("checkin", "s1", -1);
  cloud.live.push(marker);
  await within(
    (async () => {
      while (!clients.every((c) => c.frames.some((f) => (f.data as { n?: number })?.n === -1))) {
        await new Promise((r) => setTimeout(r, 5));
      }
    })(),
    5000,
    "the marker event",
  );
}

it("the session cookie opens the feed from this cloud's own pages only", async () => {
  const { access } = await cloud.login("vera", { mode: "cookie" });
  const cookie = { cookie: `${SESSION_COOKIE}=${access}` };
  for (const origin of [
    "https://evil.example",
    `http://127.0.0.1:${port}@evil.example`,
    `http://127.0.0.1:${port}.evil.example`,
    `http://127.0.0.1.evil.example:${port}`,
    `http://127.0.0.1:${port + 1}`,
    "null",
  ]) {
    assert.is(await refused("", cookie, origin), 403, origin);
  }
  assert.is(await refused("", cookie), 403, "no Origin at all");
  const own = await connect("", cookie, `http://127.0.0.1:${port}`);
  own.ws.close();
});

it("a refresh token, device credentials or a logged-out session open nothing", async () => {
  const { access, refresh } = await cloud.login("vera");
  assert.is(await refused("", { authorization: `Bearer ${refresh}` }), 401);
  const basic = Buffer.from(`s1/k1:${DEVICE_SECRET}`).toString("base64");
  assert.is(await refused("", { authorization: `Basic ${basic}` }), 401);
  assert.is((await cloud.call("POST", "/api/v1/auth/logout", { body: { refreshToken: refresh } })).status, 204);
  assert.is(await refused("", { authorization: `Bearer ${access}` }), 401);
});

it("a viewer never gets payments; a site's token never gets another site's events", async () => {
  const viewer = await cloud.login("vera");
  const bearer = { authorization: `Bearer ${viewer.access}` };
  assert.is(await refused("?types=payment", bearer), 403);
  assert.is(await refused("?types=checkin,payment", bearer), 403);
  const fred = await cloud.login("fred");
  const scoped = { authorization: `Bearer ${fred.access}` };
  assert.is(await refused("?site=s2", scoped), 403);

  const v = await connect("", bearer);
  // The parameter twice: the first one counts, the second is not a way around the check.
  const doubled = await connect("?types=checkin&types=payment", bearer);
  assert.equal(v.frames[0]?.types, ["checkin", "device-status", "alert", "command-result"]);
  const f = await connect("", scoped);
  const twice = await connect("?site=s1&site=s2", scoped);
  await deliver(
    [v, doubled, f, twice],
    LIVE_EVENT_TYPES.flatMap((t, i) => [event(t, "s1", i + 1), event(t, "s2", i + 11)]),
  );
  for (const c of [v, doubled]) {
    assert.not.ok(
      c.frames.some((x) => x.type === "payment"),
      "a payment reached a viewer",
    );
  }
  for (const c of [f, twice]) {
    assert.not.ok(
      c.frames.some((x) => x.type !== "hello" && x.site !== "s1"),
      `another site's event: ${JSON.stringify(c.frames)}`,
    );
    assert.ok(
      c.frames.some((x) => x.type === "payment"),
      "finance of s1 gets s1's payments",
    );
  }
  for (const c of [v, doubled, f, twice]) c.ws.close();
});

it("an oversized frame from a client closes that client only", async () => {
  const { access } = await cloud.login("olga");
  const bearer = { authorization: `Bearer ${access}` };
  const attacker = await connect("", bearer);
  const bystander = await connect("", bearer);
  attacker.ws.send("x".repeat(64 * 1024));
  const { code } = await within(attacker.closed, 5000, "the attacker's close");
  assert.is(code, 1009);
  await deliver([bystander], [event("checkin", "s1", 42)]);
  assert.ok(bystander.frames.some((x) => (x.data as { n?: number })?.n === 42));
  bystander.ws.close();
});

it.run();
