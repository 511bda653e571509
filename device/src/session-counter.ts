/**
 * The uplink's connection counter (Sparkplug B's bdSeq): one more on every
 * MQTT CONNECT, carried by that connection's birth and its Will, so a Will
 * the broker fires late for a connection already replaced is recognised as
 * older than the birth in force and ignored.
 *
 * It lives in the journal's database (synchronous=FULL), and each number is
 * durable before the CONNECT that uses it goes out: a crash right after can
 * never hand the same number to the next connection. A new table starts from
 * the clock (seconds since 1970) rather than 0, so a journal replaced after
 * damage (journal-recovery.ts) still counts on from above every number its
 * predecessor used, unless that kiosk reconnected more than once a second
 * on average over its whole life.
 */
import type { Sqlite } from "./sqlite.ts";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS uplink_session (
  one INTEGER PRIMARY KEY CHECK (one = 1),
  last INTEGER NOT NULL
);
`;

export class SessionCounter {
  readonly #db: Sqlite;

  private constructor(db: Sqlite) {
    this.#db = db;
  }

  static async open(db: Sqlite, now: () => Date): Promise<SessionCounter> {
    await db.exec(SCHEMA);
    const seed = Math.floor(now().getTime() / 1000);
    await db.run("INSERT OR IGNORE INTO uplink_session (one, last) VALUES (1, ?)", [Math.max(0, seed)]);
    return new SessionCounter(db);
  }

  /** The next session number, recorded before it is returned. */
  async next(): Promise<number> {
    const row = await this.#db.get<{ last: number }>(
      "UPDATE uplink_session SET last = last + 1 WHERE one = 1 RETURNING last",
    );
    if (!row) throw new Error("the uplink_session row is missing from the journal's database");
    return row.last;
  }

  /** The last number handed out (for tests and the status page). */
  async last(): Promise<number> {
    const row = await this.#db.get<{ last: number }>("SELECT last FROM uplink_session WHERE one = 1");
    return row?.last ?? 0;
  }
}
