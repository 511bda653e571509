/**
 * The Wills a dead gateway instance left in Redis, published once, and only
 * for clients that are really gone.
 *
 * aedes (aedes.js `_clearWills`) has every instance, every four heartbeats,
 * stream the stored Wills of brokers it has not heard for three heartbeats
 * and publish them. On its own that goes wrong three ways with N instances:
 *
 * 1. every surviving instance publishes the same Will (N-1 copies);
 * 2. a kiosk that already reconnected to a live instance gets its stale Will
 *    published (aedes finds the new client and checks the Will as its own
 *    PUBLISH), and its retained status reads "offline" while it is online;
 * 3. after a Redis outage longer than three heartbeats, every heartbeat an
 *    instance remembers is stale: it takes live instances (itself included)
 *    for dead and publishes, then deletes, the Wills of connected clients.
 *
 * The gateway takes aedes' Will stream over (`sweep`): it publishes what
 * passes itself and hands aedes nothing, and keeps these keys under the
 * fleet's prefix:
 *
 * - `wills:alive:{brokerId}`: set at every heartbeat, expiring after three;
 *   a broker whose key is there is alive, whatever aedes remembers.
 * - `wills:clients:{brokerId}`: the client ids connected on it (added at
 *   CONNECT, removed at disconnect, rewritten and given the same expiry at
 *   every heartbeat); `wills:brokers` lists the broker ids.
 * - `wills:claim:{deadBrokerId}`: `SET NX PX`, the one instance that
 *   publishes that dead broker's Wills; the others skip them.
 *
 * A Will is published only if its broker is not alive, this instance holds
 * the claim, and no live instance lists its client id (such a Will is
 * deleted: it is stale). It goes out as this instance's own message, then
 * its stored copy is deleted (kept for the next sweep if publishing fails).
 * Not under the dead broker's id, as aedes would: subscribers drop a
 * packet whose broker counter is not above the last they saw of that broker
 * (aedes' `dedupe`), so an instance taken for dead that comes back would have
 * its messages dropped until its counter passed the publisher's. Nothing is
 * swept while Redis is lost and for three heartbeats after it is back, so
 * every live instance has written its keys again before anyone judges it.
 *
 * An instance cut off from Redis alone for longer than three heartbeats is
 * taken for dead all the same (its keys expired while the others kept
 * Redis): another one publishes the Wills of clients still connected to it,
 * whose retained status then reads "offline". Whoever publishes a stored Will
 * deletes it, so when Redis is back (`redisBack`), and once more three
 * heartbeats later (a sweep that judged it dead just before may still be
 * running), the instance looks for its clients that have a Will but none
 * stored any more, and closes them without publishing it again: the Will went
 * out once already, and a second "offline" could land after the client's new
 * birth. They reconnect (through the balancer, to any instance) and announce
 * themselves online. A Redis restarted empty loses every Will and retained
 * status: the same reconnect (of every client with a Will, fleet-wide)
 * brings the statuses back.
 */
import type { Redis } from "ioredis";
import type { Logger } from "pino";

/** A Will as aedes-persistence-redis stores it (putWill adds the two ids). */
export interface StoredWill {
  topic: string;
  payload: Buffer | string;
  qos: 0 | 1 | 2;
  retain: boolean;
  clientId?: string;
  brokerId?: string;
}

/** A client connected to this instance whose CONNECT carried a Will. */
export interface HeldWill {
  clientId: string;
  /** Closes this connection without publishing its Will (another instance did); false if it is gone already. */
  closeWithoutWill: () => boolean;
}

/** What happened to one stored Will of another broker in a sweep. */
export type WillOutcome = "published" | "refused" | "connected" | "alive" | "other-instance";

export interface DeadWillsOptions {
  redis: Redis;
  brokerId: string;
  instance: string;
  heartbeatMs: number;
  logger: Logger;
  /**
   * Publishes a dead instance's Will as this instance's message (checked as aedes' authorizePublish
   * would): false when the check refuses it; rejects when publishing failed (and may work later).
   */
  publish: (will: Omit<StoredWill, "brokerId">) => Promise<boolean>;
  /** Deletes a stored Will (the persistence's delWill). */
  deleteWill: (will: { id: string; brokerId: string }) => Promise<unknown>;
  /** The clients connected here that have a Will. */
  heldWills: () => HeldWill[];
  /** Whether this instance's Will of a client is still stored (the persistence's getWill). */
  willStored: (clientId: string) => Promise<boolean>;
  /** Counts the clients closed so they announce themselves again. */
  onReannounced?: (clients: number) => void;
  /** Counts each Will's outcome, and sweeps run or deferred. */
  onWill?: (outcome: WillOutcome) => void;
  onSweep?: (outcome: "run" | "deferred" | "busy") => void;
  now?: () => number;
}

const BROKERS_KEY = "wills:brokers";
const aliveKey = (id: string) => `wills:alive:${id}`;
const clientsKey = (id: string) => `wills:clients:${id}`;
const claimKey = (id: string) => `wills:claim:${id}`;

/** Three heartbeats: aedes' own "dead" threshold. */
const MISSED = 3;
/** A claim outlives a sweep by far; if its holder dies too, another takes over once it expires. */
const CLAIM_HEARTBEATS = 10;

export class DeadWills {
  readonly #o: DeadWillsOptions;
  readonly #now: () => number;
  /** Connected client ids on this instance, with how many connections hold each (a takeover overlaps). */
  readonly #connected = new Map<string, number>();
  /** Until when sweeps wait: Infinity while Redis is lost, then three heartbeats past its return. */
  #graceUntil = 0;
  #timer: NodeJS.Timeout | undefined;
  #failing = false;
  /** When to look again for clients here whose Wills another instance published (0: not due). */
  #recheckAt = 0;
  /** The look for clients to close that is running, if any. */
  #reannouncing: Promise<void> | undefined;
  /** A sweep is running (aedes' timer starts the next one regardless). */
  #sweeping = false;
  /** A heartbeat of this instance reached Redis: from then on a missing alive key means it expired. */
  #beaten = false;

  constructor(o: DeadWillsOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
  }

  async start(): Promise<void> {
    await this.#beat();
    this.#timer = setInterval(() => void this.#tick(), this.#o.heartbeatMs);
    this.#timer.unref();
  }

  /** Removes this instance's keys (a clean stop: its clients' Wills are handled by aedes as they disconnect). */
  async stop(reachable: boolean): Promise<void> {
    clearInterval(this.#timer);
    if (!reachable) return;
    const id = this.#o.brokerId;
    await this.#o.redis
      .multi()
      .del(aliveKey(id), clientsKey(id))
      .srem(BROKERS_KEY, id)
      .exec()
      .catch(() => {});
  }

  connected(clientId: string): void {
    this.#connected.set(clientId, (this.#connected.get(clientId) ?? 0) + 1);
    const key = clientsKey(this.#o.brokerId);
    void this.#write((m) => m.sadd(key, clientId).pexpire(key, MISSED * this.#o.heartbeatMs));
  }

  disconnected(clientId: string): void {
    const left = (this.#connected.get(clientId) ?? 1) - 1;
    if (left > 0) {
      this.#connected.set(clientId, left);
      return;
    }
    this.#connected.delete(clientId);
    void this.#write((m) => m.srem(clientsKey(this.#o.brokerId), clientId));
  }

  redisLost(): void {
    this.#graceUntil = Number.POSITIVE_INFINITY;
    // Its return schedules the look again.
    this.#recheckAt = 0;
  }

  redisBack(): void {
    this.#graceUntil = this.#now() + MISSED * this.#o.heartbeatMs;
    // A sweep elsewhere that judged this instance dead just before its first heartbeat back may still be publishing.
    this.#recheckAt = this.#graceUntil;
    // The heartbeat first: from then on no other instance takes this one for dead.
    void this.#beat().then(() => this.#reannounce());
  }

  /** Publishes, from aedes' stream of Wills of brokers it takes for dead, those to publish now. */
  async sweep(wills: AsyncIterable<StoredWill>): Promise<void> {
    if (this.#now() < this.#graceUntil) {
      this.#o.onSweep?.("deferred");
      return;
    }
    // aedes starts a sweep on a timer, whether or not the last one ended: a long one (thousands of Wills,
    // one at a time) must not be caught up by the next, which would publish the same Wills again.
    if (this.#sweeping) {
      this.#o.onSweep?.("busy");
      (wills as { destroy?: () => void }).destroy?.(); // the persistence's stream, never read
      return;
    }
    this.#sweeping = true;
    try {
      await this.#sweepAll(wills);
    } finally {
      this.#sweeping = false;
    }
  }

  async #sweepAll(wills: AsyncIterable<StoredWill>): Promise<void> {
    this.#o.onSweep?.("run");
    const self = this.#o.brokerId;
    const verdicts = new Map<string, "alive" | "other-instance" | "ours">();
    for await (const will of wills) {
      const { brokerId, clientId } = will;
      // Its own Wills aedes publishes as each client goes; stale heartbeats must not make it publish them here.
      if (!brokerId || !clientId || brokerId === self) continue;
      let verdict = verdicts.get(brokerId);
      if (!verdict) {
        verdict = await this.#judge(brokerId);
        verdicts.set(brokerId, verdict);
      }
      if (verdict !== "ours") {
        this.#o.onWill?.(verdict);
        continue;
      }
      const holder = await this.#connectedOn(clientId);
      if (holder === brokerId) {
        // Its instance came back during this (long) sweep and holds the client: the Will is its live one.
        this.#o.onWill?.("alive");
        continue;
      }
      if (holder) {
        this.#o.onWill?.("connected");
        this.#o.logger.info(
          { clientId, deadBroker: brokerId, connectedOn: holder },
          "stale Will of a dead instance dropped: its client is connected again",
        );
        await this.#o.deleteWill({ id: clientId, brokerId });
        continue;
      }
      this.#o.logger.info({ clientId, deadBroker: brokerId, topic: will.topic }, "publishing a dead instance's Will");
      const { topic, payload, qos, retain } = will;
      // A failure ends the sweep (aedes logs it) with the Will still stored: the next sweep tries again.
      const published = await this.#o.publish({ topic, payload, qos, retain, clientId });
      // A refused Will never passes: kept, it would end every sweep here and hold back the Wills behind it.
      await this.#o.deleteWill({ id: clientId, brokerId });
      this.#o.onWill?.(published ? "published" : "refused");
    }
  }

  /** Alive (its key is fresh), claimed by another instance, or ours to publish. */
  async #judge(brokerId: string): Promise<"alive" | "other-instance" | "ours"> {
    const redis = this.#o.redis;
    if ((await redis.exists(aliveKey(brokerId))) === 1) return "alive";
    const self = this.#o.brokerId;
    const ttl = CLAIM_HEARTBEATS * this.#o.heartbeatMs;
    const won = await redis.set(claimKey(brokerId), self, "PX", ttl, "NX");
    if (won === "OK") {
      this.#o.logger.warn(
        { deadBroker: brokerId },
        "another gateway instance missed three heartbeats: this one publishes the Wills it left",
      );
      return "ours";
    }
    return (await redis.get(claimKey(brokerId))) === self ? "ours" : "other-instance";
  }

  /** This instance or the live one that lists the client id as connected, if any. */
  async #connectedOn(clientId: string): Promise<string | undefined> {
    if (this.#connected.has(clientId)) return this.#o.brokerId;
    const redis = this.#o.redis;
    const brokers = (await redis.smembers(BROKERS_KEY)).filter((id) => id !== this.#o.brokerId);
    if (brokers.length === 0) return undefined;
    const m = redis.multi();
    for (const id of brokers) m.exists(aliveKey(id)).sismember(clientsKey(id), clientId);
    const replies = (await m.exec()) ?? [];
    const dead: string[] = [];
    let holder: string | undefined;
    for (let i = 0; i < brokers.length; i++) {
      const alive = replies[2 * i]?.[1] === 1;
      const lists = replies[2 * i + 1]?.[1] === 1;
      if (!alive) dead.push(brokers[i]!);
      else if (lists) holder ??= brokers[i];
    }
    // A killed instance never removes itself from the list; one wrongly pruned adds itself at its next heartbeat.
    if (dead.length > 0) await redis.srem(BROKERS_KEY, ...dead);
    return holder;
  }

  async #tick(): Promise<void> {
    await this.#beat();
    if (this.#recheckAt > 0 && this.#now() >= this.#recheckAt) {
      this.#recheckAt = 0;
      await this.#reannounce();
    }
  }

  /**
   * Closes the clients here whose stored Will is gone: only a sweep of
   * another instance, which took this one for dead, deletes the Will of a
   * client still connected here (published, or dropped as stale because a
   * live instance lists the client too), or Redis lost its data. They
   * reconnect and announce themselves online again.
   */
  #reannounce(): Promise<void> {
    // Redis's return starts one, and its heartbeat may start another: one look at a time, or a
    // client is closed (and counted) twice before its disconnect takes it off the live set.
    this.#reannouncing ??= this.#reannounceNow().finally(() => {
      this.#reannouncing = undefined;
    });
    return this.#reannouncing;
  }

  async #reannounceNow(): Promise<void> {
    const held = this.#o.heldWills();
    if (held.length === 0) return;
    let stored: boolean[];
    try {
      stored = await Promise.all(held.map((h) => this.#o.willStored(h.clientId)));
    } catch (err) {
      // Redis lost again: its next return looks again. Any other failure: the next heartbeat does.
      if (this.#o.redis.status === "ready") this.#recheckAt = this.#now();
      this.#o.logger.warn(
        { err: (err as Error).message },
        "could not check whether this instance's Wills were published; retrying",
      );
      return;
    }
    let closed = 0;
    for (let i = 0; i < held.length; i++) {
      if (!stored[i] && held[i]!.closeWithoutWill()) closed++;
    }
    if (closed === 0) return;
    this.#o.onReannounced?.(closed);
    this.#o.logger.warn(
      { clients: closed },
      "this instance was taken for dead while cut off from Redis and another published its clients' Wills: disconnecting those clients so they reconnect and announce themselves online",
    );
  }

  /**
   * Rewrites this instance's keys (its heartbeat). A heartbeat that finds its own alive key gone
   * after an earlier one wrote it means the others may have taken this instance for dead: also
   * after a silent network cut, which ioredis never reports (no error, no reconnect; the commands
   * just wait), so redisLost/redisBack alone would miss it.
   */
  async #beat(): Promise<void> {
    const id = this.#o.brokerId;
    const ttl = MISSED * this.#o.heartbeatMs;
    const ids = [...this.#connected.keys()];
    // EXISTS then SET in one MULTI, rather than SET … GET, which Redis before 6.2 refuses (only at EXEC).
    const replies = await this.#write((m) => {
      m.exists(aliveKey(id)).set(aliveKey(id), "1", "PX", ttl).sadd(BROKERS_KEY, id).del(clientsKey(id));
      if (ids.length > 0) m.sadd(clientsKey(id), ...ids).pexpire(clientsKey(id), ttl);
      return m;
    });
    if (!replies) return;
    const [err, existed] = replies[0] ?? [];
    if (!err && existed === 0 && this.#beaten) {
      // Look now, and once more when a sweep elsewhere that judged it just before must have ended.
      this.#recheckAt = this.#now() + MISSED * this.#o.heartbeatMs;
      void this.#reannounce();
    }
    this.#beaten = true;
  }

  async #write(
    step: (m: ReturnType<Redis["multi"]>) => ReturnType<Redis["multi"]>,
  ): Promise<[Error | null, unknown][] | undefined> {
    // While Redis is lost the next heartbeat after it is back rewrites everything: queue nothing meanwhile.
    if (this.#o.redis.status !== "ready") return undefined;
    try {
      const replies = (await step(this.#o.redis.multi()).exec()) ?? undefined;
      // EXEC runs what it can: a command refused inside it is an error in its reply, not a rejection.
      const refused = replies?.find(([err]) => err)?.[0];
      if (refused) throw refused;
      if (this.#failing) this.#o.logger.info("connected-client list in Redis written again");
      this.#failing = false;
      return replies;
    } catch (err) {
      if (!this.#failing) {
        this.#o.logger.warn({ err: (err as Error).message }, "connected-client list: Redis write failed; retrying");
      }
      this.#failing = true;
    }
  }
}
