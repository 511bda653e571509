/**
 * The newest telemetry report of each device: in Redis when REDIS_URL is set
 * (one key per device, `{prefix}telemetry:{site}/{device}`, shared by every
 * cloud instance), in process otherwise. Only a newer report (by the device's
 * own `at`) replaces a stored one, so reordered writes from several bridges
 * never move a device's latest back.
 */
import type { DeviceAddress, Telemetry } from "@paylane/protocol";
import { Redis } from "ioredis";

export interface LatestTelemetry {
  telemetry: Telemetry;
  /** When the cloud received it (ISO 8601). */
  receivedAt: string;
}

export interface LatestTelemetryUpdate extends LatestTelemetry {
  device: DeviceAddress;
}

export interface LatestTelemetryStore {
  readonly kind: "redis" | "memory";
  /** Stores each report unless the device already has a newer one. */
  put(updates: readonly LatestTelemetryUpdate[]): Promise<void>;
  get(device: DeviceAddress): Promise<LatestTelemetry | null>;
  close(): Promise<void>;
}

const key = (d: DeviceAddress) => `${d.site}/${d.device}`;

export class MemoryLatestTelemetry implements LatestTelemetryStore {
  readonly kind = "memory" as const;
  readonly #latest = new Map<string, LatestTelemetry>();

  async put(updates: readonly LatestTelemetryUpdate[]): Promise<void> {
    for (const u of updates) {
      const cur = this.#latest.get(key(u.device));
      if (cur && Date.parse(cur.telemetry.at) >= Date.parse(u.telemetry.at)) continue;
      this.#latest.set(key(u.device), { telemetry: u.telemetry, receivedAt: u.receivedAt });
    }
  }

  async get(device: DeviceAddress): Promise<LatestTelemetry | null> {
    return this.#latest.get(key(device)) ?? null;
  }

  async close(): Promise<void> {}
}

export class RedisLatestTelemetry implements LatestTelemetryStore {
  readonly kind = "redis" as const;
  readonly #redis: Redis;
  readonly #prefix: string;

  constructor(url: string, prefix: string) {
    this.#redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 2, enableOfflineQueue: true });
    this.#redis.on("error", () => {}); // reconnects by itself; a failed put is logged by the recorder
    this.#prefix = prefix;
    // ISO 8601 UTC times compare as strings; the report is kept with its time in one hash.
    this.#redis.defineCommand("telemetrymax", {
      numberOfKeys: 1,
      lua: `local cur = redis.call('HGET', KEYS[1], 'at')
            if (not cur) or cur < ARGV[1] then
              redis.call('HSET', KEYS[1], 'at', ARGV[1], 'receivedAt', ARGV[2], 'report', ARGV[3])
            end
            return 1`,
    });
  }

  async connect(): Promise<void> {
    try {
      await this.#redis.connect();
    } catch (err) {
      this.#redis.disconnect();
      throw new Error(`cannot connect to REDIS_URL for the latest telemetry: ${(err as Error).message}`);
    }
  }

  #key(d: DeviceAddress): string {
    return `${this.#prefix}telemetry:${key(d)}`;
  }

  async put(updates: readonly LatestTelemetryUpdate[]): Promise<void> {
    if (updates.length === 0) return;
    const pipeline = this.#redis.pipeline();
    for (const u of updates) {
      // `at` normalised to UTC milliseconds so the string comparison is a time comparison.
      const at = new Date(u.telemetry.at).toISOString();
      (pipeline as unknown as TelemetryMax).telemetrymax(
        this.#key(u.device),
        at,
        u.receivedAt,
        JSON.stringify(u.telemetry),
      );
    }
    const results = (await pipeline.exec()) ?? [];
    const failed = results.find(([err]) => err);
    if (failed) throw failed[0]!;
  }

  async get(device: DeviceAddress): Promise<LatestTelemetry | null> {
    const h = await this.#redis.hgetall(this.#key(device));
    if (!h.report || !h.receivedAt) return null;
    return { telemetry: JSON.parse(h.report) as Telemetry, receivedAt: h.receivedAt };
  }

  async close(): Promise<void> {
    await this.#redis.quit().catch(() => this.#redis.disconnect());
  }
}

interface TelemetryMax {
  telemetrymax(key: string, at: string, receivedAt: string, report: string): unknown;
}

export async function openLatestTelemetry(redisUrl: string | undefined, prefix: string): Promise<LatestTelemetryStore> {
  if (!redisUrl) return new MemoryLatestTelemetry();
  const store = new RedisLatestTelemetry(redisUrl, prefix);
  await store.connect();
  return store;
}
