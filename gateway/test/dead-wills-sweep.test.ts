/**
 * One sweep of a dead instance's Wills (dead-wills.ts) against a real Redis,
 * with the gateway's publish replaced by a recorder: a Will that fails the
 * check (forged in Redis, or left by an older version) is dropped and the
 * sweep goes on, rather than ending every sweep at it and holding back the
 * Wills behind it.
 */
import { Redis } from "ioredis";
import { pino } from "pino";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { DeadWills, type StoredWill, type WillOutcome } from "../src/dead-wills.ts";
import { REDIS_URL, redisPrefix } from "./support/fleet.ts";

const keys = redisPrefix("dead-wills-sweep");

test.after(async () => {
  await keys.clear();
});

async function* stream(wills: StoredWill[]): AsyncGenerator<StoredWill> {
  yield* wills;
}

test("a refused Will is dropped and the sweep publishes the ones behind it", async () => {
  const redis = new Redis(REDIS_URL, { keyPrefix: `${keys.prefix}:` });
  const published: string[] = [];
  const deleted: string[] = [];
  const outcomes: WillOutcome[] = [];
  const will = (clientId: string, topic: string): StoredWill & { payload: string; qos: 1; retain: true } => ({
    clientId,
    brokerId: "dead-a",
    topic,
    payload: '{"state":"offline"}',
    qos: 1,
    retain: true,
  });
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
        will("k1", "paylane/v1/s1/k1/status"),
        will("forged", "paylane/v1/s1/k9/cmd"),
        will("k2", "paylane/v1/s1/k2/status"),
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

test.run();
