/**
 * How many API instances share the rate limits, so that while Redis is away
 * (each instance then counts in process, rate-limiter-flexible's insurance
 * limiter) every instance allows its share of a budget, not all of it: with
 * N instances each allows ceil(points / N), so the fleet together allows the
 * budget (at most N − 1 more, from the rounding up) rather than N times it.
 *
 * While Redis is up each API instance beats every `beatMs`: it puts itself in
 * the sorted set `<prefix>api-instances` (score: its clock), drops members
 * three beats old (instances that died without a word) and counts the rest.
 * A clean stop removes itself at once. When Redis goes away the last count
 * stays: it is as old as the last beat before the outage.
 *
 * The count reaches the limiters through the Redis client they were given
 * (`insuranceLimiter(redis, …)`): the login and enrolment limiters are built
 * deep in the API's composition and see only that client.
 */
import { randomBytes } from "node:crypto";
import { realTimers, type Timers } from "@paylane/protocol";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { type IRateLimiterOptions, RateLimiterMemory, RateLimiterRes } from "rate-limiter-flexible";

/** A live instance beats this often (ms) by default; one silent for three beats no longer counts. */
export const DEFAULT_BEAT_MS = 5000;
const STALE_BEATS = 3;
/** How long a stop waits for Redis to take this instance out of the count (ms). */
const LEAVE_DEADLINE_MS = 1000;

/** The fleet size one Redis client's insurance limiters divide their budgets by. */
export class InsuranceShare {
  #instances = 1;
  readonly #limiters = new Set<InsuranceLimiter>();

  /** The API instances counted at the last beat that reached Redis (1 before any). */
  get instances(): number {
    return this.#instances;
  }

  set instances(n: number) {
    this.#instances = Math.max(1, Math.floor(n));
    for (const limiter of this.#limiters) limiter.points = this.of(limiter.budget);
  }

  /** This instance's share of `points`: ceil(points / N), so a budget of 1 (a lock) stays 1. */
  of(points: number): number {
    return Math.ceil(points / this.#instances);
  }

  /** @internal */
  add(limiter: InsuranceLimiter): void {
    this.#limiters.add(limiter);
    limiter.points = this.of(limiter.budget);
  }
}

const shares = new WeakMap<Redis, InsuranceShare>();
/** Answers an insurance limiter gave, and the share it counted them by. */
const inProcessAnswers = new WeakMap<RateLimiterRes, InsuranceShare>();

/** The share of the limiters on `redis` (one per client, made on first use). */
export function insuranceShare(redis: Redis): InsuranceShare {
  let share = shares.get(redis);
  if (!share) {
    share = new InsuranceShare();
    shares.set(redis, share);
  }
  return share;
}

/** The in-process stand-in for a `RateLimiterRedis` on `redis`: `base.points` divided among the API instances. */
export function insuranceLimiter(redis: Redis, base: IRateLimiterOptions): RateLimiterMemory {
  return new InsuranceLimiter(base, insuranceShare(redis));
}

/**
 * `points` as the limiter that gave `res` counted them: the whole budget when Redis answered, this
 * instance's share when the insurance limiter did (for limits a caller compares against itself).
 */
export function budgetBehind(res: RateLimiterRes, points: number): number {
  return inProcessAnswers.get(res)?.of(points) ?? points;
}

/** A RateLimiterMemory whose points follow the share, and whose answers say they were counted in process. */
class InsuranceLimiter extends RateLimiterMemory {
  readonly budget: number;
  readonly #share: InsuranceShare;

  constructor(base: IRateLimiterOptions, share: InsuranceShare) {
    super(base);
    this.budget = base.points ?? 4; // rate-limiter-flexible's own default
    this.#share = share;
    share.add(this);
  }

  override consume(...args: Parameters<RateLimiterMemory["consume"]>) {
    return this.#mark(super.consume(...args));
  }
  override penalty(...args: Parameters<RateLimiterMemory["penalty"]>) {
    return this.#mark(super.penalty(...args));
  }
  override reward(...args: Parameters<RateLimiterMemory["reward"]>) {
    return this.#mark(super.reward(...args));
  }
  override get(...args: Parameters<RateLimiterMemory["get"]>) {
    return this.#mark(super.get(...args));
  }
  override block(...args: Parameters<RateLimiterMemory["block"]>) {
    return this.#mark(super.block(...args));
  }
  override set(...args: Parameters<RateLimiterMemory["set"]>) {
    return this.#mark(super.set(...args));
  }

  #mark<T extends RateLimiterRes | null>(answer: Promise<T>): Promise<T> {
    return answer.then(
      (res) => {
        if (res) inProcessAnswers.set(res, this.#share);
        return res;
      },
      (refused: unknown) => {
        if (refused instanceof RateLimiterRes) inProcessAnswers.set(refused, this.#share);
        throw refused;
      },
    );
  }
}

export interface ApiInstancesOptions {
  /** The rate limits' Redis client: the count goes to the insurance limiters made on it. */
  redis: Redis;
  /** This instance's name (CLOUD_INSTANCE). */
  instance: string;
  /** Key prefix in Redis (REDIS_PREFIX). */
  prefix?: string;
  now?: () => Date;
  timers?: Timers;
  /** How often this instance says it is alive (ms; default 5000). */
  beatMs?: number;
  logger?: Logger;
}

/** This API instance's beat in Redis, and the count of live instances it reads back. */
export class ApiInstances {
  readonly #o: ApiInstancesOptions;
  readonly #key: string;
  /**
   * The name plus a per-process suffix: two instances left with the same CLOUD_INSTANCE still
   * count as two, and a restarted one's old member only lingers (counting one too many) until it is stale.
   */
  readonly #member: string;
  readonly #share: InsuranceShare;
  #timer: unknown;
  #beating: Promise<number> | undefined;
  #stopped = true;

  constructor(o: ApiInstancesOptions) {
    this.#o = o;
    this.#key = `${o.prefix ?? "paylane:"}api-instances`;
    this.#member = `${o.instance}#${randomBytes(4).toString("hex")}`;
    this.#share = insuranceShare(o.redis);
  }

  /** The live API instances at the last beat that reached Redis (at least 1: this one). */
  get count(): number {
    return this.#share.instances;
  }

  /** The first beat (awaited: the count is known before the API serves), then one every `beatMs`. */
  async start(): Promise<void> {
    this.#stopped = false;
    await this.beat();
  }

  /** Stops beating and leaves the set, so the others count one fewer at their next beat. */
  async stop(): Promise<void> {
    this.#stopped = true;
    (this.#o.timers ?? realTimers).clearTimeout(this.#timer);
    this.#timer = undefined;
    // After a beat under way on the same connection, so that beat cannot add this instance back.
    const left = this.#o.redis.zrem(this.#key, this.#member).catch(() => undefined);
    // Real time, not the injected timers: it bounds a wait on the network (a Redis that went silent
    // must not hold the cloud's stop); unanswered, the member goes stale in three beats anyway.
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, LEAVE_DEADLINE_MS);
    });
    await Promise.race([left, deadline]).finally(() => clearTimeout(timer));
  }

  /** One beat now (or the one under way): the count it read, or the last one when Redis is away. */
  beat(): Promise<number> {
    this.#beating ??= this.#beat().finally(() => {
      this.#beating = undefined;
      if (!this.#stopped) this.#later();
    });
    return this.#beating;
  }

  async #beat(): Promise<number> {
    const beatMs = this.#o.beatMs ?? DEFAULT_BEAT_MS;
    const now = (this.#o.now ?? (() => new Date()))().getTime();
    try {
      const replies = await this.#o.redis
        .multi()
        .zadd(this.#key, now, this.#member)
        .zremrangebyscore(this.#key, "-inf", `(${now - STALE_BEATS * beatMs}`)
        .zcard(this.#key)
        // Every instance gone: the set goes too.
        .pexpire(this.#key, STALE_BEATS * beatMs)
        .exec();
      const counted = Number(replies?.[2]?.[1]);
      if (!Number.isFinite(counted) || counted < 1) return this.count;
      if (counted !== this.count) {
        this.#o.logger?.info(
          { instances: counted, instance: this.#o.instance },
          "API instances sharing the rate limits (each counts its share while Redis is away)",
        );
      }
      this.#share.instances = counted;
    } catch {
      // Redis away: the last count holds until a beat reaches it again.
    }
    return this.count;
  }

  #later(): void {
    const timers = this.#o.timers ?? realTimers;
    timers.clearTimeout(this.#timer);
    this.#timer = timers.setTimeout(() => void this.beat(), this.#o.beatMs ?? DEFAULT_BEAT_MS);
  }
}
