/**
 * REDIS_URL's path is the Redis database index (ioredis reads it so): a word
 * there made the cloud crash at start with a stack trace (SELECT NaN) instead
 * of one line naming the variable.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { parseCloudEnv } from "../src/config.ts";

const base = { REGISTRY_PATH: "registry.json" };

test("REDIS_URL with a path that is not a database number is refused by name, password not echoed", () => {
  assert.throws(
    () => parseCloudEnv({ ...base, REDIS_URL: "redis://:hunter2@127.0.0.1:6379/abc" }),
    (err: Error) => /REDIS_URL: .*database number/.test(err.message) && !err.message.includes("hunter2"),
  );
  assert.is(parseCloudEnv({ ...base, REDIS_URL: "redis://127.0.0.1:6379/3" }).REDIS_URL, "redis://127.0.0.1:6379/3");
  assert.is(parseCloudEnv({ ...base, REDIS_URL: "redis://127.0.0.1:6379" }).REDIS_URL, "redis://127.0.0.1:6379");
});

test.run();
