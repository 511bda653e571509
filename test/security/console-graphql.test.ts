/**
 * Issue 16, the console's GraphQL door (/api/graphql), attacked with real
 * logins: money read by a viewer through aliases, fragments and nested
 * fields; another site through arguments and nesting; a mutation by cookie
 * alone; unauthenticated introspection; a mutation that leaves no audit row;
 * a subscription that outlives its logout.
 */
import { randomUUID } from "node:crypto";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { ConsoleCloud, sessionCookie } from "./console-harness.ts";

const it = suite("console: GraphQL attacks");
const cloud = new ConsoleCloud();
it.before(() => cloud.start());
it.after(() => cloud.close());

const codes = (a: { body: { errors?: Array<{ extensions?: { code?: string } }> } }) =>
  (a.body.errors ?? []).map((e) => e.extensions?.code);

it("a viewer gets no money through aliases, fragments or a site's nested fields", async () => {
  const { access } = await cloud.login("vera");
  const queries = [
    'query { a: ledger(site: "s1") { items { amount } } }',
    'query { s: site(id: "s1") { w: wallets { items { balance } } } }',
    'query { ...F } fragment F on Query { payments(site: "s1") { items { amount } } }',
    "query { sites { ... on Site { ledger { items { amount } } } } }",
    'query { wallet(site: "s1", member: "m-ada") { balance } }',
  ];
  for (const query of queries) {
    const a = await cloud.gql(query, { bearer: access });
    assert.ok(codes(a).includes("FORBIDDEN"), `${query}: ${a.text}`);
    assert.not.match(a.text, /"(amount|balance)":\s*-?\d/, query);
  }
});

it("a token of site s1 reads nothing of s2 through an argument, a listing or the subscription", async () => {
  const { access } = await cloud.login("fred");
  for (const query of [
    'query { site(id: "s2") { id } }',
    'query { device(site: "s2", id: "x1") { id } }',
    'query { checkins(site: "s2") { items { id } } }',
    'query { ledger(site: "s2") { items { id } } }',
    'query { wallets(site: "s2") { items { memberId } } }',
  ]) {
    const a = await cloud.gql(query, { bearer: access });
    assert.ok(codes(a).includes("FORBIDDEN"), `${query}: ${a.text}`);
  }
  const sites = await cloud.gql("query { sites { id } }", { bearer: access });
  assert.equal(sites.body.data, { sites: [{ id: "s1" }] });
  const sub = await cloud.call("POST", "/api/graphql", {
    bearer: access,
    headers: { accept: "text/event-stream" },
    body: { query: 'subscription { live(site: "s2") { type } }' },
  });
  assert.match(sub.text, /FORBIDDEN/);
});

it("no schema, no introspection and no query without a token; device credentials are not one", async () => {
  for (const o of [{}, { basic: "s1/k1:device-secret-0123456789" }]) {
    const a = await cloud.gql("query { __schema { types { name } } }", o);
    assert.is(a.status, 401, a.text);
    assert.not.match(a.text, /Wallet|LedgerEntry/);
  }
});

it("a mutation by the session cookie alone (a forged cross-site POST) is refused", async () => {
  const { access } = await cloud.login("olga", { mode: "cookie" });
  const a = await cloud.gql(
    'mutation { sendCommand(site: "s1", device: "k1", command: "self-test", waitSeconds: 0) { id } }',
    {
      cookie: sessionCookie(access),
    },
  );
  assert.ok(codes(a).includes("FORBIDDEN"), a.text);
  assert.not.ok(
    cloud.published.some((t) => t.endsWith("/cmd/self-test")),
    "nothing sent to the kiosk",
  );
});

it("a refund and a command made through GraphQL are in the audit log, as REST's are (and a refused one too)", async () => {
  const paymentId = await cloud.purchase(randomUUID());
  const finance = await cloud.login("fiona");
  const refund = await cloud.gql(
    `mutation { refundPayment(id: "${paymentId}", amount: 200, reason: "late start", idempotencyKey: "${randomUUID()}") { replayed } }`,
    { bearer: finance.access },
  );
  assert.equal(refund.body.data, { refundPayment: { replayed: false } }, refund.text);
  const operator = await cloud.login("olga");
  const command = await cloud.gql(
    'mutation { sendCommand(site: "s1", device: "k1", command: "self-test", waitSeconds: 0) { id } }',
    { bearer: operator.access },
  );
  assert.type(command.body.data?.sendCommand?.id, "string", command.text);
  const viewer = await cloud.login("vera");
  const refused = await cloud.gql(
    `mutation { refundPayment(id: "${paymentId}", amount: 100, reason: "just because", idempotencyKey: "${randomUUID()}") { replayed } }`,
    { bearer: viewer.access },
  );
  assert.ok(codes(refused).includes("FORBIDDEN"));

  const rows = await cloud.audit();
  const fiona = rows.find((r) => r.actor === "fiona" && String(r.action).includes("refundPayment"));
  assert.ok(fiona, `no audit row for fiona's GraphQL refund: ${JSON.stringify(rows.map((r) => [r.actor, r.action]))}`);
  assert.is(fiona.site, "s1");
  assert.is(fiona.target, `payment ${paymentId}`);
  assert.is(fiona.status, 200);
  const olga = rows.find((r) => r.actor === "olga" && String(r.action).includes("sendCommand"));
  assert.ok(olga, "no audit row for olga's GraphQL command");
  assert.is(olga.target, "device s1/k1");
  const vera = rows.find((r) => r.actor === "vera" && String(r.action).includes("refundPayment"));
  assert.ok(vera, "no audit row for vera's refused GraphQL refund");
  assert.is(vera.status, 403);
});

it("a subscription ends with its login session: after logout no further event is delivered", async () => {
  const { access, refresh } = await cloud.login("vera");
  const sub = await cloud.subscribe('subscription { live(types: ["checkin"]) { type data } }', { bearer: access });
  const first = sub.next();
  await cloud.listening(1);
  cloud.live.push({ type: "checkin", site: "s1", device: "k1", at: new Date().toISOString(), data: { n: 1 } });
  assert.equal(await first, { data: { live: { type: "checkin", data: { n: 1 } } } });

  const out = await cloud.call("POST", "/api/v1/auth/logout", { body: { refreshToken: refresh } });
  assert.is(out.status, 204);
  const after = sub.next();
  cloud.live.push({ type: "checkin", site: "s1", device: "k1", at: new Date().toISOString(), data: { n: 2 } });
  const frame = await after;
  assert.ok(
    frame === null || frame.errors !== undefined,
    `an event reached a logged-out session: ${JSON.stringify(frame)}`,
  );
  await sub.close();
  await cloud.listening(0);
});

it("a page of another origin gets no CORS grant to read GraphQL answers (yoga grants any origin by default)", async () => {
  const { access } = await cloud.login("fiona");
  const origin = "https://evil.example";
  const preflight = await cloud.call("OPTIONS", "/api/graphql", {
    headers: {
      origin,
      "access-control-request-method": "POST",
      "access-control-request-headers": "authorization, content-type",
    },
  });
  const read = await cloud.gql("query { me { username } }", { bearer: access, headers: { origin } });
  for (const a of [preflight, read]) {
    const granted = a.headers.get("access-control-allow-origin");
    assert.ok(granted === null || (granted !== origin && granted !== "*"), `CORS grant: ${granted}`);
    assert.is.not(a.headers.get("access-control-allow-credentials"), "true");
  }
});

it("no query too big, too deep, too wide or batched runs", async () => {
  const { access } = await cloud.login("vera");
  const aliases = Array.from({ length: 40 }, (_, i) => `a${i}: sites { id }`).join(" ");
  const deep =
    'query { site(id: "s1") { devices { items { checkins { items { kiosk { checkins { items { kiosk { id } } } } } } } } } }';
  const wide = `query { ${Array.from({ length: 1500 }, () => "me { username }").join(" ")} }`;
  for (const query of [`query { ${aliases} }`, deep, wide]) {
    const a = await cloud.gql(query, { bearer: access });
    assert.ok((a.body.errors?.length ?? 0) > 0 && !a.body.data, `${query.slice(0, 60)}…: ${a.text.slice(0, 200)}`);
  }
  const batched = await cloud.call("POST", "/api/graphql", {
    bearer: access,
    body: Array.from({ length: 50 }, () => ({ query: "query { sites { id } }" })),
  });
  assert.ok(
    batched.status >= 400 || (batched.body.errors?.length ?? 0) > 0,
    `a batch ran: ${batched.text.slice(0, 200)}`,
  );
  const huge = await cloud.gql('query { checkins(site: "s1", limit: 100000000) { items { id } } }', { bearer: access });
  assert.ok(codes(huge).includes("BAD_USER_INPUT"), huge.text.slice(0, 200));
});

it("an unexpected failure is answered with an id, never SQL or a stack; the log has both", async () => {
  const { access } = await cloud.login("fiona");
  // A database that fails under the query (a bad cursor would be an intended error, answered as such).
  await cloud.db.exec("ALTER TABLE ledger_entries RENAME TO ledger_entries_gone");
  let a: Awaited<ReturnType<typeof cloud.gql>>;
  try {
    a = await cloud.gql('query { ledger(site: "s1") { items { id amount } } }', { bearer: access });
  } finally {
    await cloud.db.exec("ALTER TABLE ledger_entries_gone RENAME TO ledger_entries");
  }
  assert.equal(codes(a), ["INTERNAL_SERVER_ERROR"], a.text);
  const id = /error id ([0-9a-f-]{36})/.exec(a.body.errors[0].message)?.[1];
  assert.ok(id, a.text);
  assert.not.match(a.text, /SELECT|ledger_entries|relation|at .*\.ts:\d+|node_modules/);
  const line = cloud.logged.find((l) => l.includes(id));
  assert.ok(line, "logged with its id");
  assert.match(line, /ledger_entries/, "the log has what went wrong");
});

it.run();
