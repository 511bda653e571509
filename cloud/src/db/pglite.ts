import { PGlite } from "@electric-sql/pglite";
import type { Database, Queryable } from "./database.ts";

const INT8 = 20;

/** PGlite: Postgres in WASM, in this process. `dataDir` persists it; without one it lives in memory. */
export async function openPglite(dataDir?: string): Promise<Database> {
  const db = await PGlite.create({ dataDir, parsers: { [INT8]: (v: string) => Number(v) } });
  const wrap = (q: Pick<PGlite, "query">): Queryable => ({
    query: async (sql, params) => q.query(sql, params as unknown[]) as never,
  });
  // PGlite is one connection: sessions take turns, or two would share one transaction state.
  let turn: Promise<unknown> = Promise.resolve();
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
    ...wrap(db),
    transaction: (fn) => db.transaction((tx) => fn(wrap(tx))),
    session(fn) {
      const run = turn.then(() => fn(simple));
      turn = run.catch(() => {});
      return run;
    },
    async exec(sql) {
      await db.exec(sql);
    },
    close: () => db.close(),
  };
}
