/**
 * Stopping an instance while its leader is between asking for the lock and
 * being answered (a follower's periodic try, the moment the old leader's lock
 * went free): the answer "taken" must not keep the session held for ever, or
 * stop() never resolves and the instance never shuts down (SIGTERM hangs
 * until Kubernetes kills it, the lock held all that time). The database is a
 * stand-in whose lock query answers only when the test says so.
 */
import { pino } from "pino";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { FakeTimers } from "../../test/support/fake-timers.ts";
import { within } from "../../test/support/within.ts";
import { Leader } from "../src/bridge/leader.ts";
import type { Database, SessionConnection } from "../src/db/database.ts";

test("stop() during the lock query resolves, and the lock taken meanwhile is let go", async () => {
  let unlocked = false;
  let answerLock!: (ok: boolean) => void;
  const lockAnswer = new Promise<boolean>((resolve) => {
    answerLock = resolve;
  });
  let markAsked!: () => void;
  const asked = new Promise<void>((resolve) => {
    markAsked = resolve;
  });
  const conn = {
    query: async (sql: string) => {
      if (sql.includes("pg_try_advisory_lock")) {
        markAsked();
        return { rows: [{ ok: await lockAnswer }] };
      }
      if (sql.includes("pg_advisory_unlock")) unlocked = true;
      return { rows: [] };
    },
    lost: new Promise<Error>(() => {}),
  } as unknown as SessionConnection;
  const db = {
    kind: "pg",
    session: (fn: (c: SessionConnection) => Promise<unknown>) => fn(conn),
  } as unknown as Database;
  const leader = new Leader({ db, logger: pino({ level: "silent" }), instance: "t", timers: new FakeTimers() });
  const started = leader.start();
  await asked;
  const stopping = leader.stop();
  answerLock(true);
  await started;
  await within(stopping, 2000, "stop() after the lock was granted to a stopping instance");
  assert.ok(unlocked, "the lock granted after stop() is unlocked");
  assert.is(leader.leading, false);
});

test.run();
