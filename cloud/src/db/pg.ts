import pg from "pg";
import type { Database, Queryable } from "./database.ts";
import { PgListener } from "./pg-listener.ts";

const INT8 = 20;

export interface PgOptions {
  url: string;
  /** Schema holding PayLane's tables; created if missing. Tests use one per run. */
  schema: string;
  max?: number;
  /**
   * A statement with no answer by then fails on the client and its connection
   * is dropped (default 30 s). Without it, a reply lost with the connection
   * still open (a Postgres host dying mid-statement, no RST, no FIN) left the
   * ingest statement pending forever and its devices never acked again.
   */
  queryTimeoutMs?: number;
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

export async function openPg(o: PgOptions): Promise<Database> {
  if (!SCHEMA_NAME.test(o.schema))
    throw new Error(`DATABASE_SCHEMA ${JSON.stringify(o.schema)}: expected ${SCHEMA_NAME}`);
  const pool = new pg.Pool({
    connectionString: o.url,
    max: o.max ?? 10,
    query_timeout: o.queryTimeoutMs ?? 30_000,
    keepAlive: true,
    connectionTimeoutMillis: 10_000,
    // jit=off: every cloud statement is short OLTP work. The ingest statement's high-water step
    // is estimated from whole-table statistics (~1M cost) although it reads a handful of rows,
    // which crosses jit_above_cost and spends ~300 ms compiling a 25 ms statement.
    options: `-c search_path=${o.schema} -c jit=off`,
    // seqs and versions are bigint in SQL and safe integers in JS
    types: {
      getTypeParser: ((oid: number, format?: "text" | "binary") =>
        oid === INT8 ? Number : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
  });
  // An idle client losing its connection (a Postgres restart) must not crash the process.
  pool.on("error", () => {});
  try {
    const client = await pool.connect();
    try {
      // Under a lock, because concurrent CREATE SCHEMA IF NOT EXISTS can still collide in the catalog.
      await client.query("BEGIN");
      await client.query("SELECT pg_advisory_xact_lock(7410)");
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${o.schema}`);
      await client.query("COMMIT");
    } finally {
      client.release();
    }
  } catch (err) {
    await pool.end();
    throw new Error(`cannot connect to DATABASE_URL: ${(err as Error).message}`);
  }
  // Opened at the first listen(): a cloud that never listens holds no extra connection.
  // Named, so ops (and the tests that cut it) find it in pg_stat_activity.
  const listener = new PgListener({
    connectionString: o.url,
    connectionTimeoutMillis: 10_000,
    application_name: `paylane-live:${o.schema}`,
  });
  return {
    kind: "pg",
    listen: (channel, onPayload, events) => listener.listen(channel, onPayload, events),
    query: async (sql, params) => pool.query(sql, params as unknown[]) as never,
    async transaction(fn) {
      const client = await pool.connect();
      try {
        await client.query("BEGIN");
        const tx: Queryable = { query: async (sql, params) => client.query(sql, params as unknown[]) as never };
        const result = await fn(tx);
        await client.query("COMMIT");
        return result;
      } catch (err) {
        await client.query("ROLLBACK").catch(() => {});
        throw err;
      } finally {
        client.release();
      }
    },
    async session(fn) {
      const client = await pool.connect();
      let broken: Error | undefined;
      try {
        return await fn({
          async query(sql, params) {
            const result: pg.QueryResult | pg.QueryResult[] = await client.query(sql, params as unknown[]);
            // several statements (no parameters): pg answers each; the last one's rows, as PGlite gives them
            return (Array.isArray(result) ? result.at(-1)! : result) as never;
          },
        });
      } catch (err) {
        broken = err as Error;
        throw err;
      } finally {
        // A session that failed may leave a transaction open: the pool gets a fresh connection instead.
        client.release(broken);
      }
    },
    async exec(sql) {
      await pool.query(sql);
    },
    async close() {
      await listener.close();
      await pool.end();
    },
  };
}
