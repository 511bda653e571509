import type { DeviceAddress, Exposure } from "@paylane/protocol";
import { Redis, type Result } from "ioredis";
import { type DevicePresence, type PresenceStore, type StatusUpdate, unknownPresence } from "./presence-store.ts";

/**
 * Presence in Redis: one hash per device under `{prefix}presence:{site}/{device}`.
 * `touch` only ever moves lastSeen forward (a Lua max), so out-of-order writes
 * from several bridge instances cannot move it back.
 */
export class RedisPresence implements PresenceStore {
  readonly kind = "redis" as const;
  readonly #redis: Redis;
  readonly #prefix: string;

  constructor(url: string, prefix: string) {
    this.#redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 2, enableOfflineQueue: true });
    this.#redis.on("error", () => {}); // reconnects by itself; health reports it
    this.#prefix = prefix;
    // A status and its session rule in one step, so two bridges (or a Will racing a birth) cannot
    // interleave the check and the write. ARGV: state, at, session ('' none), version, bootedAt ('' none).
    this.#redis.defineCommand("setstatus", {
      numberOfKeys: 1,
      lua: `local cur = tonumber(redis.call('HGET', KEYS[1], 'session'))
            local session = tonumber(ARGV[3])
            if ARGV[1] == 'offline' and session and cur and session < cur then return 0 end
            redis.call('HSET', KEYS[1], 'state', ARGV[1], 'statusAt', ARGV[2])
            if ARGV[1] == 'online' then
              if session then redis.call('HSET', KEYS[1], 'session', ARGV[3]) else redis.call('HDEL', KEYS[1], 'session') end
            end
            if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'version', ARGV[4]) end
            if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'bootedAt', ARGV[5]) end
            local seen = redis.call('HGET', KEYS[1], 'lastSeen')
            if (not seen) or seen < ARGV[2] then redis.call('HSET', KEYS[1], 'lastSeen', ARGV[2]) end
            return 1`,
    });
    this.#redis.defineCommand("touchmax", {
      numberOfKeys: 1,
      lua: `local cur = redis.call('HGET', KEYS[1], 'lastSeen')
            if (not cur) or cur < ARGV[1] then redis.call('HSET', KEYS[1], 'lastSeen', ARGV[1]) end
            return 1`,
    });
    // The report and its time in one field, replaced only by a newer one (several bridges, reordered writes).
    this.#redis.defineCommand("exposuremax", {
      numberOfKeys: 1,
      lua: `local cur = redis.call('HGET', KEYS[1], 'paymentsAt')
            if (not cur) or cur < ARGV[1] then redis.call('HSET', KEYS[1], 'paymentsAt', ARGV[1], 'payments', ARGV[2]) end
            return 1`,
    });
  }

  async connect(): Promise<void> {
    try {
      await this.#redis.connect();
    } catch (err) {
      this.#redis.disconnect();
      throw new Error(`cannot connect to REDIS_URL: ${(err as Error).message}`);
    }
  }

  #key(d: DeviceAddress): string {
    return `${this.#prefix}presence:${d.site}/${d.device}`;
  }

  async setStatus(d: DeviceAddress, u: StatusUpdate): Promise<boolean> {
    const applied = await this.#redis.setstatus(
      this.#key(d),
      u.state,
      u.at.toISOString(),
      u.session === undefined ? "" : String(u.session),
      u.version ?? "",
      u.bootedAt ?? "",
    );
    return applied === 1;
  }

  async touch(d: DeviceAddress, at: Date): Promise<void> {
    await this.#redis.touchmax(this.#key(d), at.toISOString());
  }

  async setExposure(d: DeviceAddress, exposure: Exposure, at: Date): Promise<void> {
    await this.#redis.exposuremax(this.#key(d), at.toISOString(), JSON.stringify(exposure));
  }

  async get(devices: readonly DeviceAddress[]): Promise<DevicePresence[]> {
    const pipeline = this.#redis.pipeline();
    for (const d of devices) pipeline.hgetall(this.#key(d));
    const results = (await pipeline.exec()) ?? [];
    return devices.map((d, i) => {
      const [err, h] = results[i] ?? [null, {}];
      const hash = (err ? {} : h) as Record<string, string>;
      if (!hash.state && !hash.lastSeen && !hash.payments) return unknownPresence(d);
      return {
        ...d,
        state: hash.state === "online" || hash.state === "offline" ? hash.state : "unknown",
        lastSeen: hash.lastSeen ?? null,
        statusAt: hash.statusAt ?? null,
        version: hash.version ?? null,
        bootedAt: hash.bootedAt ?? null,
        payments:
          hash.payments && hash.paymentsAt ? { ...(JSON.parse(hash.payments) as Exposure), at: hash.paymentsAt } : null,
      };
    });
  }

  async ping(): Promise<boolean> {
    try {
      return (await this.#redis.ping()) === "PONG";
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    await this.#redis.quit().catch(() => this.#redis.disconnect());
  }
}

declare module "ioredis" {
  interface RedisCommander<Context> {
    touchmax(key: string, at: string): Result<number, Context>;
    setstatus(
      key: string,
      state: string,
      at: string,
      session: string,
      version: string,
      bootedAt: string,
    ): Result<number, Context>;
    exposuremax(key: string, at: string, exposure: string): Result<number, Context>;
  }
}
