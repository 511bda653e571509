/**
 * The LISTEN connection on a real Postgres: a close that comes while the
 * connection is still opening leaves nothing behind (no connection, no
 * heartbeat timer holding the process).
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { PG_URL } from "../../test/support/site.ts";
import { PgListener } from "../src/db/pg-listener.ts";

/** Backends connected under `app`, as Postgres counts them. */
async function backends(app: string): Promise<number> {
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  try {
    const { rows } = await client.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1",
      [app],
    );
    return rows[0]!.n;
  } finally {
    await client.end();
  }
}

test("a close while the connection is opening ends that connection: nothing is left listening", async () => {
  const app = `paylane-listener-${randomBytes(4).toString("hex")}`;
  const listener = new PgListener({ connectionString: PG_URL, application_name: app });
  try {
    const listening = listener.listen("paylane_test", () => {});
    await listener.close();
    const outcome = await listening.then(
      () => "listening",
      (err: Error) => err.message,
    );
    assert.match(outcome, /closed while connecting/, "the listen in progress is told why it failed");
    assert.is(await backends(app), 0, "no connection of the closed listener is left open");
  } finally {
    await listener.close(); // without the fix, the leaked connection and its heartbeat would hold the process
  }
});

test("a close during a reopen after a cut leaves no retry timer behind once that reopen fails", async () => {
  const app = `paylane-listener-${randomBytes(4).toString("hex")}`;
  let opens = 0;
  let reopening = () => {};
  const reopened = new Promise<void>((r) => (reopening = r));
  let release = () => {};
  const released = new Promise<void>((r) => (release = r));
  const listener = new PgListener(async () => {
    if (++opens === 2) {
      reopening();
      await released;
    }
    return { connectionString: PG_URL, application_name: app };
  });
  // The reopened connection's end is the last step of the failed reopen.
  let ended = () => {};
  const reopenEnded = new Promise<void>((r) => (ended = r));
  const end = pg.Client.prototype.end;
  const endPromise = end as (this: pg.Client) => Promise<void>;
  try {
    await listener.listen("paylane_test", () => {});
    await terminate(app); // the cut: the listener reopens after its pause
    await reopened;
    await listener.close();
    pg.Client.prototype.end = function (this: pg.Client) {
      const done = endPromise.call(this);
      void done.finally(ended);
      return done;
    } as typeof end;
    release();
    await reopenEnded;
    await new Promise((r) => setImmediate(r)); // the failed reopen's handlers run
    assert.equal(
      process.getActiveResourcesInfo().filter((r) => r === "Timeout"),
      [],
      "no retry armed after the close: it would hold the stopped process",
    );
  } finally {
    pg.Client.prototype.end = end;
    release();
    await listener.close();
  }
});

/** Ends the backends connected under `app` from the server's side. */
async function terminate(app: string): Promise<void> {
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  try {
    await client.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", [app]);
  } finally {
    await client.end();
  }
}

test.run();
