/**
 * GraphQL at /api/graphql as a client sees it (Hono's app.request, a Postgres
 * schema of its own; PGlite's start alone took over ten seconds on a busy machine):
 * it answers what REST answers for the same thing, with the same tokens,
 * permissions and site scopes (a viewer cannot read the ledger through either
 * door); limits refuse a query before it runs; a cookie alone never writes;
 * the live feed arrives as a subscription, filtered by role and site; an
 * unexpected error reaches the client as an id, never as its text.
 */
import { randomUUID } from "node:crypto";
import { type LiveEvent, SESSION_COOKIE } from "@paylane/protocol";
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { createApi } from "../src/api/app.ts";
import { mintOperatorToken, type Role } from "../src/api/auth.ts";
import type { Database } from "../src/db/database.ts";
import {
  type ConsoleSite,
  DEVICE_SECRET,
  type FakeLiveFeed,
  openConsoleSite,
  subscriptionFrames,
} from "./console-db.ts";

const SECRET = "a-test-secret-of-at-least-32-characters!";
const NOW = new Date("2026-12-04T12:00:00Z");

let seeded: ConsoleSite;
let db: Database;
let app: ReturnType<typeof createApi>;
let live: FakeLiveFeed;
let logged: string[];
let failPresence = false;

test.before(async () => {
  seeded = await openConsoleSite("graphql", {
    now: () => NOW,
    logLevel: "error",
    telemetry: { backlog: 3, lastSeq: 13, printer: { state: "ok", paper: "near-end" }, mode: "in-service" },
  });
  ({ db, live, logged } = seeded);
  const failing = new Proxy(seeded.presence, {
    get(target, prop, receiver) {
      if (prop === "get" && failPresence) {
        return async () => {
          throw new Error('relation "secret_table" does not exist: SELECT card_number FROM secret_table');
        };
      }
      const v = Reflect.get(target, prop, receiver);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  app = seeded.api({ presence: failing, jwtSecret: SECRET });
  for (const [i, [site, device, member, at]] of [
    ["s1", "k1", "m-ada", "2026-12-04T09:00:00Z"],
    ["s1", "k1", "m-grace", "2026-12-04T10:00:00Z"],
    ["s1", "k1", "m-alan", "2026-12-04T11:00:00Z"],
    ["s2", "x1", "m-ada", "2026-12-04T11:30:00Z"],
  ].entries()) {
    const body = { memberId: member, credential: { type: "card", uid: "04A2B3C4" }, replicaVersion: 1, offline: false };
    await db.query(
      `INSERT INTO inbox (site_id, device_id, seq, entry_id, kind, outcome, at, body, received_at)
       VALUES ($1, $2, $3, $4, 'checkin', 'applied', $5, $6, $7)`,
      [site, device, i + 1, randomUUID(), at, JSON.stringify(body), NOW],
    );
  }
});
test.after(() => seeded?.drop());

const token = (role: Role, sites?: string[]) => mintOperatorToken(SECRET, { sub: `ops-${role}`, role, sites });

interface GqlAnswer {
  status: number;
  body: {
    data?: Record<string, unknown> | null;
    errors?: Array<{ message: string; path?: string[]; extensions?: { code?: string; status?: number } }>;
  };
}

async function gql(
  query: string,
  o: { role?: Role; sites?: string[]; auth?: string | null; cookie?: string; variables?: object } = {},
): Promise<GqlAnswer> {
  const headers: Record<string, string> = { "content-type": "application/json", accept: "application/json" };
  const auth = o.auth === undefined ? `Bearer ${await token(o.role ?? "admin", o.sites)}` : o.auth;
  if (auth) headers.authorization = auth;
  if (o.cookie) headers.cookie = o.cookie;
  const res = await app.request("/api/graphql", {
    method: "POST",
    headers,
    body: JSON.stringify({ query, variables: o.variables }),
  });
  return { status: res.status, body: (await res.json()) as GqlAnswer["body"] };
}

async function rest(path: string, role: Role = "admin"): Promise<Record<string, unknown>> {
  const res = await app.request(path, { headers: { authorization: `Bearer ${await token(role)}` } });
  assert.is(res.status, 200, path);
  return (await res.json()) as Record<string, unknown>;
}

const dataOf = <T>(a: GqlAnswer, field: string): T => a.body.data?.[field] as T;
const codes = (a: GqlAnswer) => (a.body.errors ?? []).map((e) => e.extensions?.code);

const CHECKIN_FIELDS = "id site device seq memberId memberName credential at receivedAt offline replicaVersion";

test("check-ins page for page as REST answers them, and a cursor of one door works in the other", async () => {
  const first = await gql(`{ checkins(site: "s1", limit: 2) { items { ${CHECKIN_FIELDS} } next } }`);
  assert.is(first.status, 200);
  assert.is(first.body.errors, undefined);
  const page = first.body.data?.checkins as { items: Array<{ memberId: string }>; next: string };
  const restPage = await rest("/api/v1/checkins?site=s1&limit=2");
  assert.equal(page, restPage);
  assert.equal(
    page.items.map((c) => c.memberId),
    ["m-alan", "m-grace"],
  );
  const second = await gql(
    `query($before: String) { checkins(site: "s1", limit: 2, before: $before) { items { memberId } next } }`,
    {
      variables: { before: restPage.next },
    },
  );
  assert.equal(second.body.data?.checkins, { items: [{ memberId: "m-ada" }], next: null });
  const bad = await gql(`{ checkins(site: "s1", before: "not-a-cursor") { next } }`);
  assert.equal(codes(bad), ["BAD_USER_INPUT"]);
  assert.match(bad.body.errors?.[0]?.message ?? "", /^before:/);
});

test("the fleet overview is the page REST answers, field for field", async () => {
  const a =
    await gql(`{ devices(site: "s1") { items { site id state lastSeen statusAt version bootedAt payments ackedSeq
    inRegistry enrolment { keyFingerprint } telemetryAt backlog ackLatencySeconds reader printer paper mode storage drift
    desiredConfigVersion reportedConfigVersion } next } }`);
  assert.is(a.body.errors, undefined);
  const page = (await rest("/api/v1/devices?site=s1")) as { items: Array<Record<string, unknown>>; next: null };
  const { device, ...row } = page.items[0] ?? {};
  assert.equal(dataOf(a, "devices"), { items: [{ ...row, id: device }], next: page.next });
});

test("a kiosk's offline payment exposure is money: null for a viewer, shown to finance (as REST)", async () => {
  await seeded.presence.setExposure(
    { site: "s1", device: "k1" },
    { currency: "EUR", offlineExposure: 750, offlinePayments: 3, cap: 5000 },
    NOW,
  );
  const query = `{ device(site: "s1", id: "k1") { payments } devices(site: "s1") { items { payments } } }`;
  const viewer = await gql(query, { role: "viewer" });
  assert.equal(viewer.body.data, { device: { payments: null }, devices: { items: [{ payments: null }] } });
  const finance = await gql(query, { role: "finance" });
  const exposure = { currency: "EUR", offlineExposure: 750, offlinePayments: 3, cap: 5000, at: NOW.toISOString() };
  assert.equal(finance.body.data, { device: { payments: exposure }, devices: { items: [{ payments: exposure }] } });
});

test("a wallet's balance and a device's status, telemetry and peripherals are REST's", async () => {
  const a = await gql(`{
    wallet(site: "s1", member: "m-ada") { memberId balance currency }
    device(site: "s1", id: "k1") {
      id state version inRegistry ackedSeq
      telemetry { backlog mode }
      peripherals { reader printer paper }
      checkins(limit: 1) { items { memberId } }
    }
  }`);
  assert.is(a.body.errors, undefined);
  const wallet = await rest("/api/v1/wallets/s1/m-ada");
  assert.equal(a.body.data?.wallet, { memberId: "m-ada", balance: wallet.balance, currency: wallet.currency });
  const devices = (await rest("/api/v1/devices?site=s1")).items as Array<Record<string, unknown>>;
  assert.equal(a.body.data?.device, {
    id: "k1",
    state: devices[0]?.state,
    version: "1.2.3",
    inRegistry: true,
    ackedSeq: 0,
    telemetry: { backlog: 3, mode: "in-service" },
    peripherals: { reader: "ok", printer: "ok", paper: "near-end" },
    checkins: { items: [{ memberId: "m-alan" }] },
  });
  assert.is(devices[0]?.state, "online");
});

test("a viewer cannot read the ledger (FORBIDDEN, REST's words) while finance can; a nested money field alone is refused", async () => {
  const viewer = await gql(`{ ledger(site: "s1") { items { id amount } } }`, { role: "viewer" });
  assert.equal(codes(viewer), ["FORBIDDEN"]);
  assert.is(
    viewer.body.errors?.[0]?.message,
    "this needs money:read, which the finance and admin roles have; the token has viewer",
  );
  assert.is(viewer.body.data, null, "nothing of the ledger");
  const restViewer = await app.request("/api/v1/ledger?site=s1", {
    headers: { authorization: `Bearer ${await token("viewer")}` },
  });
  assert.is(restViewer.status, 403, "nor through REST");
  const finance = await gql(
    `{ ledger(site: "s1", limit: 10) { items { id site memberId n kind amount currency balanceAfter origin { operator }
      authorization itemId refundOf note at recordedAt } next } }`,
    { role: "finance" },
  );
  assert.is(finance.body.errors, undefined);
  const ledger = dataOf<{ items: unknown[] }>(finance, "ledger");
  assert.is(ledger.items.length, 3, "the opening top-ups of the seed");
  assert.equal(ledger, await rest("/api/v1/ledger?site=s1&limit=10", "finance"), "what REST answers");
  const nested = await gql(`{ site(id: "s1") { name wallets { items { balance } } } }`, { role: "viewer" });
  assert.equal(codes(nested), ["FORBIDDEN"]);
  assert.equal(nested.body.errors?.[0]?.path, ["site", "wallets"]);
  assert.is(nested.body.data?.site, null, "the site, whose wallets field cannot be null, is withheld");
  const operator = await gql(`{ payments(site: "s1") { items { id } } }`, { role: "operator" });
  assert.equal(codes(operator), ["FORBIDDEN"], "an operator steers kiosks, it does not see money");
});

test("an operator scoped to site s1 reads s1 and cannot read s2", async () => {
  const sites = await gql("{ sites { id } }", { role: "viewer", sites: ["s1"] });
  assert.equal(sites.body.data?.sites, [{ id: "s1" }]);
  const own = await gql("{ checkins { items { site } } }", { role: "viewer", sites: ["s1"] });
  assert.equal(
    dataOf<{ items: Array<{ site: string }> }>(own, "checkins").items.map((c) => c.site),
    ["s1", "s1", "s1"],
    "without site: the token's only site, as REST",
  );
  for (const q of [
    `{ checkins(site: "s2") { next } }`,
    `{ device(site: "s2", id: "x1") { id } }`,
    `{ site(id: "s2") { id } }`,
    `{ devices(site: "s2") { next } }`,
  ]) {
    const other = await gql(q, { role: "viewer", sites: ["s1"] });
    assert.equal(codes(other), ["FORBIDDEN"], q);
    assert.is(other.body.errors?.[0]?.message, "this token may not touch site s2", q);
  }
  const financeOther = await gql(`{ wallet(site: "s2", member: "m-ada") { balance } }`, {
    role: "finance",
    sites: ["s1"],
  });
  assert.equal(codes(financeOther), ["FORBIDDEN"]);
});

test("no token, or a forged one, is refused with 401 before anything runs, introspection included", async () => {
  const none = await gql("{ __schema { types { name } } }", { auth: null });
  assert.is(none.status, 401);
  assert.equal(codes(none), ["UNAUTHENTICATED"]);
  assert.is(none.body.data, undefined);
  const forged = await gql("{ me { username } }", {
    auth: `Bearer ${await mintOperatorToken("another-secret-of-at-least-32-chars!!", { sub: "x", role: "admin" })}`,
  });
  assert.is(forged.status, 401);
  assert.match(forged.body.errors?.[0]?.message ?? "", /operator token refused: the token's signature does not verify/);
  const introspection = await gql("{ __schema { queryType { name } } }", { role: "viewer" });
  assert.equal(introspection.body.data, { __schema: { queryType: { name: "Query" } } });
});

test("a too-deep and a too-costly query are refused before they run; so is a flood of aliases", async () => {
  const nest = (n: number): string => (n === 0 ? "id" : `kiosk { checkins(limit: 1) { items { ${nest(n - 1)} } } }`);
  const fine = await gql(`{ checkins(site: "s1", limit: 1) { items { ${nest(1)} } } }`);
  assert.is(fine.body.errors, undefined, "depth 5");
  const deep = await gql(`{ checkins(site: "s1", limit: 1) { items { ${nest(2)} } } }`);
  assert.equal(codes(deep), ["QUERY_TOO_DEEP"]);
  assert.match(deep.body.errors?.[0]?.message ?? "", /depth limit of 8 exceeded, found 9/);
  assert.is(deep.body.data, undefined, "not executed");
  const devicePage = `device(site: "s1", id: "k1") { id state lastSeen version telemetry { backlog mode report }
    peripherals { reader printer paper } commands(limit: 5) { items { id status result } }
    checkins(limit: 5) { items { id memberId at } } activeAlerts { key summary } }`;
  const one = await gql(`{ ${devicePage} }`);
  assert.is(one.body.errors, undefined, "the device page costs about 150 of the 1000");
  const wide = Array.from({ length: 25 }, (_, i) => `d${i}: ${devicePage}`).join(" ");
  const costly = await gql(`{ ${wide} }`);
  assert.equal(codes(costly), ["QUERY_TOO_COSTLY"]);
  assert.match(costly.body.errors?.[0]?.message ?? "", /cost limit/i);
  assert.is(costly.body.data, undefined, "not executed");
  const fleet = await gql(`{ devices(site: "s1") { items { id state backlog telemetry { backlog } } next } }`);
  assert.is(fleet.body.errors, undefined, "the fleet overview's default page is well within the rows limit");
  const rowsBomb = await gql(
    `{ devices(site: "s1", limit: 1000) { items { id checkins(limit: 50) { items { kiosk { id } } } } } }`,
  );
  assert.equal(codes(rowsBomb), ["QUERY_TOO_COSTLY"], "cheap in shape, 1000 kiosks x 50 check-ins in rows");
  assert.match(rowsBomb.body.errors?.[0]?.message ?? "", /at most 50000/);
  assert.is(rowsBomb.body.data, undefined, "not executed");
  const aliases = Array.from({ length: 31 }, (_, i) => `m${i}: me { username }`).join(" ");
  const flood = await gql(`{ ${aliases} }`);
  assert.match(flood.body.errors?.[0]?.message ?? "", /more than 30 aliases/);
  const huge = await gql(`{ me { ${"username ".repeat(2100)} } }`);
  assert.match(huge.body.errors?.[0]?.message ?? "", /more that 2000 tokens/, "graphql-js words it so");
});

test("a cookie alone reads but never writes; writes need their permission (viewer, operator, finance)", async () => {
  const cookie = `${SESSION_COOKIE}=${await token("finance")}`;
  const read = await gql("{ me { username role permissions } }", { auth: null, cookie });
  assert.equal(read.body.data?.me, {
    username: "ops-finance",
    role: "finance",
    permissions: ["fleet:read", "money:read", "money:write"],
  });
  const refund = `mutation { refundPayment(id: "${randomUUID()}", reason: "late start", idempotencyKey: "cookie-key-1") { replayed } }`;
  const viaCookie = await gql(refund, { auth: null, cookie });
  assert.equal(codes(viaCookie), ["FORBIDDEN"]);
  assert.match(
    viaCookie.body.errors?.[0]?.message ?? "",
    /mutations need the access token in the Authorization header/,
  );
  const viewer = await gql(refund, { role: "viewer" });
  assert.equal(codes(viewer), ["FORBIDDEN"]);
  assert.match(viewer.body.errors?.[0]?.message ?? "", /needs money:write/);
  const command = 'mutation { sendCommand(site: "s1", device: "k1", command: "self-test") { id status } }';
  const viewerCommand = await gql(command, { role: "viewer" });
  assert.match(
    viewerCommand.body.errors?.[0]?.message ?? "",
    /needs fleet:operate, which the operator and admin roles have/,
  );
  const financeCommand = await gql(command, { role: "finance" });
  assert.equal(codes(financeCommand), ["FORBIDDEN"], "finance moves money, it does not command kiosks");
  const scoped = await gql('mutation { sendCommand(site: "s2", device: "x1", command: "self-test") { id } }', {
    role: "operator",
    sites: ["s1"],
  });
  assert.equal(codes(scoped), ["FORBIDDEN"]);
  const resolve = await gql('mutation { resolveAlert(key: "staff-called:s1/k1") { state } }', { role: "viewer" });
  assert.equal(codes(resolve), ["FORBIDDEN"]);
  const unknown = await gql('mutation { resolveAlert(key: "staff-called:s1/k1") { state } }', { role: "operator" });
  assert.equal(codes(unknown), ["NOT_FOUND"]);
});

test("finance refunds a payment: the same ledger entry and balance REST shows; a retry is replayed, a reused key refused", async () => {
  const pay = await app.request("/api/v1/payments", {
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: `Basic ${Buffer.from(`s1/k1:${DEVICE_SECRET}`).toString("base64")}`,
    },
    body: JSON.stringify({
      key: randomUUID(),
      memberId: "m-grace",
      amount: 250,
      currency: "EUR",
      itemId: "coffee",
      at: NOW.toISOString(),
    }),
  });
  const paid = (await pay.json()) as { status: string; paymentId: string };
  assert.is(paid.status, "approved");
  const mutation = `mutation($key: String!, $amount: Int) {
    refundPayment(id: "${paid.paymentId}", amount: $amount, reason: "cold coffee", idempotencyKey: $key) {
      replayed entry { kind amount balanceAfter refundOf origin { operator } }
    }
  }`;
  const first = await gql(mutation, { role: "finance", variables: { key: "refund-key-1", amount: 100 } });
  assert.is(first.body.errors, undefined);
  assert.equal(first.body.data?.refundPayment, {
    replayed: false,
    entry: {
      kind: "refund",
      amount: 100,
      balanceAfter: 850,
      refundOf: paid.paymentId,
      origin: { operator: "ops-finance" },
    },
  });
  const again = await gql(mutation, { role: "finance", variables: { key: "refund-key-1", amount: 100 } });
  assert.is(dataOf<{ replayed: boolean }>(again, "refundPayment").replayed, true);
  const reused = await gql(mutation, { role: "finance", variables: { key: "refund-key-1", amount: 50 } });
  assert.equal(codes(reused), ["IDEMPOTENCY_KEY_REUSED"]);
  const wallet = await gql('{ wallet(site: "s1", member: "m-grace") { balance } }', { role: "finance" });
  assert.equal(wallet.body.data?.wallet, { balance: (await rest("/api/v1/wallets/s1/m-grace", "finance")).balance });
  assert.equal(dataOf<{ balance: number }>(wallet, "wallet").balance, 850);
  const { rows: audit } = await db.query<{ actor: string; target: string; site: string | null; status: number }>(
    "SELECT actor, target, site, status FROM audit_log WHERE action = 'graphql refundPayment' AND target = $1 ORDER BY status",
    [`payment ${paid.paymentId}`],
  );
  assert.equal(
    audit.map((r) => [r.actor, r.target, r.site, r.status]),
    [
      ["ops-finance", `payment ${paid.paymentId}`, "s1", 200],
      ["ops-finance", `payment ${paid.paymentId}`, "s1", 200],
      ["ops-finance", `payment ${paid.paymentId}`, "s1", 422],
    ],
    "each refund call is in the audit log, the refused reuse of a key too",
  );
  const shown = await gql(`{ payment(id: "${paid.paymentId}") { refunded refundable } }`, { role: "finance" });
  const restShown = await rest(`/api/v1/payments/${paid.paymentId}`, "finance");
  assert.equal(shown.body.data?.payment, { refunded: restShown.refunded, refundable: restShown.refundable });
});

test("GET answers queries (the dashboard's cookie suffices) and never runs a mutation", async () => {
  const cookie = `${SESSION_COOKIE}=${await token("viewer")}`;
  const get = (query: string) =>
    app.request(`/api/graphql?query=${encodeURIComponent(query)}`, { headers: { cookie, accept: "application/json" } });
  const read = await get("{ me { username } }");
  assert.is(read.status, 200);
  assert.equal(await read.json(), { data: { me: { username: "ops-viewer" } } });
  const write = await get('mutation { resolveAlert(key: "staff-called:s1/k1") { state } }');
  assert.is(write.status, 405, "yoga runs mutations on POST only");
  const { rows } = await db.query(
    "SELECT 1 FROM audit_log WHERE actor = 'ops-viewer' AND action = 'graphql resolveAlert'",
  );
  assert.is(rows.length, 1, "only the earlier POST by the viewer's bearer token is audited; the GET never ran");
});

/** A subscription over server-sent events, read frame by frame. */
async function subscribe(query: string, role: Role, sites?: string[]) {
  const res = await app.request("/api/graphql", {
    method: "POST",
    headers: {
      authorization: `Bearer ${await token(role, sites)}`,
      "content-type": "application/json",
      accept: "text/event-stream",
    },
    body: JSON.stringify({ query }),
  });
  assert.match(res.headers.get("content-type") ?? "", /text\/event-stream/);
  return subscriptionFrames(res);
}

async function listening(n: number): Promise<void> {
  const deadline = Date.now() + 5000;
  while (live.listeners.size !== n) {
    if (Date.now() > deadline) throw new Error(`expected ${n} live listeners, have ${live.listeners.size}`);
    await new Promise((r) => setImmediate(r));
  }
}

const event = (type: LiveEvent["type"], site: string, data: Record<string, unknown>): LiveEvent => ({
  type,
  site,
  device: site === "s1" ? "k1" : "x1",
  at: NOW.toISOString(),
  data,
});

test("a subscription gets the live feed's events, only those of its sites and of what its role may read", async () => {
  const viewer = await subscribe("subscription { live { type site device at data } }", "viewer", ["s1"]);
  const finance = await subscribe('subscription { live(site: "s1", types: ["payment"]) { type data } }', "finance");
  // Reading starts the subscriptions (a stream is pulled, not pushed).
  const [toViewer, toFinance] = [viewer.next(), finance.next()];
  await listening(2);
  live.push(event("payment", "s1", { amount: -250 }));
  live.push(event("checkin", "s2", { memberId: "m-other-site" }));
  live.push(event("checkin", "s1", { memberId: "m-ada" }));
  assert.equal(
    await toViewer,
    {
      data: { live: { type: "checkin", site: "s1", device: "k1", at: NOW.toISOString(), data: { memberId: "m-ada" } } },
    },
    "the payment (money:read) and the other site's check-in were not sent",
  );
  assert.equal(await toFinance, { data: { live: { type: "payment", data: { amount: -250 } } } });
  await viewer.close();
  await finance.close();
  await listening(0);
  const refused = await subscribe('subscription { live(types: ["payment"]) { type } }', "viewer");
  const answer = await refused.next();
  assert.equal(
    answer?.errors?.map((e: { extensions?: { code?: string } }) => e.extensions?.code),
    ["FORBIDDEN"],
    "a viewer asking for payments is told it may not",
  );
  await refused.close();
});

test("an unexpected failure reaches the client as an error id, never its text; the log has both", async () => {
  failPresence = true;
  try {
    const a = await gql(`{ devices(site: "s1") { items { id } } }`);
    const message = a.body.errors?.[0]?.message ?? "";
    const id = /error id ([0-9a-f-]{36})/.exec(message)?.[1];
    assert.ok(id, message);
    assert.equal(codes(a), ["INTERNAL_SERVER_ERROR"]);
    assert.not.match(JSON.stringify(a.body), /secret_table|SELECT|card_number|at \//);
    const line = logged.find((l) => l.includes(id));
    assert.ok(line, "logged with its id");
    assert.match(line, /secret_table/);
  } finally {
    failPresence = false;
  }
});

test.run();
