import { PGlite } from "@electric-sql/pglite";
import type { Database, Queryable } from "./database.ts";

const INT8 = 20;

/** PGlite: Postgres in WASM, in this process. `dataDir` persists it; without one it lives in memory. */
export async function openPglite(dataDir?: string): Promise<Database> {
  const db = await PGlite.create({ dataDir, parsers: { [INT8]: (v: string) => Number(v) } });
  const wrap = (q: Pick<PGlite, "query">): Queryable => ({
    query: async (sql, params) => q.query(sql, params as unknown[]) as never,
  });
  // PGlite is one connection. A session (migrations: its own BEGIN/COMMIT, a lock) has it to
  // itself: sessions take turns, and every other call waits until none is running or queued.
  const noop = () => {};
  let turn: Promise<unknown> = Promise.resolve();
  let sessions = 0;
  const outsideSessions = async () => {
    while (sessions > 0) await turn.then(noop, noop);
  };
  const simple: Queryable = {
    async query(sql, params) {
      if (params && params.length > 0) return db.query(sql, params as unknown[]) as never;
      // no parameters: the simple protocol, several statements allowed; the last one's rows
      const results = await db.exec(sql);
      return { rows: results.at(-1)?.rows ?? [] } as never;
    },
  };
  return {
    kind: "pglite",
    async query(sql, params) {
      if (sessions > 0) await outsideSessions();
      return db.query(sql, params as unknown[]) as never;
    },
    async transaction(fn) {
      if (sessions > 0) await outsideSessions();
      return db.transaction((tx) => fn(wrap(tx)));
    },
    session(fn) {
      sessions++;
      const run = turn.then(noop, noop).then(() => fn(simple));
      turn = run
        .finally(() => {
          sessions--;
        })
        .catch(noop);
      return run;
    },
    async exec(sql) {
      if (sessions > 0) await outsideSessions();
      await db.exec(sql);
    },
    // PGlite is this process: a notification comes with the commit that sent it, and there is no cut.
    async listen(channel, onPayload) {
      if (sessions > 0) await outsideSessions();
      const unlisten = await db.listen(channel, (payload) => {
        try {
          onPayload(payload);
        } catch {
          // a subscriber's failure is its own
        }
      });
      return async () => {
        // closed already (the cloud stops its feed before its database, a test may not)
        if (!db.closed) await unlisten();
      };
    },
    close: () => db.close(),
  };
}
