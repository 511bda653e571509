/**
 * Schema migrations, run by node-pg-migrate: `migrations/NNN_name.sql`, in
 * order, each in its own transaction, recorded in `pgmigrations` of the
 * cloud's schema. A migration already applied is never applied again, and one
 * added before an applied one is refused (node-pg-migrate's order check).
 *
 * Both backends run it the same way, on one connection held for the whole run
 * (`Database.session`): under a blocking advisory lock, so several cloud
 * instances starting at once apply each migration once; the others wait, then
 * find nothing left to do.
 */
import { basename } from "node:path";
import { fileURLToPath } from "node:url";
import { runner } from "node-pg-migrate";
import type { ClientBase } from "pg";
import type { Database, Queryable } from "./database.ts";

const MIGRATIONS = fileURLToPath(new URL("../../migrations/", import.meta.url));

/** Where node-pg-migrate records what it applied (its default name). */
export const MIGRATIONS_TABLE = "pgmigrations";

/** Held for the whole run; the same key the hand-written runner used, so an older instance waits too. */
const LOCK = 7411;

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

/** Applies what is not applied yet; returns the files it applied, in order ("005_ledger.sql"). */
export function migrate(db: Database): Promise<string[]> {
  return db.session(async (conn) => {
    await conn.query(`SELECT pg_advisory_lock(${LOCK})`);
    try {
      const { rows } = await conn.query<{ schema: string }>("SELECT current_schema() AS schema");
      const schema = rows[0]!.schema;
      await adoptLegacyLog(conn, schema);
      const applied = await runner({
        // The session is all node-pg-migrate asks of a client: query(sql) on one connection.
        dbClient: conn as unknown as ClientBase,
        dir: MIGRATIONS,
        migrationsTable: MIGRATIONS_TABLE,
        schema,
        direction: "up",
        noLock: true,
        checkOrder: true,
        logger: quiet,
      });
      return applied.map((m) => basename(m.path));
    } catch (err) {
      // A failed migration leaves its transaction open on this connection.
      await conn.query("ROLLBACK").catch(() => {});
      throw err;
    } finally {
      await conn.query(`SELECT pg_advisory_unlock(${LOCK})`).catch(() => {});
    }
  });
}

/**
 * A database migrated by the hand-written runner this one replaced holds its
 * log in `schema_migrations` (version = file name, applied_at): carried over
 * once, in one transaction, so nothing it applied is applied again.
 */
async function adoptLegacyLog(conn: Queryable, schema: string): Promise<void> {
  const tables = await conn.query<{ name: string }>(
    "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = $1 AND table_name IN ($2, $3)",
    [schema, "schema_migrations", MIGRATIONS_TABLE],
  );
  const names = tables.rows.map((t) => t.name);
  if (!names.includes("schema_migrations") || names.includes(MIGRATIONS_TABLE)) return;
  const q = `"${schema}"`;
  await conn.query(`BEGIN;
    CREATE TABLE ${q}.${MIGRATIONS_TABLE} (id SERIAL PRIMARY KEY, name varchar(255) NOT NULL, run_on timestamp NOT NULL);
    INSERT INTO ${q}.${MIGRATIONS_TABLE} (name, run_on)
      SELECT regexp_replace(version, '\\.sql$', ''), applied_at FROM ${q}.schema_migrations ORDER BY version;
    DROP TABLE ${q}.schema_migrations;
    COMMIT;`);
}
