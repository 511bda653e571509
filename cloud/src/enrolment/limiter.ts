/**
 * Failed enrolment attempts per client address (rate-limiter-flexible, as the
 * API's own limits: in Redis when the cloud has one, in process otherwise).
 * `POST /api/v1/enrol` has no other credential than the claim code, so an
 * address that keeps failing is refused before any code is looked up: a
 * 20-digit code cannot be guessed 10 tries a minute at a time. While Redis is
 * away each API instance counts its share of the budget in process
 * (api/api-instances.ts).
 */
import type { Redis } from "ioredis";
import {
  type RateLimiterAbstract,
  RateLimiterMemory,
  RateLimiterRedis,
  type RateLimiterRes,
} from "rate-limiter-flexible";
import { budgetBehind, insuranceLimiter } from "../api/api-instances.ts";

export const DEFAULT_ENROL_FAILURES_PER_MINUTE = 10;

export interface EnrolLimiterOptions {
  /** Failed attempts per minute per address before 429; 0: no limit. */
  failuresPerMinute: number;
  redis?: Redis;
  prefix?: string;
}

export class EnrolLimiter {
  readonly #limit: number;
  readonly #limiter: RateLimiterAbstract | undefined;

  constructor(o: EnrolLimiterOptions) {
    this.#limit = o.failuresPerMinute;
    if (o.failuresPerMinute <= 0) return;
    const base = { points: o.failuresPerMinute, duration: 60, keyPrefix: `${o.prefix ?? "paylane:"}rl:enrol-failures` };
    this.#limiter = o.redis
      ? new RateLimiterRedis({
          ...base,
          storeClient: o.redis,
          rejectIfRedisNotReady: true,
          insuranceLimiter: insuranceLimiter(o.redis, base),
        })
      : new RateLimiterMemory(base);
  }

  /**
   * Spends one attempt of `address` before its request is read, so requests
   * sent at once cannot all pass a check made before any of them failed:
   * seconds to wait (the attempt refused), or 0 (go on; `succeeded` gives it back).
   * `first`: this is the window's first refusal, the one worth an audit row.
   */
  async attempt(address: string): Promise<{ wait: number; first: boolean }> {
    if (!this.#limiter) return { wait: 0, first: false };
    try {
      await this.#limiter.consume(address);
      return { wait: 0, first: false };
    } catch (res) {
      if (res instanceof Error) throw res;
      const refused = res as RateLimiterRes;
      return {
        wait: Math.max(1, Math.ceil(refused.msBeforeNext / 1000)),
        first: refused.consumedPoints === budgetBehind(refused, this.#limit) + 1,
      };
    }
  }

  /** Gives back the attempt of a request that did not fail (an enrolment, a registry that could not be written). */
  async succeeded(address: string): Promise<void> {
    await this.#limiter?.reward(address).catch(() => undefined);
  }
}
