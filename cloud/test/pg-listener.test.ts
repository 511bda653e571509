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

test.run();
