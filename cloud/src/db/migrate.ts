import { readdir, readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import type { Database } from "./database.ts";

const MIGRATIONS = fileURLToPath(new URL("../../migrations/", import.meta.url));

/**
 * Applies `migrations/NNN_name.sql` in order, each in its own transaction,
 * and records it. An advisory lock makes concurrent starts of several cloud
 * instances apply each migration once.
 */
export async function migrate(db: Database): Promise<string[]> {
  // Under the same lock as the migrations: concurrent CREATE TABLE IF NOT EXISTS races in Postgres' catalog.
  await db.transaction(async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock(7411)");
    await tx.query(
      "CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
    );
  });
  const files = (await readdir(MIGRATIONS)).filter((f) => /^\d{3}_.+\.sql$/.test(f)).sort();
  const applied: string[] = [];
  for (const file of files) {
    const sql = await readFile(`${MIGRATIONS}${file}`, "utf8");
    const done = await db.transaction(async (tx) => {
      await tx.query("SELECT pg_advisory_xact_lock(7411)");
      const seen = await tx.query("SELECT 1 FROM schema_migrations WHERE version = $1", [file]);
      if (seen.rows.length > 0) return false;
      for (const statement of splitStatements(sql)) await tx.query(statement);
      await tx.query("INSERT INTO schema_migrations (version) VALUES ($1)", [file]);
      return true;
    });
    if (done) applied.push(file);
  }
  return applied;
}

/** Splits a migration on `;` at line ends; our migrations keep no `;` inside statements. */
function splitStatements(sql: string): string[] {
  return sql
    .replace(/--.*$/gm, "")
    .split(/;\s*$/m)
    .map((s) => s.trim())
    .filter(Boolean);
}
