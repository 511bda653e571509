/**
 * The kiosk's local API in-process (`app.request()`): each route's answer
 * checked against the contract's response schema, each refusal as the one
 * line of problem+json the UI shows, and the local-only guard. The same
 * guard at the socket level, against a real browser, is
 * test/security/kiosk-cross-origin.test.ts.
 */
import {
  CatalogSchema,
  type KioskRoute,
  type KioskState,
  KioskStateSchema,
  kioskApi,
  type PaymentResult,
  type PaymentSession,
  ProblemSchema,
  type TapResult,
} from "@paylane/protocol/kiosk-api";
import { Registry } from "prom-client";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { createLocalApi, type LocalApiOptions } from "../src/local-api.ts";
import { PaymentBusyError, PaymentInputError, type StartRequest } from "../src/payments/payment-desk.ts";

const PORT = 8080;
const HOST = `127.0.0.1:${PORT}`;
const TOKEN = "t0k3n-of-this-boot";

const STATE: KioskState = {
  site: "s1",
  device: "k1",
  online: true,
  broker: true,
  cloud: true,
  reader: { kind: "pn532", simulated: true, state: "ok" },
  backlog: 2,
  storage: "ok",
};
const WELCOME: TapResult = { outcome: "welcome", name: "Ada", message: "Welcome, Ada", seq: 1, id: "e-1", at: "t" };
const SESSION: PaymentSession = {
  id: "p-1",
  kind: "purchase",
  amount: 250,
  currency: "EUR",
  itemName: "Coffee",
  state: "awaiting-card",
  expiresAt: "2025-01-01T10:01:00.000Z",
};
const PAID: PaymentResult = {
  sessionId: "p-1",
  kind: "purchase",
  outcome: "approved",
  message: "Paid €2.50",
  amount: 250,
  currency: "EUR",
  balance: 500,
  authorization: "online",
  id: "p-1",
  at: "t",
};

interface Ctx {
  /** What reached the kiosk behind the API, in order: "taps 04A2B3C4", "start {…}", … */
  calls: string[];
  options: LocalApiOptions;
  metrics: Registry;
}

function options(ctx: Ctx): LocalApiOptions {
  /** Notes the call, then answers `value`. */
  const seen = <T>(call: string, value?: T): T => {
    ctx.calls.push(call);
    return value as T;
  };
  return {
    token: TOKEN,
    metrics: ctx.metrics,
    state: async () => STATE,
    health: async () => ({ status: "ok" }),
    simulatedTap: async (uid) => seen(`tap ${uid}`, WELCOME),
    catalog: async () => ({
      ready: true,
      currency: "EUR",
      items: [{ id: "coffee", name: "Coffee", price: 250 }],
      topups: true,
      topupAmounts: [1000],
      maxAmount: 5000,
    }),
    startPayment: async (req: StartRequest) => seen(`start ${JSON.stringify(req)}`, SESSION),
    cancelPayment: () => seen("cancel", true),
    enterCode: async (code) => seen(`code ${code}`, WELCOME),
    callStaff: async () => seen<void>("staff"),
    selfTest: async () => ({ reader: "ok", printer: "ok" }),
    status: async () => ({ site: "s1", device: "k1", rows: [] }),
  };
}

/** A request as the kiosk's own page sends it, arriving on the API's own socket. */
async function call(
  ctx: Ctx,
  path: string,
  init: { method?: string; body?: string | object; headers?: Record<string, string>; host?: string } = {},
): Promise<Response> {
  const { app } = createLocalApi(ctx.options);
  const method = init.method ?? (init.body === undefined ? "GET" : "POST");
  const headers: Record<string, string> = {
    host: init.host ?? HOST,
    ...(method === "POST" ? { "content-type": "application/json", authorization: `Bearer ${TOKEN}` } : {}),
    ...init.headers,
  };
  const body = typeof init.body === "object" ? JSON.stringify(init.body) : init.body;
  // what @hono/node-server hands the app: the socket's local port is how the guard knows its own address
  const incoming = { socket: { localPort: PORT }, headers: { host: headers.host } };
  return app.request(path, { method, headers, ...(body === undefined ? {} : { body }) }, { incoming });
}

/** A success answer: the route's status, JSON, and what its response schema allows. */
async function answer(res: Response, route: KioskRoute): Promise<unknown> {
  assert.is(res.status, route.status, `${route.path} status`);
  assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
  const body: unknown = await res.json();
  const parsed = route.response.safeParse(body);
  assert.ok(parsed.success, `${route.path} answers what the contract says: ${JSON.stringify(body)}`);
  return body;
}

/** A refusal: problem+json with this status and title, and a detail of one line. */
async function refusal(res: Response, status: number, title: string): Promise<string> {
  assert.is(res.status, status);
  assert.is(res.headers.get("content-type"), "application/problem+json");
  const body = ProblemSchema.parse(await res.json());
  assert.is(body.title, title);
  assert.type(body.detail, "string");
  assert.not.match(body.detail!, /\n/, "one line");
  return body.detail!;
}

const routes = suite<Ctx>("local API routes");

routes.before.each((ctx) => {
  ctx.calls = [];
  ctx.metrics = new Registry();
  ctx.options = options(ctx);
});

routes("GET /api/state and /api/catalog answer the contract's shapes", async (ctx) => {
  assert.equal(KioskStateSchema.parse(await answer(await call(ctx, "/api/state"), kioskApi.state)), STATE);
  CatalogSchema.parse(await answer(await call(ctx, "/api/catalog"), kioskApi.catalog));
});

routes("a simulated tap: the UID normalised as the contract says, the result answered", async (ctx) => {
  const body = await answer(await call(ctx, "/api/sim/tap", { body: { uid: "04:a2 b3:c4" } }), kioskApi.simTap);
  assert.equal(body, WELCOME);
  assert.equal(ctx.calls, ["tap 04A2B3C4"]);
});

routes("a tap may answer with a payment's result", async (ctx) => {
  ctx.options.simulatedTap = async () => PAID;
  assert.equal(await answer(await call(ctx, "/api/sim/tap", { body: { uid: "04A2B3C4" } }), kioskApi.simTap), PAID);
});

routes("a UID that is not 4, 7 or 10 bytes of hex is refused before the reader", async (ctx) => {
  for (const uid of ["zz", "04A2B3", 42]) {
    const detail = await refusal(await call(ctx, "/api/sim/tap", { body: { uid } }), 400, "Invalid card UID");
    assert.is(detail, "uid: expected 4, 7 or 10 bytes as hex, e.g. 04A2B3C4");
  }
  assert.equal(ctx.calls, []);
});

routes("no simulated reader: 404", async (ctx) => {
  delete ctx.options.simulatedTap;
  await refusal(await call(ctx, "/api/sim/tap", { body: { uid: "04A2B3C4" } }), 404, "No simulated reader");
});

routes("a booking code is normalised; a bad one refused", async (ctx) => {
  assert.equal(await answer(await call(ctx, "/api/code", { body: { code: "ada-1" } }), kioskApi.code), WELCOME);
  assert.equal(ctx.calls, ["code ADA1"]);
  const detail = await refusal(await call(ctx, "/api/code", { body: { code: "a!" } }), 400, "Invalid booking code");
  assert.match(detail, /^code: expected 4 to 16 letters or digits/);
});

routes("a body that is not JSON, or not an object: 400 saying so in one line", async (ctx) => {
  for (const path of ["/api/sim/tap", "/api/code", "/api/payments", "/api/topups"]) {
    const detail = await refusal(await call(ctx, path, { body: "{uid: 04A2B3C4" }), 400, "Invalid JSON");
    assert.match(detail, /^body: /, path);
  }
  const detail = await refusal(await call(ctx, "/api/code", { body: "[1]" }), 400, "Invalid booking code");
  assert.is(detail, "expected a JSON object");
  assert.equal(ctx.calls, []);
});

routes("a payment: an item or an amount, answered 201 with the session", async (ctx) => {
  assert.equal(
    await answer(await call(ctx, "/api/payments", { body: { itemId: "coffee" } }), kioskApi.payment),
    SESSION,
  );
  await answer(await call(ctx, "/api/payments", { body: { amount: 250 } }), kioskApi.payment);
  await answer(await call(ctx, "/api/topups", { body: { amount: 2000 } }), kioskApi.topup);
  assert.equal(ctx.calls, [
    'start {"kind":"purchase","itemId":"coffee"}',
    'start {"kind":"purchase","amount":250}',
    'start {"kind":"topup","amount":2000}',
  ]);
});

routes("a payment with both, neither or a wrong-typed choice is refused before the desk", async (ctx) => {
  for (const body of [{ itemId: "coffee", amount: 250 }, {}, { itemId: 7 }, { amount: "250" }]) {
    const detail = await refusal(await call(ctx, "/api/payments", { body }), 400, "Invalid payment");
    assert.match(detail, /^expected either itemId .* or amount .*, not both$/, JSON.stringify(body));
  }
  const detail = await refusal(await call(ctx, "/api/topups", { body: { amount: "20" } }), 400, "Invalid payment");
  assert.is(detail, "amount: expected a number of minor units");
  assert.equal(ctx.calls, []);
});

routes("the desk's refusals: bad input 400, a session in the way 409", async (ctx) => {
  ctx.options.startPayment = async () => {
    throw new PaymentInputError("amount: expected an integer number of minor units from 1 to 100000");
  };
  const detail = await refusal(await call(ctx, "/api/payments", { body: { amount: 2.5 } }), 400, "Invalid payment");
  assert.is(detail, "amount: expected an integer number of minor units from 1 to 100000");
  ctx.options.startPayment = async () => {
    throw new PaymentBusyError("a payment is in progress");
  };
  await refusal(await call(ctx, "/api/topups", { body: { amount: 1000 } }), 409, "Payment in progress");
});

routes("cancel answers whether a session was cancelled; 409 while the card is being authorized", async (ctx) => {
  const body = await answer(await call(ctx, "/api/payments/cancel", { body: {} }), kioskApi.cancelPayment);
  assert.equal(body, { cancelled: true });
  ctx.options.cancelPayment = () => {
    throw new PaymentBusyError("the card is being authorized");
  };
  const detail = await refusal(await call(ctx, "/api/payments/cancel", { body: {} }), 409, "Payment in progress");
  assert.is(detail, "the card is being authorized");
});

routes("call staff and self-test answer; a failure is a 500 problem naming it", async (ctx) => {
  assert.equal(await answer(await call(ctx, "/api/call-staff", { body: {} }), kioskApi.callStaff), { called: true });
  await answer(await call(ctx, "/api/self-test", { body: {} }), kioskApi.selfTest);
  ctx.options.callStaff = async () => {
    throw new Error("journal: disk full");
  };
  const detail = await refusal(await call(ctx, "/api/call-staff", { body: {} }), 500, "The kiosk could not do that");
  assert.is(detail, "journal: disk full");
});

routes("the terminal's end-of-day: 404 without a terminal, 502 when it fails, else its report", async (ctx) => {
  await refusal(await call(ctx, "/api/terminal/end-of-day", { body: {} }), 404, "No card terminal");
  ctx.options.settleTerminal = async () => ({ count: 3, total: 4500 });
  await answer(await call(ctx, "/api/terminal/end-of-day", { body: {} }), kioskApi.endOfDay);
  ctx.options.settleTerminal = async () => {
    throw new Error("terminal not responding");
  };
  const res = await call(ctx, "/api/terminal/end-of-day", { body: {} });
  assert.is(await refusal(res, 502, "The card terminal could not close its day"), "terminal not responding");
});

routes.run();

const guard = suite<Ctx>("local API: only the kiosk's own page");

guard.before.each((ctx) => {
  ctx.calls = [];
  ctx.metrics = new Registry();
  ctx.options = options(ctx);
});

/** The refusals counted so far, by reason. */
async function refused(ctx: Ctx): Promise<Record<string, number>> {
  const metric = await ctx.metrics.getSingleMetric("paylane_device_local_api_refused_total")?.get();
  return Object.fromEntries((metric?.values ?? []).map((v) => [String(v.labels.reason), v.value]));
}

guard("another Host (DNS rebinding) is 421, even for a GET", async (ctx) => {
  await refusal(await call(ctx, "/api/state", { host: "rebind.test:8080" }), 421, "Not this kiosk's address");
  await refusal(await call(ctx, "/api/state", { host: "127.0.0.1:9999" }), 421, "Not this kiosk's address");
  assert.equal(await refused(ctx), { host: 2 });
});

guard("a request not from a socket of the API's own fails closed", async (ctx) => {
  const { app } = createLocalApi(ctx.options);
  await refusal(await app.request("/api/state", { headers: { host: HOST } }), 421, "Not this kiosk's address");
});

guard("a foreign Origin or a cross-site fetch is 403", async (ctx) => {
  const tap = { body: { uid: "04A2B3C4" } };
  const evil = { ...tap, headers: { origin: "http://evil.test" } };
  await refusal(await call(ctx, "/api/sim/tap", evil), 403, "Cross-origin request refused");
  const site = { ...tap, headers: { "sec-fetch-site": "cross-site" } };
  await refusal(await call(ctx, "/api/sim/tap", site), 403, "Cross-site request refused");
  const own = { ...tap, headers: { origin: `http://${HOST}`, "sec-fetch-site": "same-origin" } };
  await answer(await call(ctx, "/api/sim/tap", own), kioskApi.simTap);
  assert.equal(ctx.calls, ["tap 04A2B3C4"]);
  assert.equal(await refused(ctx), { origin: 1, "fetch-site": 1 });
});

guard("a state-changing call must be JSON and carry this boot's token", async (ctx) => {
  const plain = { body: '{"uid":"04A2B3C4"}', headers: { "content-type": "text/plain" } };
  await refusal(await call(ctx, "/api/sim/tap", plain), 415, "JSON only");
  for (const authorization of ["", "Bearer wrong", `Basic ${TOKEN}`]) {
    const res = await call(ctx, "/api/sim/tap", { body: { uid: "04A2B3C4" }, headers: { authorization } });
    assert.is(res.headers.get("www-authenticate"), 'Bearer realm="paylane-kiosk"');
    await refusal(res, 401, "Token required");
  }
  assert.equal(ctx.calls, []);
  assert.equal(await refused(ctx), { "content-type": 1, token: 3 });
});

guard("a WebSocket without Origin must hold the token", async (ctx) => {
  const upgrade = { upgrade: "websocket", connection: "Upgrade" };
  await refusal(await call(ctx, "/api/live", { headers: upgrade }), 401, "Token required");
  assert.equal(await refused(ctx), { websocket: 1 });
});

guard.run();
