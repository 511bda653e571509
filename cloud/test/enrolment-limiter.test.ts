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
  assert.is((await a.attempt("10.0.0.1")).wait, 0);
  assert.is((await b.attempt("10.0.0.1")).wait, 0);
  assert.is((await a.attempt("10.0.0.1")).wait, 0, "the third of three is still allowed");
  const refused = await b.attempt("10.0.0.1");
  assert.ok(refused.wait > 0 && refused.wait <= 60, `blocked for ${refused.wait} s`);
  assert.ok(refused.first, "the window's first refusal (the one audited)");
  assert.not.ok((await a.attempt("10.0.0.1")).first, "later refusals are not audited again");
  assert.is((await b.attempt("10.0.0.2")).wait, 0);
});

it("a request that did not fail gives its attempt back", async () => {
  const limiter = new EnrolLimiter({ failuresPerMinute: 1, redis, prefix });
  assert.is((await limiter.attempt("10.0.0.4")).wait, 0);
  await limiter.succeeded("10.0.0.4");
  assert.is((await limiter.attempt("10.0.0.4")).wait, 0, "the enrolment that succeeded did not count");
  assert.ok((await limiter.attempt("10.0.0.4")).wait > 0);
});

it("in process without Redis; 0 turns the limit off", async () => {
  const memory = new EnrolLimiter({ failuresPerMinute: 1 });
  assert.is((await memory.attempt("10.0.0.3")).wait, 0);
  assert.ok((await memory.attempt("10.0.0.3")).wait > 0);
  const off = new EnrolLimiter({ failuresPerMinute: 0 });
  for (let i = 0; i < 5; i++) assert.is((await off.attempt("10.0.0.3")).wait, 0);
});

it.run();
