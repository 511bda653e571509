/**
 * Rate limits for the cloud's HTTP API (rate-limiter-flexible): in Redis when
 * the cloud has one (every API instance shares the budget), in process
 * otherwise. Three budgets, each per window:
 *
 *   per credential   each presented `Authorization` header (an operator's
 *                    token, a kiosk's Basic credentials): one client's flood
 *                    throttles that client only. Requests without one
 *                    (/healthz, /readyz, refusals) count per address only.
 *   per address      every request from one client address: a flood guard,
 *                    high, because a venue's kiosks share one NAT address.
 *   auth failures    401 answers per address: an address that keeps
 *                    guessing gets 429 before any (scrypt-priced) check.
 *
 * A credential is keyed by a digest of the header as presented, so nobody can
 * spend a kiosk's budget without its secret. Over budget: 429 problem+json
 * with `Retry-After` (seconds). A limit of 0 turns that budget off (logged at
 * start by the cloud). While Redis is away each instance counts in process,
 * its share of each budget (api-instances.ts).
 */
import { createHash } from "node:crypto";
import { problemResponse } from "@paylane/protocol";
import { registeredCounter } from "@paylane/protocol/service";
import type { Context, MiddlewareHandler } from "hono";
import type { Redis } from "ioredis";
import type { Registry as MetricsRegistry } from "prom-client";
import { type RateLimiterAbstract, RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible";
import { budgetBehind, insuranceLimiter } from "./api-instances.ts";

export interface RateLimitOptions {
  /** The window every budget is counted over (seconds). */
  windowSeconds: number;
  /** Requests per window per presented credential; 0: no limit. */
  perCredential: number;
  /** Requests per window per client address; 0: no limit. */
  perAddress: number;
  /** 401 answers per window per client address before it gets 429; 0: no limit. */
  authFailures: number;
  /** Shared counters (the cloud's ioredis client); unset: counted in this process. */
  redis?: Redis;
  /** Key prefix in Redis. */
  prefix?: string;
  /** Take the client address from the last `X-Forwarded-For` hop (behind one trusted proxy). */
  trustProxy?: boolean;
  metrics?: MetricsRegistry;
}

type Budget = "credential" | "address" | "auth-failures";

export function rateLimit(o: RateLimitOptions): MiddlewareHandler {
  const make = (name: Budget, points: number): RateLimiterAbstract | undefined => {
    if (points <= 0) return undefined;
    const base = { points, duration: o.windowSeconds, keyPrefix: `${o.prefix ?? "paylane:"}rl:${name}` };
    if (!o.redis) return new RateLimiterMemory(base);
    // Redis away: count in process meanwhile (this instance's share), rather than refuse everyone or nobody.
    return new RateLimiterRedis({
      ...base,
      storeClient: o.redis,
      rejectIfRedisNotReady: true,
      insuranceLimiter: insuranceLimiter(o.redis, base),
    });
  };
  const byCredential = make("credential", o.perCredential);
  const byAddress = make("address", o.perAddress);
  const failures = make("auth-failures", o.authFailures);
  // The same registry again (a cloud started a second time) keeps its counter.
  const limited = o.metrics
    ? registeredCounter({
        name: "paylane_cloud_rate_limited_total",
        help: "HTTP requests answered 429, by the budget they exceeded",
        labelNames: ["budget"],
        registers: [o.metrics],
      })
    : undefined;

  const tooMany = (budget: Budget, res: RateLimiterRes, what: string): Response => {
    limited?.inc({ budget });
    const retryAfter = Math.max(1, Math.ceil(res.msBeforeNext / 1000));
    return problemResponse(
      {
        title: "Too many requests",
        status: 429,
        detail: `${what}; retry after ${retryAfter} s`,
        budget,
      },
      { "retry-after": String(retryAfter) },
    );
  };

  /** Spends one point; a 429 answer when the budget is spent. */
  const spend = async (
    limiter: RateLimiterAbstract | undefined,
    budget: Budget,
    key: string | undefined,
    what: string,
  ): Promise<Response | undefined> => {
    if (!limiter || key === undefined) return undefined;
    try {
      await limiter.consume(key);
      return undefined;
    } catch (err) {
      if (err instanceof RateLimiterRes) return tooMany(budget, err, what);
      throw err;
    }
  };

  return async function rateLimit(c, next) {
    const address = clientAddress(c, o.trustProxy ?? false);
    if (failures) {
      const spent = await failures.get(address);
      if (spent && spent.consumedPoints >= budgetBehind(spent, o.authFailures)) {
        return tooMany(
          "auth-failures",
          spent,
          `more than ${o.authFailures} failed authentications from this address in ${o.windowSeconds} s`,
        );
      }
    }
    const refused =
      (await spend(
        byAddress,
        "address",
        address,
        `more than ${o.perAddress} requests from this address in ${o.windowSeconds} s`,
      )) ??
      (await spend(
        byCredential,
        "credential",
        credentialKey(c.req.header("authorization")),
        `more than ${o.perCredential} requests with this credential in ${o.windowSeconds} s`,
      ));
    if (refused) return refused;
    await next();
    if (failures && c.res.status === 401) {
      // Counted after the answer: over budget, the next request from here is refused before it is checked.
      await failures.penalty(address).catch(() => undefined);
    }
  };
}

/** A digest of the presented credential (never the credential itself); none: the address budget alone applies. */
function credentialKey(header: string | undefined): string | undefined {
  if (!header) return undefined;
  return createHash("sha256").update(header).digest("base64url").slice(0, 32);
}

/** The client's address: the socket's peer, or with `trustProxy` the hop the proxy in front of us saw. */
export function clientAddress(c: Context, trustProxy: boolean): string {
  if (trustProxy) {
    const forwarded = c.req.header("x-forwarded-for");
    const last = forwarded?.split(",").at(-1)?.trim();
    if (last) return last;
  }
  const env = c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined;
  return env?.incoming?.socket?.remoteAddress ?? "in-process";
}
