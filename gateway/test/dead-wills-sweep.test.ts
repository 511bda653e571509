/**
 * The bookkeeping behind a dead instance's Wills (dead-wills.ts) against a
 * real Redis: a Will that fails the check (forged in Redis, or left by an
 * older version) is dropped and the sweep goes on, rather than ending every
 * sweep at it and holding back the Wills behind it; and a kiosk a registry
 * change disconnects leaves the instance's list of connected client ids.
 */

import { deviceIdentity, Registry } from "@paylane/protocol";
import { Redis } from "ioredis";
import { pino } from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { DeadWills, type StoredWill, type WillOutcome } from "../src/dead-wills.ts";
import { Gateway } from "../src/gateway.ts";
import { Clients, eventually, fleetRegistryFile, k1, k2, REDIS_URL, redisPrefix } from "./support/fleet.ts";

const keys = redisPrefix("dead-wills-sweep");

test.after(async () => {
  await keys.clear();
});

/** A Will as another instance (`brokerId`) stored it for `clientId`: its status topic unless told. */
function storedWill(brokerId: string, clientId: string, topic = `paylane/v1/s1/${clientId}/status`) {
  return { clientId, brokerId, topic, payload: '{"state":"offline"}', qos: 1 as const, retain: true };
}

async function* stream(wills: StoredWill[]): AsyncGenerator<StoredWill> {
  yield* wills;
}

test("a refused Will is dropped and the sweep publishes the ones behind it", async () => {
  const redis = new Redis(REDIS_URL, { keyPrefix: `${keys.prefix}:` });
  const published: string[] = [];
  const deleted: string[] = [];
  const outcomes: WillOutcome[] = [];
  const wills = new DeadWills({
    redis,
    brokerId: "live-b",
    instance: "b",
    heartbeatMs: 60_000,
    logger: pino({ level: "silent" }),
    // as the gateway's check: only a kiosk's own status topic
    publish: async (w) => {
      if (w.topic !== `paylane/v1/s1/${w.clientId}/status`) return false;
      published.push(w.clientId!);
      return true;
    },
    deleteWill: async (w) => deleted.push(w.id),
    heldWills: () => [],
    willStored: async () => true,
    onWill: (outcome) => outcomes.push(outcome),
  });
  try {
    await wills.sweep(
      stream([
        storedWill("dead-a", "k1"),
        storedWill("dead-a", "forged", "paylane/v1/s1/k9/cmd"),
        storedWill("dead-a", "k2"),
      ]),
    );
    assert.equal(published, ["k1", "k2"], "the Will behind the refused one went out too");
    assert.equal(deleted, ["k1", "forged", "k2"], "the refused Will is not kept for every next sweep");
    assert.equal(outcomes, ["published", "refused", "published"]);
  } finally {
    await wills.stop(true);
    redis.disconnect();
  }
});

test("a sweep started while the last one still runs does nothing: no Will goes out twice", async () => {
  const redis = new Redis(REDIS_URL, { keyPrefix: `${keys.prefix}:` });
  const published: string[] = [];
  const sweeps: string[] = [];
  let release!: () => void;
  const slow = new Promise<void>((resolve) => {
    release = resolve;
  });
  const wills = new DeadWills({
    redis,
    brokerId: "live-c",
    instance: "c",
    heartbeatMs: 60_000,
    logger: pino({ level: "silent" }),
    publish: async (w) => {
      await slow; // a long sweep: thousands of Wills, one at a time
      published.push(w.clientId!);
      return true;
    },
    deleteWill: async () => undefined,
    heldWills: () => [],
    willStored: async () => true,
    onSweep: (outcome) => sweeps.push(outcome),
  });
  try {
    const first = wills.sweep(stream([storedWill("dead-b", "k1"), storedWill("dead-b", "k2")]));
    // aedes' timer starts the next sweep over the same stored Wills (not deleted yet)
    await wills.sweep(stream([storedWill("dead-b", "k1"), storedWill("dead-b", "k2")]));
    assert.equal(sweeps, ["run", "busy"]);
    release();
    await first;
    assert.equal(published, ["k1", "k2"], "each Will once");
  } finally {
    await wills.stop(true);
    redis.disconnect();
  }
});

test("Redis back after its alive key expired: its clients are looked at once, each closed and counted once", async () => {
  const redis = new Redis(REDIS_URL, { keyPrefix: `${keys.prefix}:` });
  let live = true; // the gateway's live set: the client leaves it at aedes' clientDisconnect
  let closes = 0;
  const counted: number[] = [];
  const wills = new DeadWills({
    redis,
    brokerId: "back-d",
    instance: "d",
    heartbeatMs: 60_000,
    logger: pino({ level: "silent" }),
    publish: async () => true,
    deleteWill: async () => undefined,
    heldWills: () => [
      {
        clientId: "k1",
        closeWithoutWill: () => {
          if (!live) return false;
          closes++;
          // aedes' close unsubscribes (a Redis round trip) before clientDisconnect
          void redis.ping().then(() => {
            live = false;
          });
          return true;
        },
      },
    ],
    willStored: async () => (await redis.get("will-of-k1")) !== null, // gone: another instance published it
    onReannounced: (n) => counted.push(n),
  });
  try {
    await new Promise((resolve) => redis.once("ready", resolve));
    await wills.start(); // its first heartbeat written
    wills.redisLost();
    await redis.del("wills:alive:back-d"); // expired during the outage
    // redisBack looks, and so does its heartbeat, which finds the key gone
    wills.redisBack();
    await eventually(() => !live, 3000, "the client closed");
    await redis.ping(); // after any second look's read of its Will
    assert.is(closes, 1, "closed once");
    assert.equal(counted, [1], "counted once");
  } finally {
    await wills.stop(true);
    redis.disconnect();
  }
});

test("an instance back during a long sweep keeps the Wills of the clients it holds again", async () => {
  const redis = new Redis(REDIS_URL, { keyPrefix: `${keys.prefix}:` });
  const deleted: string[] = [];
  const outcomes: WillOutcome[] = [];
  const wills = new DeadWills({
    redis,
    brokerId: "live-e",
    instance: "e",
    heartbeatMs: 60_000,
    logger: pino({ level: "silent" }),
    publish: async () => {
      // while the first Will goes out, instance x is back (its heartbeat) and holds k2 again
      await redis
        .multi()
        .set("wills:alive:x", "1", "PX", 60_000)
        .sadd("wills:brokers", "x")
        .sadd("wills:clients:x", "k2")
        .exec();
      return true;
    },
    deleteWill: async (w) => deleted.push(w.id),
    heldWills: () => [],
    willStored: async () => true,
    onWill: (outcome) => outcomes.push(outcome),
  });
  try {
    await wills.sweep(stream([storedWill("x", "k1"), storedWill("x", "k2")]));
    assert.equal(outcomes, ["published", "alive"]);
    assert.equal(deleted, ["k1"], "k2's Will is x's live one again: kept for when k2 really goes");
  } finally {
    await redis.del("wills:alive:x", "wills:clients:x", "wills:claim:x");
    await redis.srem("wills:brokers", "x");
    await wills.stop(true);
    redis.disconnect();
  }
});

test("a kiosk disconnected by a registry change is no longer listed as connected on its instance", async () => {
  const file = await fleetRegistryFile();
  const gateway = new Gateway({
    registry: new Registry(file),
    port: 0,
    logger: pino({ level: "silent" }),
    metrics: new MetricsRegistry(),
    instance: "a",
    redis: { url: REDIS_URL, prefix: keys.prefix, heartbeatMs: 200 },
  });
  const clients = new Clients();
  const redis = new Redis(REDIS_URL, { keyPrefix: `${keys.prefix}:` });
  // every instance's list of connected ids, read as the other instances read it
  const listed = async () => {
    const ids: string[] = [];
    for (const key of await redis.keys(`${keys.prefix}:wills:clients:*`)) {
      ids.push(...(await redis.smembers(key.slice(keys.prefix.length + 1))));
    }
    return ids.sort();
  };
  try {
    await gateway.start();
    const gone = await clients.device(gateway.port, k1);
    await clients.device(gateway.port, k2);
    const ids = [deviceIdentity.clientId(k1), deviceIdentity.clientId(k2)].sort();
    await eventually(async () => (await listed()).length === 2, 3000, "both kiosks listed");
    assert.equal(await listed(), ids);
    const closed = new Promise<void>((resolve) => gone.once("close", () => resolve()));
    gateway.replaceRegistry(new Registry({ ...file, devices: file.devices.filter((d) => d.device !== k1.device) }));
    await closed;
    // heartbeats (every 200 ms) rewrite the list from what the instance holds: it must stay off
    await eventually(async () => (await listed()).length === 1, 3000, "the revoked kiosk off the list");
    assert.equal(await listed(), [deviceIdentity.clientId(k2)]);
  } finally {
    await clients.closeAll();
    await gateway.stop();
    redis.disconnect();
  }
});

test.run();
