/**
 * The failed-enrolment budget per client address (cloud/src/enrolment/limiter.ts):
 * counted in Redis, two API instances share it, so an address cannot spread
 * its guesses over instances behind a load balancer; in process without Redis.
 */
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { dropRedisPrefix, REDIS_URL } from "../../test/support/site.ts";
import { EnrolLimiter } from "../src/enrolment/limiter.ts";

const it = suite("enrolment failure limit");
const prefix = `test:${randomBytes(6).toString("hex")}:`;
const redis = new Redis(REDIS_URL, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1 });

it.before(() => redis.connect());
it.after(async () => {
  redis.disconnect();
  await dropRedisPrefix(prefix);
});

it("two instances on one Redis share an address's budget; another address has its own", async () => {
  const a = new EnrolLimiter({ failuresPerMinute: 3, redis, prefix });
  const b = new EnrolLimiter({ failuresPerMinute: 3, redis, prefix });
  await a.failed("10.0.0.1");
  await b.failed("10.0.0.1");
  assert.is(await a.blockedFor("10.0.0.1"), 0);
  await a.failed("10.0.0.1");
  const wait = await b.blockedFor("10.0.0.1");
  assert.ok(wait > 0 && wait <= 60, `blocked for ${wait} s`);
  assert.is(await b.blockedFor("10.0.0.2"), 0);
});

it("in process without Redis; 0 turns the limit off", async () => {
  const memory = new EnrolLimiter({ failuresPerMinute: 1 });
  await memory.failed("10.0.0.3");
  assert.ok((await memory.blockedFor("10.0.0.3")) > 0);
  const off = new EnrolLimiter({ failuresPerMinute: 0 });
  for (let i = 0; i < 5; i++) await off.failed("10.0.0.3");
  assert.is(await off.blockedFor("10.0.0.3"), 0);
});

it.run();
