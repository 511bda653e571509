import { PGlite } from "@electric-sql/pglite";
import type { Database, Queryable } from "./database.ts";

const INT8 = 20;

/** PGlite: Postgres in WASM, in this process. `dataDir` persists it; without one it lives in memory. */
export async function openPglite(dataDir?: string): Promise<Database> {
  const db = await PGlite.create({ dataDir, parsers: { [INT8]: (v: string) => Number(v) } });
  const wrap = (q: Pick<PGlite, "query">): Queryable => ({
    query: async (sql, params) => q.query(sql, params as unknown[]) as never,
  });
  return {
    kind: "pglite",
    ...wrap(db),
    transaction: (fn) => db.transaction((tx) => fn(wrap(tx))),
    async exec(sql) {
      await db.exec(sql);
    },
    close: () => db.close(),
  };
}
