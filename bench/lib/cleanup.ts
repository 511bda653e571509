/** What every bench does last, whatever happened: its schema dropped, its database closed, its folder gone. */
import { rm } from "node:fs/promises";

interface Closable {
  query(sql: string): Promise<unknown>;
  close(): Promise<void>;
}

export async function dropBenchState(db: Closable | undefined, schema: string, dir: string): Promise<void> {
  if (db) {
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch((err: Error) => {
      process.stderr.write(`could not drop schema ${schema}: ${err.message}\n`);
    });
    await db.close().catch(() => {});
  }
  await rm(dir, { recursive: true, force: true });
}
