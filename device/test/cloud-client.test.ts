/**
 * The kiosk's one cloud client, against a fake fetch and a fake clock: the
 * paths and credentials it sends, what it makes of each kind of answer, and
 * the till's guarantees (every retry carries the same key; a cloud that
 * keeps failing is left alone so payments decide offline at once).
 */
import type { PaymentRequest } from "@paylane/protocol";
import { ConstantBackoff } from "cockatiel";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { FakeTimers } from "../../test/support/fake-timers.ts";
import { CloudClient } from "../src/cloud/cloud-client.ts";

interface Sent {
  url: URL;
  method: string;
  headers: Record<string, string>;
  body: string | undefined;
}

/** A fetch that answers each request with the next of `answers` (a status and body, or "hang" until aborted). */
function fakeFetch(answers: Array<{ status: number; body: unknown } | "hang">) {
  const sent: Sent[] = [];
  const fetch = (async (input: URL | string, init?: RequestInit) => {
    sent.push({
      url: new URL(String(input)),
      method: init?.method ?? "GET",
      headers: init?.headers as Record<string, string>,
      body: init?.body as string | undefined,
    });
    const answer = answers.shift() ?? { status: 503, body: "down" };
    if (answer === "hang") {
      return new Promise<Response>((_, reject) =>
        init?.signal?.addEventListener("abort", () => reject(init.signal?.reason)),
      );
    }
    return new Response(typeof answer.body === "string" ? answer.body : JSON.stringify(answer.body), {
      status: answer.status,
    });
  }) as typeof globalThis.fetch;
  return { fetch, sent };
}

const request: PaymentRequest = {
  key: "2f0c6f5e-1d5b-4b8e-9a55-3c0f3c1e7a11",
  memberId: "m-ada",
  amount: 250,
  currency: "EUR",
  itemId: "coffee",
  at: "2024-05-01T09:00:00.000Z",
};

const approved = (key = request.key) => ({
  status: 200,
  body: {
    status: "approved",
    key,
    paymentId: "9a1d2c3b-4e5f-4a6b-8c7d-0e1f2a3b4c5d",
    memberId: "m-ada",
    amount: 250,
    currency: "EUR",
    balance: 750,
    at: request.at,
  },
});

function client(f: ReturnType<typeof fakeFetch>, o: { onAttempt?: (key: string, attempt: number) => void } = {}) {
  const timers = new FakeTimers();
  const cloud = new CloudClient({
    address: { site: "site-1", device: "k1" },
    secret: "cloud-client-secret-0123",
    cloudUrl: "http://cloud.test:8080",
    timers,
    fetch: f.fetch,
    tillBackoff: new ConstantBackoff(0),
    pullBackoff: new ConstantBackoff(0),
    onAttempt: o.onAttempt,
  });
  return { cloud, timers };
}

test("paths come from the route table with the device's own address; credentials and JSON on every call", async () => {
  const f = fakeFetch([{ status: 200, body: { items: [{ seq: 4, id: "e4" }] } }, approved()]);
  const { cloud } = client(f);
  const entries = await cloud.call("streamEntries", { query: { after: 3, upTo: 5 } });
  assert.equal(entries, { kind: "answered", response: { items: [{ seq: 4, id: "e4" }] }, attempts: 1 });
  assert.is(f.sent[0]?.url.href, "http://cloud.test:8080/api/v1/sites/site-1/devices/k1/stream/entries?after=3&upTo=5");
  assert.is(f.sent[0]?.method, "GET");
  assert.is(f.sent[0]?.body, undefined);
  const basic = `Basic ${Buffer.from("site-1/k1:cloud-client-secret-0123").toString("base64")}`;
  assert.is(f.sent[0]?.headers.authorization, basic);

  await cloud.call("authorizePayment", { body: request });
  assert.is(f.sent[1]?.url.pathname, "/api/v1/payments");
  assert.is(f.sent[1]?.method, "POST");
  assert.is(f.sent[1]?.headers["content-type"], "application/json");
  assert.is(f.sent[1]?.headers.authorization, basic);
  assert.equal(JSON.parse(f.sent[1]?.body ?? ""), request);
});

test("a payment retried after a 503 sends the same bytes, the same key, and onAttempt sees both attempts", async () => {
  const f = fakeFetch([{ status: 503, body: "busy" }, approved()]);
  const attempts: Array<[string, number]> = [];
  const { cloud } = client(f, { onAttempt: (key, n) => attempts.push([key, n]) });
  const outcome = await cloud.call("authorizePayment", { body: request });
  assert.is(outcome.kind, "answered");
  assert.is(outcome.kind === "answered" && outcome.attempts, 2);
  assert.equal(attempts, [
    [request.key, 1],
    [request.key, 2],
  ]);
  assert.is(f.sent.length, 2);
  assert.is(f.sent[0]?.body, f.sent[1]?.body);
});

test("a 4xx is the cloud's answer to the request: refused with its problem detail, never retried", async () => {
  const f = fakeFetch([{ status: 422, body: { title: "Unprocessable", detail: "key: used with other parameters" } }]);
  const { cloud } = client(f);
  const outcome = await cloud.call("authorizePayment", { body: request });
  assert.equal(outcome, { kind: "refused", status: 422, detail: "key: used with other parameters" });
  assert.is(f.sent.length, 1);
});

test("an answer the contract does not accept, or for another key, is no answer", async () => {
  const f = fakeFetch([
    { status: 200, body: { status: "maybe" } },
    { status: 200, body: "not json" },
    approved("11111111-2222-4333-8444-555555555555"),
    approved("11111111-2222-4333-8444-555555555555"),
  ]);
  const { cloud } = client(f);
  const garbled = await cloud.call("authorizePayment", { body: request });
  assert.is(garbled.kind, "unreachable");
  assert.match(garbled.kind === "unreachable" ? garbled.reason : "", /not JSON/);
  const otherKey = await cloud.call("authorizePayment", { body: request });
  assert.is(otherKey.kind, "unreachable");
  assert.match(otherKey.kind === "unreachable" ? otherKey.reason : "", /another key/);
});

test("each attempt times out on the injected clock; then the call is unreachable", async () => {
  const f = fakeFetch(["hang", "hang"]);
  const { cloud, timers } = client(f);
  const call = cloud.call("authorizePayment", { body: request });
  await until(() => f.sent.length === 1);
  timers.advance(2499);
  await flush();
  assert.is(f.sent.length, 1, "still waiting for the first answer");
  timers.advance(1);
  await until(() => f.sent.length === 2);
  timers.advance(2500);
  const outcome = await call;
  assert.equal(outcome, {
    kind: "unreachable",
    reason: "POST /api/v1/payments: no answer within 2500 ms",
  });
  assert.is(timers.pending, 0, "no timer outlives the call");
});

test("after 3 unreachable till calls the circuit opens: the next is not even sent", async () => {
  const f = fakeFetch([]);
  const { cloud } = client(f);
  for (let i = 0; i < 3; i++) assert.is((await cloud.call("authorizePayment", { body: request })).kind, "unreachable");
  assert.is(f.sent.length, 6, "each call: an attempt and one retry");
  const open = await cloud.call("topupIntent", {
    body: { key: request.key, memberId: "m-ada", amount: 1000, currency: "EUR" },
  });
  assert.equal(open, { kind: "unreachable", reason: "circuit open after repeated failures", circuitOpen: true });
  assert.is(f.sent.length, 6);
  // the pulls have their own breaker: a payment outage does not stop the replica from syncing
  const members = await cloud.call("members", { query: { since: undefined } });
  assert.is(members.kind, "unreachable");
  assert.is(f.sent.length, 9, "one pull: a try and two retries");
  assert.not.match(f.sent[6]?.url.search ?? "", /since/, "no cursor: a full snapshot");
});

/** Lets pending promise callbacks run (no clock involved). */
async function flush(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve));
}

async function until(done: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !done(); i++) await flush();
  assert.ok(done(), "the condition never held");
}

test.run();
