/**
 * The kiosk's one HTTP client for the cloud: every call in protocol's
 * `cloudApi` table goes through `call(name, …)`, which is the only place
 * that builds a path, signs in (the device's identity and secret), times an
 * attempt out, retries, and keeps a circuit breaker.
 *
 * One policy, tuned per lane (below): a failure is either the cloud's
 * answer to the request (a 4xx: `refused`, never retried, the caller knows
 * what to say) or the cloud being away (network, timeout, 5xx, 401/408/429,
 * an answer it cannot understand: `unreachable`, retried, counted by the
 * breaker). A retry sends the very same bytes: a payment's idempotency key
 * is serialised once, before the first attempt.
 */
import {
  type CloudApi,
  type CloudRouteName,
  cloudApi,
  cloudPath,
  type DeviceAddress,
  type PathParams,
  validate,
} from "@paylane/protocol";
import {
  BrokenCircuitError,
  ConsecutiveBreaker,
  ConstantBackoff,
  circuitBreaker,
  ExponentialBackoff,
  fullJitterGenerator,
  handleWhen,
  type IBackoffFactory,
  type IPolicy,
  type IRetryBackoffContext,
  noop,
  retry,
  wrap,
} from "cockatiel";
import type { z } from "zod";
import type { Timers } from "../timers.ts";
import { deviceAuthorization } from "./auth.ts";

export type CloudAnswer<R> =
  /** The cloud answered 2xx with a body the contract accepts. */
  | { kind: "answered"; response: R; attempts: number }
  /** The cloud refused the request itself (4xx): retrying it would be refused again. */
  | { kind: "refused"; status: number; detail: string }
  /** No usable answer (network, timeout, 5xx, circuit open); `circuitOpen`: not even tried. */
  | { kind: "unreachable"; reason: string; circuitOpen?: boolean };

type Route<N extends CloudRouteName> = CloudApi[N];
type Input<Schema> = Schema extends z.ZodType ? z.input<Schema> : never;

/** What a call carries besides the device's own address (which fills every `:site`/`:device`). */
export type CallInput<N extends CloudRouteName> = (Route<N>["query"] extends z.ZodType
  ? { query: Input<Route<N>["query"]> }
  : { query?: never }) &
  (Route<N>["body"] extends z.ZodType ? { body: Input<Route<N>["body"]> } : { body?: never });

export type Answer<N extends CloudRouteName> = z.infer<Route<N>["answer"]>;

/**
 * - `till`: someone waits at the kiosk; a short timeout and one quick retry,
 *   and after 3 misses in a row the cloud is left alone for 15 s so payments
 *   decide offline at once instead of each waiting for a timeout.
 * - `pull`: background replica pulls; two retries with jittered backoff, and
 *   after 5 failed pulls the cloud is left alone for 30 s.
 * - `check`: the journal's comparison with the cloud's stream holds acks
 *   while it runs, so it asks once and the caller tries again later.
 */
type Lane = "till" | "pull" | "check";

const LANE_OF: Record<CloudRouteName, Lane> = {
  members: "pull",
  wallets: "pull",
  streamMark: "check",
  streamEntries: "check",
  authorizePayment: "till",
  voidPayment: "till",
  topupIntent: "till",
};

export interface CloudClientOptions {
  address: DeviceAddress;
  secret: string;
  cloudUrl: string;
  timers: Timers;
  /** Per attempt, for the till (payments, top-up intents); default 2500 ms. */
  tillTimeoutMs?: number;
  /** Per attempt, for pulls and stream checks; default 5000 ms. */
  requestTimeoutMs?: number;
  /** Pause between the retries of one pull (default: full-jitter exponential, 200 ms..2 s). Tests pass none. */
  pullBackoff?: IBackoffFactory<IRetryBackoffContext<unknown>>;
  /** Pause before the till's one retry (default 150 ms). Tests pass none. */
  tillBackoff?: IBackoffFactory<IRetryBackoffContext<unknown>>;
  /** Called before each attempt of a keyed call (payments, top-up intents): tests check every retry carries the same key. */
  onAttempt?: (key: string, attempt: number) => void;
  /** Injected in unit tests; the global fetch otherwise. */
  fetch?: typeof fetch;
}

/** The cloud did not answer usably: retried, and counted by the breaker. */
class Unreachable extends Error {}

interface LanePolicy {
  policy: IPolicy;
  timeoutMs: number;
  openReason: string;
}

export class CloudClient {
  readonly #o: CloudClientOptions;
  readonly #auth: string;
  readonly #lanes: Record<Lane, LanePolicy>;

  constructor(o: CloudClientOptions) {
    this.#o = o;
    this.#auth = deviceAuthorization(o.address, o.secret);
    const transient = handleWhen((err) => err instanceof Unreachable);
    const breaker = (failures: number, halfOpenAfter: number) =>
      circuitBreaker(transient, { halfOpenAfter, breaker: new ConsecutiveBreaker(failures) });
    const requestMs = o.requestTimeoutMs ?? 5000;
    this.#lanes = {
      till: {
        policy: wrap(
          breaker(3, 15_000),
          retry(transient, { maxAttempts: 1, backoff: o.tillBackoff ?? new ConstantBackoff(150) }),
        ),
        timeoutMs: o.tillTimeoutMs ?? 2500,
        openReason: "circuit open after repeated failures",
      },
      pull: {
        policy: wrap(
          breaker(5, 30_000),
          retry(transient, {
            maxAttempts: 2,
            backoff:
              o.pullBackoff ??
              new ExponentialBackoff({ initialDelay: 200, maxDelay: 2000, generator: fullJitterGenerator }),
          }),
        ),
        timeoutMs: requestMs,
        openReason: "cloud unreachable (circuit open after repeated failures; retrying in 30 s)",
      },
      check: { policy: noop, timeoutMs: requestMs, openReason: "" },
    };
  }

  /** The device this client signs in as. */
  get address(): DeviceAddress {
    return this.#o.address;
  }

  /** Makes one call of the contract through its lane's policy; never rejects for the cloud's sake. */
  async call<N extends CloudRouteName>(name: N, input: CallInput<N>): Promise<CloudAnswer<Answer<N>>> {
    const route = cloudApi[name];
    const lane = this.#lanes[LANE_OF[name]];
    const url = new URL(cloudPath(route.path, this.#o.address as PathParams<typeof route.path>), this.#o.cloudUrl);
    const { query, body } = input as { query?: Record<string, unknown>; body?: unknown };
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    // Serialised once: every retry sends the same bytes, and with them the same idempotency key.
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const key = keyOf(body);
    let attempts = 0;
    try {
      return await lane.policy.execute(async () => {
        attempts++;
        if (key !== undefined) this.#o.onAttempt?.(key, attempts);
        return this.#attempt(route, url, payload, key, lane.timeoutMs, attempts);
      });
    } catch (err) {
      if (err instanceof BrokenCircuitError) return { kind: "unreachable", reason: lane.openReason, circuitOpen: true };
      if (err instanceof Unreachable) return { kind: "unreachable", reason: err.message };
      throw err;
    }
  }

  async #attempt<N extends CloudRouteName>(
    route: Route<N>,
    url: URL,
    payload: string | undefined,
    key: string | undefined,
    timeoutMs: number,
    attempts: number,
  ): Promise<CloudAnswer<Answer<N>>> {
    const what = `${route.method} ${url.pathname}`;
    const abort = new AbortController();
    const timer = this.#o.timers.setTimeout(
      () => abort.abort(new Error(`${what}: no answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    let res: Response;
    let text: string;
    try {
      res = await (this.#o.fetch ?? fetch)(url, {
        method: route.method,
        headers: {
          authorization: this.#auth,
          accept: "application/json",
          ...(payload === undefined ? {} : { "content-type": "application/json" }),
        },
        body: payload,
        signal: abort.signal,
      });
      text = await res.text();
    } catch (err) {
      throw new Unreachable(abort.signal.aborted ? (abort.signal.reason as Error).message : (err as Error).message);
    } finally {
      this.#o.timers.clearTimeout(timer);
    }
    // 401 too: a secret rotated a moment ago, or a registry reload in flight; asking again may succeed.
    if (res.status >= 500 || res.status === 408 || res.status === 429 || res.status === 401) {
      throw new Unreachable(`${what} answered ${res.status}`);
    }
    if (!res.ok)
      return { kind: "refused", status: res.status, detail: problemDetail(text) ?? `answered ${res.status}` };
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new Unreachable(`the cloud's answer to ${what} was not JSON`);
    }
    const parsed = validate(route.answer as unknown as z.ZodType<Answer<N>>, json);
    if (!parsed.ok) throw new Unreachable(`the cloud's answer to ${what} was not understood: ${parsed.error}`);
    if (key !== undefined && keyOf(parsed.value) !== key) {
      throw new Unreachable(`the cloud answered ${what} for another key`);
    }
    return { kind: "answered", response: parsed.value, attempts };
  }
}

/** The idempotency key a request or answer carries, if any. */
function keyOf(value: unknown): string | undefined {
  const key = (value as { key?: unknown } | undefined)?.key;
  return typeof key === "string" ? key : undefined;
}

function problemDetail(text: string): string | undefined {
  try {
    const p = JSON.parse(text) as { detail?: unknown };
    return typeof p.detail === "string" ? p.detail : undefined;
  } catch {
    return undefined;
  }
}

/** A call that got no answer, for callers that carry on without one (the replica pulls, the stream check). */
export class CloudCallError extends Error {
  override name = "CloudCallError";
}

/** The answer's body, or a CloudCallError saying why there is none. */
export function answered<R>(answer: CloudAnswer<R>): R {
  if (answer.kind === "answered") return answer.response;
  throw new CloudCallError(
    answer.kind === "refused" ? `the cloud refused the request (${answer.status}): ${answer.detail}` : answer.reason,
  );
}
