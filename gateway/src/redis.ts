/**
 * N gateway instances as one broker: aedes' own Redis modules hold what one
 * aedes keeps in memory, so any instance behind a TCP load balancer serves
 * any client.
 *
 * - `aedes-persistence-redis` (v12: aedes 1.x's async persistence, with
 *   `cleanIncoming`): sessions (clean:false subscriptions and their queued
 *   QoS 1/2 messages), retained messages, Wills, in-flight packets.
 * - `mqemitter-redis`: every PUBLISH goes through Redis pub/sub, so a
 *   subscriber on instance A gets what a client of instance B publishes.
 *
 * Isolation: keys carry ioredis' `keyPrefix` (`{prefix}:`) and pub/sub
 * channels `MQEmitterRedisPrefix`'s (`{prefix}/`: a whole topic level, or a
 * `#` or `+` filter would stop being a wildcard), from `GATEWAY_REDIS_PREFIX`. A database
 * index in the URL (`redis://host:6379/3`) separates keys too, but NOT pub/sub,
 * which Redis shares across databases: two fleets on one Redis need two
 * prefixes.
 *
 * Redis unreachable at start: `start()` rejects with one line (the probe does
 * not retry). Lost while running: ioredis reconnects by itself; meanwhile
 * `state` is "down" (so `/readyz` answers 503 and a load balancer or
 * Kubernetes sends new clients elsewhere). Every message goes through Redis
 * pub/sub, even between two clients of one instance, so nothing is delivered
 * until it is back: a client's PUBLISH then fails and aedes closes that
 * client, which reconnects (docs/scale-gateways.md).
 */
import { redactUrl } from "@paylane/protocol/service";
import createPersistence, { type RedisPersistence } from "aedes-persistence-redis";
import { Redis, type RedisOptions } from "ioredis";
import mqemitterRedis from "mqemitter-redis";

/** mqemitter-redis' prefixing emitter; its bundled typings leave it out. */
interface PrefixedEmitter {
  state: import("node:events").EventEmitter;
  close(callback: () => void): void;
}
const { MQEmitterRedisPrefix } = mqemitterRedis as unknown as {
  MQEmitterRedisPrefix: new (
    prefix: string,
    options: { subConn: Redis; pubConn: Redis; concurrency?: number; matchEmptyLevels?: boolean },
  ) => PrefixedEmitter;
};

export interface RedisSharing {
  /** redis:// or rediss:// URL (user, password and a database index allowed). */
  url: string;
  /** Names every key (`{prefix}:`) and pub/sub channel (`{prefix}/`): gateways that share state share it. */
  prefix: string;
  /**
   * aedes' broker heartbeat (default 10 s; the same on every instance, as each
   * judges the others by its own): the Wills of a dead instance's clients are
   * published, by one instance, once it missed three (dead-wills.ts).
   */
  heartbeatMs?: number;
}

/** How long the start-up probe waits for Redis before saying it cannot reach it. */
const PROBE_TIMEOUT_MS = 3000;

export class RedisBackend {
  readonly #o: RedisSharing;
  #connections: Redis[] = [];
  #persistence: RedisPersistence | undefined;
  #mq: PrefixedEmitter | undefined;
  /** A connection of its own for other parts (the shared-subscription directory), with the key prefix. */
  #spare: Redis | undefined;

  constructor(o: RedisSharing) {
    this.#o = o;
  }

  get persistence(): RedisPersistence {
    if (!this.#persistence) throw new Error("the Redis backend is not started");
    return this.#persistence;
  }

  get mq(): PrefixedEmitter {
    if (!this.#mq) throw new Error("the Redis backend is not started");
    return this.#mq;
  }

  /** A prefixed connection for the gateway's own keys. */
  get redis(): Redis {
    if (!this.#spare) throw new Error("the Redis backend is not started");
    return this.#spare;
  }

  /** "ok" while every connection is ready; "down" while any is reconnecting. */
  get state(): "ok" | "down" {
    return this.#connections.length > 0 && this.#connections.every((c) => c.status === "ready") ? "ok" : "down";
  }

  get where(): string {
    return redactUrl(this.#o.url);
  }

  /**
   * Retained messages held: aedes-persistence-redis keeps them (outside a
   * Redis Cluster) in one hash, `retained`, topic → packet.
   */
  async retainedCount(): Promise<number> {
    return this.redis.hlen("retained");
  }

  /**
   * Probes Redis once (no retry), then opens the connections aedes' modules
   * use. `onLost` is called once when a connection fails (ioredis then
   * reconnects by itself, and would report every attempt), `onBack` once
   * every connection is ready again.
   */
  async start(events: { onLost: (err: Error) => void; onBack: () => void }): Promise<void> {
    await this.#probe();
    let lost = false;
    const onError = (err: Error) => {
      if (lost) return;
      lost = true;
      events.onLost(err);
    };
    const onReady = () => {
      if (!lost || this.state !== "ok") return;
      lost = false;
      events.onBack();
    };
    const open = (extra: RedisOptions = {}) => {
      const c = new Redis(this.#o.url, { lazyConnect: true, ...extra });
      c.on("error", onError);
      c.on("ready", onReady);
      this.#connections.push(c);
      return c;
    };
    const keyed = { keyPrefix: `${this.#o.prefix}:` };
    const db = open(keyed);
    this.#spare = open(keyed);
    // Pub/sub channels are not keys: ioredis' keyPrefix does not touch them, the emitter's prefix does.
    const subConn = open();
    const pubConn = open({ enableAutoPipelining: true });
    await Promise.all(this.#connections.map((c) => c.connect()));
    this.#persistence = createPersistence({ conn: db });
    this.#mq = new MQEmitterRedisPrefix(`${this.#o.prefix}/`, { subConn, pubConn, matchEmptyLevels: true });
    this.#mq.state.on("error", onError);
  }

  async #probe(): Promise<void> {
    const probe = new Redis(this.#o.url, {
      lazyConnect: true,
      connectTimeout: PROBE_TIMEOUT_MS,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    // The socket's own error (ECONNREFUSED, ENOTFOUND, NOAUTH…) says more than connect()'s "Connection is closed".
    let cause: Error | undefined;
    probe.on("error", (err: Error) => {
      cause ??= err;
    });
    try {
      await probe.connect();
      // ioredis SELECTs the URL's database on connect but only emits a failure (index out of range), then runs on
      // database 0: ask again, so a database Redis does not have stops the start instead of sharing database 0.
      const index = Number(new URL(this.#o.url).pathname.slice(1) || "0");
      if (index !== 0) await probe.select(index);
      await probe.ping();
    } catch (err) {
      throw new Error(
        `GATEWAY_REDIS_URL=${this.where}: cannot reach Redis (${(cause ?? (err as Error)).message}); start Redis or fix the URL, or unset it to keep state in memory`,
      );
    } finally {
      probe.disconnect();
    }
  }

  /** After the broker closed (it closes the emitter): the persistence, then every connection. */
  async stop(): Promise<void> {
    const persistence = this.#persistence;
    this.#persistence = undefined;
    this.#mq = undefined;
    this.#spare = undefined;
    // The broker's close already quit the emitter's connections; the persistence unsubscribes on it and
    // disconnects its own. Failures here only mean a connection was already gone.
    // With Redis unreachable destroy() would wait out ioredis' retries: the connections are ended below anyway.
    // (The broker's close has ended the emitter's connections; the persistence's own is the first opened.)
    const reachable = this.#connections[0]?.status === "ready";
    const destroyed = persistence?.destroy().catch(() => {});
    if (reachable) await destroyed;
    for (const c of this.#connections) c.disconnect();
    this.#connections = [];
  }
}
