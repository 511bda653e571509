/** Unit tests of the UI's API helpers: runtime checks and the simulated tap, with fetch injected. */

import type { Catalog, PaymentResult, PaymentSession, TapResult } from "@paylane/protocol/kiosk-api";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import {
  getCatalog,
  isCatalog,
  isPaymentResult,
  isPaymentSession,
  liveUrl,
  localToken,
  parseLiveMessage,
  postCallStaff,
  postCancelPayment,
  postPayment,
  postSimTap,
  postTopup,
  resultKey,
} from "../src/kiosk/api.ts";

const welcome: TapResult = {
  outcome: "welcome",
  name: "Ada",
  message: "Welcome, Ada",
  seq: 4,
  at: "2025-01-01T10:00:00Z",
};
const state = {
  site: "s",
  device: "d",
  online: true,
  broker: true,
  cloud: true,
  reader: { kind: "pn532", simulated: true, state: "ok" },
  backlog: 0,
  storage: "ok",
};

const parse = suite("parseLiveMessage");

parse("accepts state and result messages", () => {
  assert.equal(parseLiveMessage(JSON.stringify({ type: "state", state })), { type: "state", state });
  assert.equal(parseLiveMessage(JSON.stringify({ type: "result", result: welcome })), {
    type: "result",
    result: welcome,
  });
});

parse("ignores what it does not understand", () => {
  for (const data of [
    "not json",
    "null",
    JSON.stringify({ type: "hello" }),
    JSON.stringify({ type: "state", state: { ...state, reader: { kind: "nfc9000", state: "ok" } } }),
    JSON.stringify({ type: "state", state: { ...state, reader: { ...state.reader, state: "melting" } } }),
    JSON.stringify({ type: "state", state: { ...state, storage: undefined } }),
    JSON.stringify({ type: "result", result: { ...welcome, outcome: "maybe" } }),
    JSON.stringify({ type: "result", result: { ...welcome, seq: "4" } }),
    new ArrayBuffer(4),
  ]) {
    assert.is(parseLiveMessage(data), undefined, String(data));
  }
});

parse("keeps only what the contract names", () => {
  const extra = { ...state, debug: "<script>" };
  assert.equal(parseLiveMessage(JSON.stringify({ type: "state", state: extra })), { type: "state", state });
});

parse.run();

const misc = suite("resultKey and liveUrl");

misc("the same tap has one key; another tap another", () => {
  assert.is(resultKey({ ...welcome }), resultKey(welcome));
  assert.is.not(resultKey({ ...welcome, at: "2025-01-01T10:00:01Z" }), resultKey(welcome));
  const unknownA: TapResult = { outcome: "unknown", message: "Card not recognised", at: "t" };
  assert.is.not(resultKey({ ...unknownA, message: "Card not recognised (2)" }), resultKey(unknownA));
});

misc("liveUrl follows the page's scheme and host", () => {
  assert.is(liveUrl("http://127.0.0.1:8080/kiosk/"), "ws://127.0.0.1:8080/api/live");
  assert.is(liveUrl("https://kiosk.local/"), "wss://kiosk.local/api/live");
});

misc.run();

const tap = suite("postSimTap");

function answer(status: number, body: string, type: string): typeof fetch {
  return async () => new Response(body, { status, headers: { "content-type": type } });
}

tap("posts the uid and returns the result", async () => {
  let sent: RequestInit | undefined;
  const fetchImpl: typeof fetch = async (_url, init) => {
    sent = init;
    return new Response(JSON.stringify(welcome), { headers: { "content-type": "application/json" } });
  };
  assert.equal(await postSimTap("04A1", fetchImpl), { ok: true, result: welcome });
  assert.is(sent?.method, "POST");
  assert.is(sent?.body, JSON.stringify({ uid: "04A1" }));
});

tap("a problem's detail, else its title", async () => {
  const problem = { type: "about:blank", title: "Bad Request", status: 400, detail: "uid must be hex" };
  assert.equal(await postSimTap("zz", answer(400, JSON.stringify(problem), "application/problem+json")), {
    ok: false,
    error: "uid must be hex",
    status: 400,
  });
  const { detail: _, ...noDetail } = problem;
  assert.equal(await postSimTap("zz", answer(400, JSON.stringify(noDetail), "application/problem+json")), {
    ok: false,
    error: "Bad Request",
    status: 400,
  });
});

tap("a non-problem error names the status", async () => {
  assert.equal(await postSimTap("04", answer(502, "<html>Bad gateway</html>", "text/html")), {
    ok: false,
    error: "The kiosk refused the request (HTTP 502).",
    status: 502,
  });
});

tap("an unreadable 200 is an error, not a result", async () => {
  const res = await postSimTap("04", answer(200, JSON.stringify({ ok: true }), "application/json"));
  assert.equal(res, { ok: false, error: "The daemon sent an unreadable result.", status: 200 });
});

tap("a network failure becomes a sentence", async () => {
  const down: typeof fetch = async () => {
    throw new TypeError("fetch failed");
  };
  assert.equal(await postSimTap("04", down), { ok: false, error: "Cannot reach the kiosk daemon." });
});

tap.run();

const payments = suite("payment messages and calls");

const session: PaymentSession = {
  id: "s-1",
  kind: "purchase",
  amount: 250,
  currency: "EUR",
  itemName: "Coffee",
  state: "awaiting-card",
  expiresAt: "2025-01-01T10:01:00Z",
};
const approved: PaymentResult = {
  sessionId: "s-1",
  kind: "purchase",
  outcome: "approved",
  message: "Paid €2.50 — new balance €7.50",
  amount: 250,
  currency: "EUR",
  itemName: "Coffee",
  balance: 750,
  authorization: "offline",
  id: "p-1",
  at: "2025-01-01T10:00:30Z",
};
const catalog: Catalog = {
  ready: true,
  currency: "EUR",
  items: [{ id: "coffee", name: "Coffee", price: 250 }],
  topups: true,
  topupAmounts: [1000, 2000],
  maxAmount: 5000,
};

payments("accepts the contract's shapes", () => {
  assert.ok(isCatalog(catalog));
  assert.ok(isPaymentSession(session));
  assert.ok(isPaymentResult(approved));
  assert.ok(isPaymentResult({ ...approved, outcome: "declined", reason: "insufficient-funds", balance: -100 }));
  assert.equal(parseLiveMessage(JSON.stringify({ type: "payment", session })), { type: "payment", session });
  assert.equal(parseLiveMessage(JSON.stringify({ type: "payment-result", result: approved })), {
    type: "payment-result",
    result: approved,
  });
  assert.equal(parseLiveMessage(JSON.stringify({ type: "payment-ended", sessionId: "s-1", reason: "timeout" })), {
    type: "payment-ended",
    sessionId: "s-1",
    reason: "timeout",
  });
});

payments("refuses amounts that are not integers of minor units, and unknown states", () => {
  assert.not.ok(isCatalog({ ...catalog, items: [{ id: "coffee", name: "Coffee", price: 2.5 }] }));
  assert.not.ok(isCatalog({ ...catalog, maxAmount: "5000" }));
  assert.not.ok(isCatalog({ ...catalog, currency: "euro" }));
  assert.not.ok(isCatalog({ ...catalog, topupAmounts: [10.5] }));
  assert.not.ok(isPaymentSession({ ...session, amount: 2.5 }));
  assert.not.ok(isPaymentSession({ ...session, state: "paid" }));
  assert.not.ok(isPaymentSession({ ...session, kind: "refund" }));
  assert.not.ok(isPaymentResult({ ...approved, outcome: "maybe" }));
  assert.not.ok(isPaymentResult({ ...approved, balance: 7.5 }));
  assert.not.ok(isPaymentResult({ ...approved, authorization: "guessed" }));
  for (const data of [
    JSON.stringify({ type: "payment", session: { ...session, amount: "250" } }),
    JSON.stringify({ type: "payment-result", result: { ...approved, sessionId: 1 } }),
    JSON.stringify({ type: "payment-ended", sessionId: "s-1", reason: "bored" }),
  ]) {
    assert.is(parseLiveMessage(data), undefined, data);
  }
});

payments("a simulated tap may answer with a payment result", async () => {
  const res = await postSimTap("04A1", answer(200, JSON.stringify(approved), "application/json"));
  assert.equal(res, { ok: true, result: approved });
  assert.ok(res.ok && isPaymentResult(res.result));
});

payments("posts an item or an amount, and shows a refusal's detail", async () => {
  const sent: Array<{ url: string; body: unknown }> = [];
  const fetchImpl: typeof fetch = async (url, init) => {
    sent.push({ url: String(url), body: JSON.parse(String(init?.body)) });
    return new Response(JSON.stringify(session), { status: 201, headers: { "content-type": "application/json" } });
  };
  assert.equal(await postPayment({ itemId: "coffee" }, fetchImpl), { ok: true, result: session });
  assert.equal(await postPayment({ amount: 250 }, fetchImpl), { ok: true, result: session });
  assert.equal(await postTopup(2000, fetchImpl), { ok: true, result: session });
  assert.equal(sent, [
    { url: "/api/payments", body: { itemId: "coffee" } },
    { url: "/api/payments", body: { amount: 250 } },
    { url: "/api/topups", body: { amount: 2000 } },
  ]);
  const busy = { type: "about:blank", title: "Conflict", status: 409, detail: "The card is being authorized." };
  assert.equal(await postCancelPayment(answer(409, JSON.stringify(busy), "application/problem+json")), {
    ok: false,
    error: "The card is being authorized.",
    status: 409,
  });
  assert.equal(await postCancelPayment(answer(200, JSON.stringify({ cancelled: true }), "application/json")), {
    ok: true,
    result: { cancelled: true },
  });
});

payments("GET /api/catalog is checked like everything else", async () => {
  assert.equal(await getCatalog(answer(200, JSON.stringify(catalog), "application/json")), {
    ok: true,
    result: catalog,
  });
  const bad = await getCatalog(answer(200, JSON.stringify({ ...catalog, ready: "yes" }), "application/json"));
  assert.is(bad.ok, false);
});

payments.run();

const token = suite("the local API token");

/** A page whose <meta name="paylane-local-token"> holds `value`, as the daemon serves it. */
function pageWithToken(value: string): Pick<Document, "querySelector"> {
  return {
    querySelector: ((selector: string) =>
      selector === 'meta[name="paylane-local-token"]' ? { content: value } : null) as Document["querySelector"],
  };
}

token("the token comes from the page the daemon served; none without one", () => {
  assert.is(localToken(pageWithToken("t0k3n")), "t0k3n");
  assert.is(localToken(pageWithToken("")), undefined);
  assert.is(localToken(undefined), undefined);
});

token("every POST is JSON with the page's token, the staff call (no payload) too", async () => {
  const doc = globalThis as { document?: unknown };
  doc.document = pageWithToken("t0k3n");
  try {
    const sent: Array<{ url: string; headers: Headers; body: unknown }> = [];
    const fetchImpl: typeof fetch = async (url, init) => {
      sent.push({ url: String(url), headers: new Headers(init?.headers), body: init?.body });
      const body = String(url).endsWith("call-staff") ? { called: true } : welcome;
      return new Response(JSON.stringify(body), { headers: { "content-type": "application/json" } });
    };
    await postSimTap("04A1", fetchImpl);
    assert.ok(await postCallStaff(fetchImpl));
    await postCancelPayment(fetchImpl);
    for (const s of sent) {
      assert.is(s.headers.get("content-type"), "application/json", s.url);
      assert.is(s.headers.get("authorization"), "Bearer t0k3n", s.url);
      assert.type(s.body, "string", s.url);
    }
    assert.is(sent.length, 3);
  } finally {
    delete doc.document;
  }
});

token.run();
