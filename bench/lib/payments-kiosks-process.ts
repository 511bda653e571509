/**
 * The payments benchmark's kiosks, in their own process: each one a
 * keep-alive HTTP client of its own (one socket, node:http) with its own
 * device credentials, POSTing `/api/v1/payments` one after the other, as a
 * kiosk's `OnlineAuthorizer` does (device/src/payments/online-authorizer.ts).
 * Every answer must be 200 `approved` for its key; anything else is a failure.
 * node:http rather than fetch: the load generator shares the machine's cores
 * with the cloud and Postgres, so it should cost as little as it can.
 *
 * `replay` sends the first payments of the last timed run again, same key,
 * same body: each answer must be marked `idempotent-replayed: true` and be
 * byte for byte the first one.
 */
import { randomUUID } from "node:crypto";
import { Agent, request } from "node:http";
import { performance } from "node:perf_hooks";
import type { PaymentRequest } from "@paylane/protocol";
import { reportFailures } from "./child.ts";

export interface KiosksOptions {
  /** The cloud's base URL. */
  url: string;
  site: string;
  /** device id -> secret, one kiosk each. */
  secrets: Array<[string, string]>;
  /** Members `{memberPrefix}0` … `{memberPrefix}{members - 1}`; each payment picks one at random. */
  memberPrefix: string;
  members: number;
  amount: number;
  currency: string;
  itemId: string | null;
}

export interface RunResult {
  /** First request sent -> last answer read, ms. */
  elapsedMs: number;
  /** Request sent -> answer read, per payment, ms, sorted. */
  latencies: number[];
  approved: number;
  /** What went wrong, the first few of each kiosk. */
  failures: string[];
  failed: number;
}

export interface ReplayResult {
  elapsedMs: number;
  /** Request sent -> answer read, per retry, ms, sorted. */
  latencies: number[];
  /** Answers carrying `idempotent-replayed: true`. */
  replayed: number;
  /** Answers 200 and byte for byte the first answer for their key. */
  identical: number;
  failures: string[];
}

export type KiosksIn =
  | { type: "connect"; options: KiosksOptions }
  | { type: "run"; perKiosk: number }
  | { type: "replay"; count: number }
  | { type: "stop" };
export type KiosksOut =
  | { type: "connected" }
  | { type: "tick"; done: number }
  | { type: "result"; result: RunResult }
  | { type: "replayed"; result: ReplayResult }
  | { type: "error"; message: string }
  | { type: "exit" };

interface Answer {
  status: number;
  body: string;
  replayed: boolean;
}

interface Sent {
  body: string;
  key: string;
  answer: string;
}

/** A request with no answer by then fails the run (a wedged cloud must not hang the bench). */
const REQUEST_TIMEOUT_MS = 30_000;

class Kiosk {
  readonly #agent = new Agent({ keepAlive: true, maxSockets: 1 });
  readonly #o: KiosksOptions;
  readonly #url: URL;
  readonly #auth: string;
  /** The payments of the last timed run, in order, with their first answers. */
  sent: Sent[] = [];

  constructor(
    readonly device: string,
    secret: string,
    o: KiosksOptions,
  ) {
    this.#o = o;
    this.#url = new URL("/api/v1/payments", o.url);
    this.#auth = `Basic ${Buffer.from(`${o.site}/${device}:${secret}`).toString("base64")}`;
  }

  post(body: string): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const req = request(
        this.#url,
        {
          method: "POST",
          agent: this.#agent,
          headers: {
            authorization: this.#auth,
            "content-type": "application/json",
            "content-length": Buffer.byteLength(body),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () =>
            resolve({
              status: res.statusCode ?? 0,
              body: Buffer.concat(chunks).toString("utf8"),
              replayed: res.headers["idempotent-replayed"] === "true",
            }),
          );
          res.on("error", reject);
        },
      );
      req.setTimeout(REQUEST_TIMEOUT_MS, () =>
        req.destroy(new Error(`${this.device}: no answer within ${REQUEST_TIMEOUT_MS} ms`)),
      );
      req.on("error", reject);
      req.end(body);
    });
  }

  payment(): PaymentRequest {
    const o = this.#o;
    return {
      key: randomUUID(),
      memberId: `${o.memberPrefix}${Math.floor(Math.random() * o.members)}`,
      amount: o.amount,
      currency: o.currency,
      itemId: o.itemId,
      at: new Date().toISOString(),
    };
  }

  close(): void {
    this.#agent.destroy();
  }
}

function problem(device: string, key: string, a: Answer): string {
  return `${device} ${key}: ${a.status}${a.replayed ? " (replayed)" : ""} ${a.body.slice(0, 200)}`;
}

/** Sends `count` fresh payments, one after the other; keeps the approved ones for `replay`. */
async function runKiosk(k: Kiosk, count: number, out: { latencies: number[]; failures: string[] }): Promise<number> {
  k.sent = [];
  for (let i = 0; i < count; i++) {
    const p = k.payment();
    const body = JSON.stringify(p);
    const t0 = performance.now();
    const a = await k.post(body);
    out.latencies.push(performance.now() - t0);
    let status: unknown;
    try {
      status = (JSON.parse(a.body) as { status?: unknown }).status;
    } catch {
      status = undefined;
    }
    if (a.status === 200 && status === "approved" && !a.replayed) k.sent.push({ body, key: p.key, answer: a.body });
    else if (out.failures.length < 20) out.failures.push(problem(k.device, p.key, a));
  }
  return k.sent.length;
}

async function run(kiosks: Kiosk[], perKiosk: number): Promise<RunResult> {
  const out = { latencies: [] as number[], failures: [] as string[] };
  const ticker = setInterval(() => send({ type: "tick", done: out.latencies.length }), 1000);
  try {
    const t0 = performance.now();
    const approved = (await Promise.all(kiosks.map((k) => runKiosk(k, perKiosk, out)))).reduce((a, b) => a + b, 0);
    const elapsedMs = performance.now() - t0;
    out.latencies.sort((a, b) => a - b);
    return { elapsedMs, ...out, approved, failed: perKiosk * kiosks.length - approved };
  } finally {
    clearInterval(ticker);
  }
}

/** The first `count` approved payments of the last run, spread over the kiosks; each re-sends its share in turn. */
async function replay(kiosks: Kiosk[], count: number): Promise<ReplayResult> {
  const r: ReplayResult = { elapsedMs: 0, latencies: [], replayed: 0, identical: 0, failures: [] };
  const t0 = performance.now();
  await Promise.all(
    kiosks.map(async (k, i) => {
      const share = Math.floor(count / kiosks.length) + (i < count % kiosks.length ? 1 : 0);
      for (const s of k.sent.slice(0, share)) {
        const t = performance.now();
        const a = await k.post(s.body);
        r.latencies.push(performance.now() - t);
        if (a.replayed) r.replayed++;
        if (a.status === 200 && a.body === s.answer) r.identical++;
        if ((!a.replayed || a.body !== s.answer) && r.failures.length < 20)
          r.failures.push(problem(k.device, s.key, a));
      }
    }),
  );
  r.elapsedMs = performance.now() - t0;
  r.latencies.sort((a, b) => a - b);
  return r;
}

reportFailures();
const send = (m: KiosksOut) => process.send?.(m);
let kiosks: Kiosk[] = [];
process.on("message", async (m: KiosksIn) => {
  if (m.type === "connect") {
    kiosks = m.options.secrets.map(([device, secret]) => new Kiosk(device, secret, m.options));
    send({ type: "connected" });
  } else if (m.type === "run") {
    send({ type: "result", result: await run(kiosks, m.perKiosk) });
  } else if (m.type === "replay") {
    send({ type: "replayed", result: await replay(kiosks, m.count) });
  } else if (m.type === "stop") {
    for (const k of kiosks) k.close();
    process.disconnect?.();
  }
});
