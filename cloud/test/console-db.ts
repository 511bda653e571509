/**
 * A real Postgres schema of its own for a console test (dropped after): its
 * open and migrations take a second or two, where PGlite's take ten on a busy
 * machine, and the row locks the session code takes are Postgres' own.
 */
import type { Redis } from "ioredis";
import type { Database } from "../src/db/database.ts";
import { migrate } from "../src/db/migrate.ts";
import { openPg } from "../src/db/pg.ts";

// As test/support/site.ts has them, without loading the whole site harness.
export const PG_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
export const REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

/** Deletes every key under `prefix`. */
export async function dropRedisPrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 500);
    if (keys.length > 0) await redis.del(...keys);
    cursor = next;
  } while (cursor !== "0");
}

export async function openTestSchema(name: string): Promise<{ db: Database; schema: string; drop(): Promise<void> }> {
  const schema = `t_${name.replace(/[^a-z0-9]/g, "_")}_${process.pid}`;
  const db = await openPg({ url: PG_URL, schema });
  await db.exec(`DROP SCHEMA IF EXISTS ${schema} CASCADE; CREATE SCHEMA ${schema}`);
  await migrate(db);
  return {
    db,
    schema,
    async drop() {
      await db.exec(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
      await db.close();
    },
  };
}
