/**
 * One contract suite for both database backends: a real Postgres (at
 * TEST_DATABASE_URL or postgres://postgres@127.0.0.1:5432/test, in a schema of
 * its own that is dropped at the end) and PGlite in this process.
 */
import { randomBytes } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { Database } from "../src/db/database.ts";
import { MIGRATIONS_TABLE, migrate } from "../src/db/migrate.ts";
import { openPg } from "../src/db/pg.ts";
import { openPglite } from "../src/db/pglite.ts";

const PG_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const MIGRATIONS = fileURLToPath(new URL("../migrations/", import.meta.url));

interface Opened {
  db: Database;
  /** Closes the database and removes whatever the test created. */
  dispose(): Promise<void>;
}

interface Backend {
  name: string;
  open(): Promise<Opened>;
}

const backends: Backend[] = [
  {
    name: "pg",
    async open() {
      const schema = `t_${randomBytes(6).toString("hex")}`;
      const db = await openPg({ url: PG_URL, schema });
      return {
        db,
        async dispose() {
          try {
            await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
            const { rows } = await db.query("SELECT 1 FROM pg_namespace WHERE nspname = $1", [schema]);
            assert.is(rows.length, 0, `schema ${schema} was dropped`);
          } finally {
            await db.close();
          }
        },
      };
    },
  },
  {
    name: "pglite",
    async open() {
      const db = await openPglite();
      return { db, dispose: () => db.close() };
    },
  },
];

async function migrationFiles(): Promise<string[]> {
  return (await readdir(MIGRATIONS)).filter((f) => /^\d{3}_.+\.sql$/.test(f)).sort();
}

function databaseContract(backend: Backend): void {
  const test = suite<{ opened: Opened; db: Database }>(`database contract: ${backend.name}`, {} as never);
  test.before(async (ctx) => {
    ctx.opened = await backend.open();
    ctx.db = ctx.opened.db;
  });
  test.after(async (ctx) => {
    await ctx.opened.dispose();
  });

  test("kind names the backend", ({ db }) => {
    assert.is(db.kind, backend.name);
  });

  test("migrate applies every migration once, in order, and records each", async ({ db }) => {
    const files = await migrationFiles();
    assert.ok(files.length > 0, "there are migrations to apply");
    assert.equal(await migrate(db), files);
    // node-pg-migrate's log: one row per file, by name without the extension, in the order applied
    const { rows } = await db.query<{ name: string; run_on: Date }>(
      `SELECT name, run_on FROM ${MIGRATIONS_TABLE} ORDER BY id`,
    );
    assert.equal(
      rows.map((r) => `${r.name}.sql`),
      files,
    );
    for (const r of rows) assert.instance(r.run_on, Date);
    // The tables exist and are empty.
    for (const table of ["sites", "members", "devices", "device_streams", "inbox", "checkins", "quarantine"]) {
      const { rows: count } = await db.query<{ n: number }>(`SELECT count(*) AS n FROM ${table}`);
      assert.is(count[0]!.n, 0, table);
    }
  });

  test("a second migrate applies nothing and records nothing new", async ({ db }) => {
    assert.equal(await migrate(db), []);
    const { rows } = await db.query<{ n: number }>(`SELECT count(*) AS n FROM ${MIGRATIONS_TABLE}`);
    assert.is(rows[0]!.n, (await migrationFiles()).length);
  });

  test("a database the hand-written runner migrated is adopted: only what it lacks is applied", async () => {
    const files = await migrationFiles();
    const last = files.at(-1)!;
    const fresh = await backend.open();
    try {
      // As the old runner left a database one migration behind: it ran each file in order and logged
      // it in schema_migrations; the last file is neither run nor logged.
      const behind = files.slice(0, -1);
      for (const file of behind) await fresh.db.exec(await readFile(join(MIGRATIONS, file), "utf8"));
      await fresh.db.exec(
        "CREATE TABLE schema_migrations (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
      );
      for (const file of behind) await fresh.db.query("INSERT INTO schema_migrations (version) VALUES ($1)", [file]);
      assert.equal(await migrate(fresh.db), [last], "only the migration the old log lacks");
      const { rows } = await fresh.db.query<{ name: string }>(`SELECT name FROM ${MIGRATIONS_TABLE} ORDER BY id`);
      assert.equal(
        rows.map((r) => `${r.name}.sql`),
        files,
      );
      const legacy = await fresh.db.query(
        "SELECT 1 FROM information_schema.tables WHERE table_name = 'schema_migrations' AND table_schema = current_schema()",
      );
      assert.is(legacy.rows.length, 0, "the old log is gone once carried over");
      assert.equal(await migrate(fresh.db), []);
    } finally {
      await fresh.dispose();
    }
  });

  test("a failed migration applies nothing of itself, is not recorded, and the database stays usable", async () => {
    const fresh = await backend.open();
    try {
      // The first migration's tables exist already: its CREATE TABLE fails half-way through the file.
      await fresh.db.exec("CREATE TABLE devices (x int)");
      let caught: unknown;
      try {
        await migrate(fresh.db);
      } catch (err) {
        caught = err;
      }
      assert.instance(caught, Error);
      const { rows } = await fresh.db.query<{ n: number }>(
        "SELECT count(*) AS n FROM information_schema.tables WHERE table_name = 'sites' AND table_schema = current_schema()",
      );
      assert.is(rows[0]!.n, 0, "the failed migration's earlier statements were rolled back");
      const log = await fresh.db.query<{ n: number }>(`SELECT count(*) AS n FROM ${MIGRATIONS_TABLE}`);
      assert.is(log.rows[0]!.n, 0);
      await fresh.db.exec("DROP TABLE devices");
      assert.equal(await migrate(fresh.db), await migrationFiles(), "a retry applies everything");
    } finally {
      await fresh.dispose();
    }
  });

  test("transaction commits when the function resolves, and returns its value", async ({ db }) => {
    await db.exec("CREATE TABLE tx_commit (id int8 PRIMARY KEY, note text NOT NULL)");
    const result = await db.transaction(async (tx) => {
      await tx.query("INSERT INTO tx_commit (id, note) VALUES ($1, $2)", [1, "one"]);
      await tx.query("INSERT INTO tx_commit (id, note) VALUES ($1, $2)", [2, "two"]);
      const { rows } = await tx.query<{ n: number }>("SELECT count(*) AS n FROM tx_commit");
      return rows[0]!.n;
    });
    assert.is(result, 2, "the transaction sees its own writes");
    const { rows } = await db.query<{ id: number; note: string }>("SELECT id, note FROM tx_commit ORDER BY id");
    assert.equal(rows, [
      { id: 1, note: "one" },
      { id: 2, note: "two" },
    ]);
  });

  test("transaction rolls back everything when the function throws, and rethrows", async ({ db }) => {
    await db.exec("CREATE TABLE tx_rollback (id int8 PRIMARY KEY)");
    await db.query("INSERT INTO tx_rollback (id) VALUES (1)");
    const boom = new Error("refused half-way");
    let caught: unknown;
    try {
      await db.transaction(async (tx) => {
        await tx.query("INSERT INTO tx_rollback (id) VALUES (2)");
        await tx.query("DELETE FROM tx_rollback WHERE id = 1");
        throw boom;
      });
    } catch (err) {
      caught = err;
    }
    assert.is(caught, boom, "the function's own error comes back");
    const { rows } = await db.query<{ id: number }>("SELECT id FROM tx_rollback ORDER BY id");
    assert.equal(rows, [{ id: 1 }]);
  });

  test("transaction rolls back when a statement fails, and the database stays usable", async ({ db }) => {
    await db.exec("CREATE TABLE tx_failed (id int8 PRIMARY KEY)");
    let caught: unknown;
    try {
      await db.transaction(async (tx) => {
        await tx.query("INSERT INTO tx_failed (id) VALUES (1)");
        await tx.query("INSERT INTO tx_failed (id) VALUES (1)");
      });
    } catch (err) {
      caught = err;
    }
    assert.instance(caught, Error);
    assert.match((caught as Error).message, /duplicate key/);
    const { rows } = await db.query<{ n: number }>("SELECT count(*) AS n FROM tx_failed");
    assert.is(rows[0]!.n, 0);
    await db.transaction((tx) => tx.query("INSERT INTO tx_failed (id) VALUES (1)"));
    const after = await db.query<{ n: number }>("SELECT count(*) AS n FROM tx_failed");
    assert.is(after.rows[0]!.n, 1);
  });

  test("a session's transaction is its own: a query from outside never lands in it", async ({ db }) => {
    await db.exec("CREATE TABLE session_apart (id int8 PRIMARY KEY)");
    let outside: Promise<unknown> | undefined;
    await db.session(async (conn) => {
      await conn.query("BEGIN");
      await conn.query("INSERT INTO session_apart (id) VALUES (1)");
      outside = db.query("INSERT INTO session_apart (id) VALUES (2)");
      for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
      await conn.query("ROLLBACK");
    });
    await outside;
    const { rows } = await db.query<{ id: number }>("SELECT id FROM session_apart ORDER BY id");
    assert.equal(rows, [{ id: 2 }], "the session's row rolled back, the outside one kept");
  });

  test("a session may send several statements at once, and gets the last one's rows", async ({ db }) => {
    const { rows } = await db.session((conn) => conn.query<{ n: number }>("SELECT 1 AS n; SELECT 2 AS n"));
    assert.equal(rows, [{ n: 2 }]);
  });

  test("int8 columns come back as JS numbers", async ({ db }) => {
    await db.query("INSERT INTO sites (id, name, members_version) VALUES ($1, $2, $3)", ["s1", "Site", 41]);
    const { rows } = await db.query<{ members_version: unknown }>("SELECT members_version FROM sites WHERE id = 's1'");
    assert.is(rows[0]!.members_version, 41);
    const big = await db.query<{ n: unknown; c: unknown; s: unknown }>(
      "SELECT $1::int8 AS n, count(*) AS c, max(members_version) AS s FROM sites",
      [Number.MAX_SAFE_INTEGER],
    );
    assert.equal(big.rows[0], { n: Number.MAX_SAFE_INTEGER, c: 1, s: 41 });
    assert.is(typeof big.rows[0]!.c, "number");
    const inTx = await db.transaction((tx) => tx.query<{ n: unknown }>("SELECT 7::int8 AS n"));
    assert.is(inTx.rows[0]!.n, 7, "inside a transaction too");
  });

  // Regression: the migrations log was created outside the advisory lock, and concurrent
  // cloud starts on a fresh Postgres collided in the catalog (pg_type_typname_nsp_index).
  test("concurrent migrate calls on a fresh database apply each migration exactly once", async () => {
    const files = await migrationFiles();
    // The race is timing-dependent (about 4 runs in 5 fail): three fresh databases make a miss unlikely.
    for (let round = 0; round < 3; round++) {
      const fresh = await backend.open();
      try {
        const results = await Promise.allSettled([migrate(fresh.db), migrate(fresh.db), migrate(fresh.db)]);
        const errors = results.flatMap((r) => (r.status === "rejected" ? [(r.reason as Error).message] : []));
        assert.equal(errors, [], `round ${round}`);
        const applied = results.flatMap((r) => (r.status === "fulfilled" ? r.value : []));
        assert.equal(applied.sort(), files, "each migration applied by exactly one caller");
        const { rows } = await fresh.db.query<{ n: number }>(`SELECT count(*) AS n FROM ${MIGRATIONS_TABLE}`);
        assert.is(rows[0]!.n, files.length);
      } finally {
        await fresh.dispose();
      }
    }
  });

  test.run();
}

for (const backend of backends) databaseContract(backend);

const pgOnly = suite("openPg");

pgOnly("refuses a schema name that is not a plain identifier, naming it", async () => {
  for (const schema of ["public; DROP TABLE x", "Upper", "1abc", ""]) {
    try {
      await openPg({ url: PG_URL, schema });
      assert.unreachable(`schema ${schema} should be refused`);
    } catch (err) {
      assert.match((err as Error).message, `DATABASE_SCHEMA ${JSON.stringify(schema)}`);
    }
  }
});

pgOnly("an unreachable server gives a clear error", async () => {
  try {
    const db = await openPg({ url: "postgres://postgres@127.0.0.1:1/test", schema: "t_unreachable" });
    await db.close();
    assert.unreachable("connecting to port 1 should fail");
  } catch (err) {
    assert.match((err as Error).message, /^cannot connect to DATABASE_URL: /);
  }
});

pgOnly.run();
