/**
 * MQTT shared subscriptions (`$share/{group}/{filter}`, MQTT 5 §4.8.2) on
 * aedes, which has none (moscajs/aedes#228; PR #449 never landed): the cloud
 * runs several bridges that must split the ingest, each event to one of them.
 *
 * Why it is done this way: aedes subscribes the client to the literal
 * `$share/…` filter (stored, restored with its session, unsubscribed as
 * usual), which no topic ever matches, so aedes itself delivers nothing on it
 * and sends no retained message for it (§4.8.2: none on a shared
 * subscription). This module subscribes the broker's emitter once to the
 * inner filter per shared subscription, and hands each message to ONE
 * connected member through the member's own `publish` (aedes lib/client.js:
 * its session queue, then `deliverQoS` / `deliver0`) — the path ordinary
 * subscriptions take, so the operator site filter (authorizeForward), QoS 1
 * in-flight state and the session's outgoing queue all apply. The delivered PUBLISH carries the
 * original topic, at the lower of the message's and the subscription's QoS,
 * with retain cleared. A member that disconnects or unsubscribes leaves.
 *
 * Several gateway instances on Redis see every message (mqemitter-redis), so
 * each must agree which one delivers it: every instance with members computes
 * the same owner, a hash of the packet's `brokerId:brokerCounter` (set by the
 * instance it was published on) over the members of every instance, from a
 * directory of member counts per instance (`ShareDirectory`). While a change
 * of membership propagates (about one heartbeat), instances may disagree and
 * deliver a message twice or not at all; the cloud tolerates both (kiosks
 * republish until acked, the inbox deduplicates: docs/scale-gateways.md).
 *
 * A member that also holds an ordinary subscription matching the same message
 * gets it once (aedes deduplicates per client by brokerId and counter).
 */
import type { Aedes, AedesPublishPacket, Client, Subscription } from "aedes";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { splitSharedFilter } from "./acl.ts";

/** Members of one shared subscription on one broker instance. */
export interface Holder {
  broker: string;
  members: number;
}

/**
 * Who holds members of each shared subscription, fleet-wide. `holders` is
 * read for every message, so it answers from memory.
 */
export interface ShareDirectory {
  /** This instance now has `members` connected members of `key` (`$share/{group}/{filter}`). */
  setLocal(key: string, members: number): void;
  /** Instances with members of `key`, sorted by broker id: the same list everywhere once it settled. */
  holders(key: string): readonly Holder[];
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** One instance: the directory is this instance alone. */
export class LocalDirectory implements ShareDirectory {
  readonly #self: string;
  readonly #counts = new Map<string, number>();

  constructor(brokerId: string) {
    this.#self = brokerId;
  }

  setLocal(key: string, members: number): void {
    if (members > 0) this.#counts.set(key, members);
    else this.#counts.delete(key);
  }

  holders(key: string): readonly Holder[] {
    const members = this.#counts.get(key) ?? 0;
    return members > 0 ? [{ broker: this.#self, members }] : [];
  }

  async start(): Promise<void> {}
  async stop(): Promise<void> {}
}

/** The broker's emitter, as aedes holds it (`broker.mq`): local, or mqemitter-redis. */
interface Emitter {
  on(topic: string, listener: (packet: { topic: string; payload: unknown }, done: () => void) => void): void;
  removeListener(
    topic: string,
    listener: (packet: { topic: string; payload: unknown }, done: () => void) => void,
  ): void;
  emit(packet: { topic: string; payload: Buffer }, done?: (err?: Error) => void): void;
}

export interface RedisDirectoryOptions {
  /** A connection with the gateway's key prefix. */
  redis: Redis;
  broker: Aedes;
  /** GATEWAY_INSTANCE, stored beside the counts for people reading Redis. */
  instance: string;
  logger: Logger;
  /** How often each instance rewrites its counts and rereads the others' (their entries live 3 times this). */
  heartbeatMs?: number;
}

const BROKERS_KEY = "shared:brokers";
const brokerKey = (id: string) => `shared:broker:${id}`;
/** Published through the broker's emitter (Redis) when an instance's counts changed: the others reread at once. */
const CHANGED = (id: string) => `$SYS/${id}/paylane/shared-members`;
const ANY_CHANGED = "$SYS/+/paylane/shared-members";

/**
 * The directory in Redis: each instance keeps `shared:broker:{brokerId}` =
 * `{instance, counts: {key: members}}` with a TTL of three heartbeats, listed
 * in the set `shared:brokers`. An instance that dies stops refreshing its
 * entry, which expires: the others drop it within three heartbeats (its share
 * of messages is not delivered until then). A change is written at once and
 * announced on the emitter, so the others reread without waiting for their
 * heartbeat.
 */
export class RedisDirectory implements ShareDirectory {
  readonly #o: RedisDirectoryOptions;
  readonly #heartbeatMs: number;
  readonly #local = new Map<string, number>();
  #remote = new Map<string, Holder[]>();
  #timer: NodeJS.Timeout | undefined;
  #flushQueued = false;
  #refreshQueued = false;
  #failing = false;
  /** Broker ids whose directory entry did not parse at the last read (logged once each). */
  #badEntries = new Set<string>();
  #stopped = true;
  readonly #onChanged = (packet: { topic: string }, done: () => void) => {
    if (packet.topic !== CHANGED(this.#o.broker.id)) this.#queueRefresh();
    done();
  };

  constructor(o: RedisDirectoryOptions) {
    this.#o = o;
    this.#heartbeatMs = o.heartbeatMs ?? 1000;
  }

  get #mq(): Emitter {
    return (this.#o.broker as unknown as { mq: Emitter }).mq;
  }

  setLocal(key: string, members: number): void {
    if (members > 0) this.#local.set(key, members);
    else this.#local.delete(key);
    this.#queueFlush();
  }

  holders(key: string): readonly Holder[] {
    const remote = this.#remote.get(key) ?? [];
    const mine = this.#local.get(key) ?? 0;
    if (mine === 0) return remote;
    return [...remote, { broker: this.#o.broker.id, members: mine }].sort((a, b) =>
      a.broker < b.broker ? -1 : a.broker > b.broker ? 1 : 0,
    );
  }

  async start(): Promise<void> {
    this.#stopped = false;
    this.#mq.on(ANY_CHANGED, this.#onChanged);
    await this.#write();
    await this.#refresh();
    this.#timer = setInterval(() => {
      this.#write()
        .then(() => this.#refresh())
        .catch(() => {});
    }, this.#heartbeatMs);
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#mq.removeListener(ANY_CHANGED, this.#onChanged);
    const self = this.#o.broker.id;
    // Redis unreachable: each command would wait out ioredis' retries; the entry expires by itself.
    if (this.#o.redis.status !== "ready") return;
    try {
      // Leaving at once: the others need not wait for the entry to expire.
      await this.#o.redis.del(brokerKey(self));
      await this.#o.redis.srem(BROKERS_KEY, self);
      await new Promise<void>((resolve) =>
        this.#mq.emit({ topic: CHANGED(self), payload: Buffer.from(self) }, () => resolve()),
      );
    } catch {
      // Redis gone: the entry expires by itself.
    }
  }

  #queueFlush(): void {
    if (this.#flushQueued || this.#stopped) return;
    this.#flushQueued = true;
    setImmediate(() => {
      this.#flushQueued = false;
      if (this.#stopped) return;
      this.#write()
        .then(() => this.#mq.emit({ topic: CHANGED(this.#o.broker.id), payload: Buffer.from(this.#o.broker.id) }))
        .catch(() => {});
    });
  }

  #queueRefresh(): void {
    if (this.#refreshQueued || this.#stopped) return;
    this.#refreshQueued = true;
    setImmediate(() => {
      this.#refreshQueued = false;
      if (!this.#stopped) this.#refresh().catch(() => {});
    });
  }

  async #write(): Promise<void> {
    const self = this.#o.broker.id;
    const entry = JSON.stringify({ instance: this.#o.instance, counts: Object.fromEntries(this.#local) });
    await this.#guard(async () => {
      await this.#o.redis.set(brokerKey(self), entry, "PX", this.#heartbeatMs * 3);
      await this.#o.redis.sadd(BROKERS_KEY, self);
    });
  }

  async #refresh(): Promise<void> {
    const self = this.#o.broker.id;
    await this.#guard(async () => {
      const ids = (await this.#o.redis.smembers(BROKERS_KEY)).filter((id) => id !== self).sort();
      const entries = ids.length > 0 ? await this.#o.redis.mget(ids.map(brokerKey)) : [];
      const next = new Map<string, Holder[]>();
      const gone: string[] = [];
      const bad = new Set<string>();
      ids.forEach((id, i) => {
        const raw = entries[i];
        if (!raw) {
          gone.push(id);
          return;
        }
        const counts = parseCounts(raw);
        if (!counts) {
          // One bad entry (another version, a hand edit) must not blind this instance to the others.
          if (!this.#badEntries.has(id)) {
            this.#o.logger.warn(
              { broker: id, entry: raw.slice(0, 200) },
              'shared-subscription directory: an instance\'s entry is not {"counts":{…}} JSON; ignoring that instance until it writes a good one',
            );
          }
          bad.add(id);
          return;
        }
        for (const [key, members] of Object.entries(counts)) {
          if (members > 0) next.set(key, [...(next.get(key) ?? []), { broker: id, members }]);
        }
      });
      this.#remote = next;
      this.#badEntries = bad;
      if (gone.length > 0) await this.#o.redis.srem(BROKERS_KEY, ...gone);
    });
  }

  /** Runs a Redis step; a failure is logged once until Redis answers again. */
  async #guard(step: () => Promise<void>): Promise<void> {
    try {
      await step();
      if (this.#failing) this.#o.logger.info("shared-subscription directory in Redis reachable again");
      this.#failing = false;
    } catch (err) {
      if (!this.#failing) {
        this.#o.logger.warn(
          { err: (err as Error).message },
          "shared-subscription directory: Redis unreachable; keeping the last known members",
        );
      }
      this.#failing = true;
    }
  }
}

/** What happened to one message on this instance's copy of a shared subscription. */
export type ShareOutcome = "delivered" | "other-instance" | "no-member";

/** aedes' client internals this module uses (lib/client.js): `closed` and `subscriptions` are absent from its typings. */
interface DeliveringClient {
  readonly id: string;
  readonly closed: boolean;
  readonly subscriptions: Record<string, { qos: number } | undefined>;
  publish(packet: AedesPublishPacket, done: () => void): void;
}

interface Member {
  client: DeliveringClient;
  qos: 0 | 1 | 2;
}

interface Group {
  key: string;
  filter: string;
  members: Member[];
  /** Round robin over the local members. */
  next: number;
  listener: (packet: AedesPublishPacket, done: () => void) => void;
}

export interface SharedSubscriptionsOptions {
  broker: Aedes;
  directory: ShareDirectory;
  /** Called for every message on every local shared subscription (metrics). */
  onOutcome?: (outcome: ShareOutcome) => void;
}

/** An instance's member counts from its directory entry, or undefined when the entry is not what #write writes. */
function parseCounts(raw: string): Record<string, number> | undefined {
  try {
    const counts = (JSON.parse(raw) as { counts?: unknown } | null)?.counts;
    if (typeof counts !== "object" || counts === null || Array.isArray(counts)) return undefined;
    const entries = Object.entries(counts);
    return entries.every(([, n]) => typeof n === "number") ? (counts as Record<string, number>) : undefined;
  } catch {
    return undefined;
  }
}

const isShared = (filter: string) => filter.startsWith("$share/");

export class SharedSubscriptions {
  readonly #o: SharedSubscriptionsOptions;
  readonly #groups = new Map<string, Group>();
  readonly #listeners: [string, (...args: unknown[]) => void][] = [];

  constructor(o: SharedSubscriptionsOptions) {
    this.#o = o;
  }

  /** Connected members on this instance, over every shared subscription. */
  get localMembers(): number {
    let n = 0;
    for (const g of this.#groups.values()) n += g.members.length;
    return n;
  }

  /** Local members per shared subscription (tests, logs). */
  membersOf(key: string): number {
    return this.#groups.get(key)?.members.length ?? 0;
  }

  start(): void {
    const on = <A extends unknown[]>(event: string, fn: (...args: A) => void) => {
      const listener = fn as unknown as (...args: unknown[]) => void;
      (this.#o.broker as unknown as NodeJS.EventEmitter).on(event, listener);
      this.#listeners.push([event, listener]);
    };
    on("subscribe", (subs: Subscription[], client: Client) => {
      for (const sub of subs) {
        // 128: refused by authorizeSubscribe (SUBACK failure); aedes' typings know only 0 to 2.
        if (isShared(sub.topic) && (sub.qos as number) !== 128) this.#join(client, sub.topic, sub.qos);
      }
    });
    on("unsubscribe", (filters: string[], client: Client) => {
      for (const filter of filters) if (isShared(filter)) this.#leave(internals(client), filter);
    });
    // A session restored at CONNECT (clean:false) gets its subscriptions back without a "subscribe" event.
    on("clientReady", (client: Client) => {
      for (const [filter, sub] of Object.entries(internals(client).subscriptions)) {
        if (isShared(filter) && sub) this.#join(client, filter, sub.qos);
      }
    });
    on("clientDisconnect", (client: Client) => {
      for (const key of [...this.#groups.keys()]) this.#leave(internals(client), key);
    });
  }

  stop(): void {
    const emitter = this.#o.broker as unknown as NodeJS.EventEmitter;
    for (const [event, fn] of this.#listeners) emitter.off(event, fn);
    this.#listeners.length = 0;
    for (const group of this.#groups.values()) {
      this.#o.broker.unsubscribe(group.filter, group.listener, () => {});
      this.#o.directory.setLocal(group.key, 0);
    }
    this.#groups.clear();
  }

  #join(client: Client, key: string, qos: number): void {
    const member = internals(client);
    if (member.closed) return;
    let group = this.#groups.get(key);
    if (!group) {
      const split = splitSharedFilter(key);
      // authorizeSubscribe refuses a malformed `$share`; nothing to join.
      if (!split?.group) return;
      group = this.#createGroup(key, split.filter);
    }
    const level = Math.min(Math.max(qos, 0), 2) as 0 | 1 | 2;
    const existing = group.members.find((m) => m.client === member);
    if (existing) existing.qos = level;
    else group.members.push({ client: member, qos: level });
    this.#o.directory.setLocal(key, group.members.length);
  }

  #createGroup(key: string, filter: string): Group {
    // [MQTT-4.7.2-1]: a filter starting with a wildcard never matches a `$` topic.
    const skipDollar = filter.startsWith("+") || filter.startsWith("#");
    const group: Group = {
      key,
      filter,
      members: [],
      next: 0,
      listener: (packet, done) => {
        if (skipDollar && packet.topic.startsWith("$")) {
          done();
          return;
        }
        this.#dispatch(group, packet, done);
      },
    };
    this.#groups.set(key, group);
    this.#o.broker.subscribe(filter, group.listener, () => {});
    return group;
  }

  #leave(client: DeliveringClient, key: string): void {
    const group = this.#groups.get(key);
    if (!group) return;
    const index = group.members.findIndex((m) => m.client === client);
    if (index < 0) return;
    group.members.splice(index, 1);
    this.#o.directory.setLocal(key, group.members.length);
    if (group.members.length > 0) return;
    this.#groups.delete(key);
    this.#o.broker.unsubscribe(group.filter, group.listener, () => {});
  }

  /** Synchronous up to the member's deliver call, so messages reach it in the order they came. */
  #dispatch(group: Group, packet: AedesPublishPacket, done: () => void): void {
    const owner = ownerOf(this.#o.directory.holders(group.key), packet);
    if (owner !== undefined && owner !== this.#o.broker.id) {
      this.#o.onOutcome?.("other-instance");
      done();
      return;
    }
    const live = group.members.filter((m) => !m.client.closed);
    if (live.length === 0) {
      this.#o.onOutcome?.("no-member");
      done();
      return;
    }
    const member = live[group.next++ % live.length]!;
    if (group.next >= Number.MAX_SAFE_INTEGER) group.next = 0;
    // A fresh packet: no messageId (the member's session assigns one), retain cleared, QoS capped by the grant.
    const out = {
      cmd: "publish",
      brokerId: packet.brokerId,
      brokerCounter: packet.brokerCounter,
      topic: packet.topic,
      payload: packet.payload,
      qos: Math.min(packet.qos, member.qos),
      retain: false,
      dup: false,
    } as AedesPublishPacket;
    this.#o.onOutcome?.("delivered");
    // Client#publish: at QoS 1/2 a clean:false member's session queue holds it first (as aedes' own
    // enqueueOffline does for ordinary subscriptions), then deliverQoS; deliver0 at QoS 0.
    member.client.publish(out, done);
  }
}

const internals = (client: Client) => client as unknown as DeliveringClient;

/**
 * The broker that delivers `packet`: members are numbered across `holders`
 * (sorted by broker id, so every instance numbers them alike) and the
 * packet's hash picks one, so each instance takes load in proportion to its
 * members. Undefined when nobody holds members.
 */
export function ownerOf(holders: readonly Holder[], packet: { brokerId?: string; brokerCounter?: number }) {
  let total = 0;
  for (const h of holders) total += h.members;
  if (total === 0) return undefined;
  let pick = fnv1a(`${packet.brokerId ?? ""}:${packet.brokerCounter ?? 0}`) % total;
  for (const h of holders) {
    if (pick < h.members) return h.broker;
    pick -= h.members;
  }
  return undefined;
}

/** FNV-1a, 32 bits: cheap, stable across processes and versions (unlike a seeded hash). */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}
