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

/**
 * Splits a migration on `;` at line ends, except inside a `$$ … $$` body
 * (PL/pgSQL functions hold statements of their own).
 */
export function splitStatements(sql: string): string[] {
  const statements: string[] = [];
  let current: string[] = [];
  let inBody = false;
  for (const raw of sql.split("\n")) {
    const line = inBody ? raw : raw.replace(/--.*$/, "");
    current.push(line);
    if ((line.match(/\$\$/g)?.length ?? 0) % 2 === 1) inBody = !inBody;
    if (!inBody && /;\s*$/.test(line)) {
      statements.push(current.join("\n").replace(/;\s*$/, ""));
      current = [];
    }
  }
  statements.push(current.join("\n"));
  return statements.map((s) => s.trim()).filter(Boolean);
}
