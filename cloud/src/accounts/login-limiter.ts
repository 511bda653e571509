/**
 * Login brute force limits (rate-limiter-flexible: in Redis when the cloud
 * has one, so every API instance shares them; in process otherwise).
 *
 *   per account   at most `perAccountPerHour` failed logins an hour, and
 *                 after `freeFailures` failures in a row the account is
 *                 locked for 1 s, 2 s, 4 s … (up to `maxLockSeconds`). The
 *                 owner is locked out too while it lasts: that is the price
 *                 of a lock an attacker cannot step around.
 *   per address   at most `perAddressPerHour` failed logins an hour from one
 *                 client address, whatever the usernames: one address
 *                 spraying many accounts is stopped without locking them.
 *
 * Keys are digests of the username as typed, whether or not it exists, so a
 * refusal never tells which accounts exist. Each attempt is spent before the
 * password is checked (a burst sent at once cannot all pass a check made
 * before any failed) and given back when it succeeds. While Redis is away each
 * API instance counts in process, its share of each limit and of the free
 * failures (api/api-instances.ts); a lock is per instance meanwhile.
 */
import { createHash } from "node:crypto";
import type { Redis } from "ioredis";
import {
  type IRateLimiterOptions,
  type RateLimiterAbstract,
  RateLimiterMemory,
  RateLimiterRedis,
  RateLimiterRes,
} from "rate-limiter-flexible";
import { budgetBehind, insuranceLimiter } from "../api/api-instances.ts";

export interface LoginLimitOptions {
  /** Failed logins per account per hour; 0: no limit. */
  perAccountPerHour: number;
  /** Failed logins per client address per hour; 0: no limit. */
  perAddressPerHour: number;
  /** Failures in a row an account is allowed before the first lock. */
  freeFailures: number;
  /** The first lock (seconds); each further failure doubles it. */
  firstLockSeconds: number;
  /** The longest lock (seconds). */
  maxLockSeconds: number;
}

export const DEFAULT_LOGIN_LIMITS: LoginLimitOptions = {
  perAccountPerHour: 100,
  perAddressPerHour: 300,
  freeFailures: 5,
  firstLockSeconds: 1,
  maxLockSeconds: 15 * 60,
};

/** Seconds to wait (0: go on) and which limit said so. */
export interface LoginVerdict {
  wait: number;
  limit?: "account-locked" | "account-hourly" | "address-hourly";
}

const HOUR = 3600;

export class LoginLimiter {
  readonly #o: LoginLimitOptions;
  readonly #account: RateLimiterAbstract | undefined;
  readonly #address: RateLimiterAbstract | undefined;
  readonly #streak: RateLimiterAbstract;
  readonly #lock: RateLimiterAbstract;

  constructor(o: Partial<LoginLimitOptions> & { redis?: Redis; prefix?: string } = {}) {
    this.#o = { ...DEFAULT_LOGIN_LIMITS, ...o };
    const make = (name: string, points: number, duration: number): RateLimiterAbstract => {
      const base: IRateLimiterOptions = { points, duration, keyPrefix: `${o.prefix ?? "paylane:"}rl:login-${name}` };
      // Redis away: counted in process meanwhile (this instance's share), rather than refusing every login or none.
      return o.redis
        ? new RateLimiterRedis({
            ...base,
            storeClient: o.redis,
            rejectIfRedisNotReady: true,
            insuranceLimiter: insuranceLimiter(o.redis, base),
          })
        : new RateLimiterMemory(base);
    };
    const p = this.#o;
    this.#account = p.perAccountPerHour > 0 ? make("account", p.perAccountPerHour, HOUR) : undefined;
    this.#address = p.perAddressPerHour > 0 ? make("address", p.perAddressPerHour, HOUR) : undefined;
    // Failures in a row: forgotten an hour after the first, or at the next success.
    this.#streak = make("streak", Number.MAX_SAFE_INTEGER, HOUR);
    this.#lock = make("lock", 1, 1);
  }

  /** Spends one attempt for `username` from `address`, unless a limit refuses it. */
  async attempt(username: string, address: string): Promise<LoginVerdict> {
    const account = accountKey(username);
    const locked = await this.#lock.get(account);
    if (locked && locked.consumedPoints > 1 && locked.msBeforeNext > 0) {
      return { wait: seconds(locked.msBeforeNext), limit: "account-locked" };
    }
    const byAddress = await spend(this.#address, address);
    if (byAddress) return { wait: byAddress, limit: "address-hourly" };
    const byAccount = await spend(this.#account, account);
    if (byAccount) {
      await this.#address?.reward(address).catch(() => undefined);
      return { wait: byAccount, limit: "account-hourly" };
    }
    return { wait: 0 };
  }

  /** A wrong password (or no such account): the streak grows; returns the lock it set (seconds, 0: none). */
  async failed(username: string): Promise<number> {
    const account = accountKey(username);
    const streak = await this.#streak.penalty(account);
    const beyond = streak.consumedPoints - budgetBehind(streak, this.#o.freeFailures);
    if (beyond < 0) return 0;
    const lock = Math.min(this.#o.maxLockSeconds, this.#o.firstLockSeconds * 2 ** Math.min(beyond, 30));
    await this.#lock.block(account, lock);
    return lock;
  }

  /** A login that succeeded: its attempt is given back and the streak forgotten. */
  async succeeded(username: string, address: string): Promise<void> {
    const account = accountKey(username);
    await Promise.all([
      this.#account?.reward(account),
      this.#address?.reward(address),
      this.#streak.delete(account),
    ]).catch(() => undefined);
  }
}

/** Seconds until the budget has room again, or 0 when the point was spent. */
async function spend(limiter: RateLimiterAbstract | undefined, key: string): Promise<number> {
  if (!limiter) return 0;
  try {
    await limiter.consume(key);
    return 0;
  } catch (err) {
    if (err instanceof RateLimiterRes) return seconds(err.msBeforeNext);
    throw err;
  }
}

const seconds = (ms: number) => Math.max(1, Math.ceil(ms / 1000));

/** Case-folded and hashed: the key holds no user input, and `Alice` is `alice`'s account. */
function accountKey(username: string): string {
  return createHash("sha256").update(username.toLowerCase()).digest("base64url").slice(0, 32);
}
