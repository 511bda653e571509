/**
 * Online authorization: `POST /api/v1/payments` with the payment's key.
 *
 * A short timeout per attempt and one quick retry (the same key, so a retry
 * can never charge twice), inside a circuit breaker: after 3 failed calls in
 * a row the cloud is left alone for 15 s and payments go straight to offline
 * authorization instead of making each customer wait for a timeout.
 */
import {
  type DeviceAddress,
  type PaymentRequest,
  type PaymentResponse,
  PaymentResponseSchema,
  type TopupIntentRequest,
  type TopupIntentResponse,
  TopupIntentResponseSchema,
  validate,
} from "@paylane/protocol";
import {
  BrokenCircuitError,
  ConsecutiveBreaker,
  ConstantBackoff,
  circuitBreaker,
  handleWhen,
  retry,
  wrap,
} from "cockatiel";
import type { z } from "zod";
import { deviceAuthorization } from "../cloud-auth.ts";
import type { Timers } from "../timers.ts";

export type OnlineOutcome<R = PaymentResponse> =
  /** The cloud decided: approved or declined. */
  | { kind: "answered"; response: R; attempts: number }
  /** The cloud refused the request itself (4xx): nothing was charged, and offline would not be right either. */
  | { kind: "refused"; status: number; detail: string }
  /** No answer (network, timeout, 5xx, circuit open): the caller may authorize offline with the same key. */
  | { kind: "unreachable"; reason: string };

export interface OnlineAuthorizerOptions {
  address: DeviceAddress;
  secret: string;
  cloudUrl: string;
  timers: Timers;
  /** Per attempt (default 2500 ms). */
  timeoutMs?: number;
  /** Called before each attempt with its key: tests check every retry carries the same one. */
  onAttempt?: (key: string, attempt: number) => void;
}

/** Between the two attempts. */
const RETRY_DELAY_MS = 150;

class Unreachable extends Error {}

export class OnlineAuthorizer {
  readonly #o: OnlineAuthorizerOptions;
  readonly #auth: string;
  readonly #policy;

  constructor(o: OnlineAuthorizerOptions) {
    this.#o = o;
    this.#auth = deviceAuthorization(o.address, o.secret);
    const unreachable = handleWhen((err) => err instanceof Unreachable);
    this.#policy = wrap(
      circuitBreaker(unreachable, { halfOpenAfter: 15_000, breaker: new ConsecutiveBreaker(3) }),
      retry(unreachable, { maxAttempts: 1, backoff: new ConstantBackoff(RETRY_DELAY_MS) }),
    );
  }

  /** Asks the cloud to authorize a purchase (again, with the same key, on a retry). */
  authorize(request: PaymentRequest): Promise<OnlineOutcome> {
    return this.#call("/api/v1/payments", request, PaymentResponseSchema);
  }

  /**
   * Asks the cloud for the intent a top-up needs before any card is charged:
   * a journaled top-up credits the wallet only against it. Retried with the
   * same key like a payment; unreachable means no top-up right now.
   */
  topupIntent(request: TopupIntentRequest): Promise<OnlineOutcome<TopupIntentResponse>> {
    return this.#call("/api/v1/topups/intents", request, TopupIntentResponseSchema);
  }

  /**
   * For a payment a crash left unresolved: the answer its key already has,
   * or a void the cloud records under the key, so it is never charged later.
   * Never asks for a new decision: the member is gone.
   */
  settle(request: PaymentRequest): Promise<OnlineOutcome> {
    return this.#call("/api/v1/payments/void", request, PaymentResponseSchema);
  }

  async #call<R extends { key: string }>(
    path: string,
    request: { key: string },
    schema: z.ZodType<R>,
  ): Promise<OnlineOutcome<R>> {
    let attempts = 0;
    try {
      return await this.#policy.execute(async () => {
        attempts++;
        this.#o.onAttempt?.(request.key, attempts);
        return this.#attempt(path, request, schema, attempts);
      });
    } catch (err) {
      if (err instanceof BrokenCircuitError)
        return { kind: "unreachable", reason: "circuit open after repeated failures" };
      if (err instanceof Unreachable) return { kind: "unreachable", reason: err.message };
      throw err;
    }
  }

  async #attempt<R extends { key: string }>(
    path: string,
    request: { key: string },
    schema: z.ZodType<R>,
    attempts: number,
  ): Promise<OnlineOutcome<R>> {
    const url = new URL(path, this.#o.cloudUrl);
    const abort = new AbortController();
    const ms = this.#o.timeoutMs ?? 2500;
    const timer = this.#o.timers.setTimeout(() => abort.abort(new Error(`no answer within ${ms} ms`)), ms);
    let res: Response;
    let text: string;
    try {
      res = await fetch(url, {
        method: "POST",
        headers: { authorization: this.#auth, "content-type": "application/json" },
        body: JSON.stringify(request),
        signal: abort.signal,
      });
      text = await res.text();
    } catch (err) {
      const reason = abort.signal.aborted ? (abort.signal.reason as Error).message : (err as Error).message;
      throw new Unreachable(reason);
    } finally {
      this.#o.timers.clearTimeout(timer);
    }
    if (res.status >= 500 || res.status === 408 || res.status === 429 || res.status === 401) {
      throw new Unreachable(`the cloud answered ${res.status}`);
    }
    if (!res.ok) {
      return { kind: "refused", status: res.status, detail: problemDetail(text) ?? `answered ${res.status}` };
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new Unreachable("the cloud's answer was not JSON");
    }
    const parsed = validate(schema, json);
    if (!parsed.ok) throw new Unreachable(`the cloud's answer to ${path} was not understood: ${parsed.error}`);
    if (parsed.value.key !== request.key) throw new Unreachable("the cloud answered for another payment key");
    return { kind: "answered", response: parsed.value, attempts };
  }
}

function problemDetail(text: string): string | undefined {
  try {
    const p = JSON.parse(text) as { detail?: unknown };
    return typeof p.detail === "string" ? p.detail : undefined;
  } catch {
    return undefined;
  }
}
