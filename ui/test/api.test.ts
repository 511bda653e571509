/** Unit tests of the UI's API helpers: runtime checks and the simulated tap, with fetch injected. */
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { liveUrl, parseLiveMessage, postSimTap, resultKey } from "../src/kiosk/api.ts";
import type { TapResult } from "../src/kiosk-api.ts";

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
    JSON.stringify({ type: "result", result: { ...welcome, outcome: "maybe" } }),
    JSON.stringify({ type: "result", result: { ...welcome, seq: "4" } }),
    new ArrayBuffer(4),
  ]) {
    assert.is(parseLiveMessage(data), undefined, String(data));
  }
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
  });
  const { detail: _, ...noDetail } = problem;
  assert.equal(await postSimTap("zz", answer(400, JSON.stringify(noDetail), "application/problem+json")), {
    ok: false,
    error: "Bad Request",
  });
});

tap("a non-problem error names the status", async () => {
  assert.equal(await postSimTap("04", answer(502, "<html>Bad gateway</html>", "text/html")), {
    ok: false,
    error: "The kiosk refused the request (HTTP 502).",
  });
});

tap("an unreadable 200 is an error, not a result", async () => {
  const res = await postSimTap("04", answer(200, JSON.stringify({ ok: true }), "application/json"));
  assert.equal(res, { ok: false, error: "The daemon sent an unreadable result." });
});

tap("a network failure becomes a sentence", async () => {
  const down: typeof fetch = async () => {
    throw new TypeError("fetch failed");
  };
  assert.equal(await postSimTap("04", down), { ok: false, error: "Cannot reach the kiosk daemon." });
});

tap.run();
