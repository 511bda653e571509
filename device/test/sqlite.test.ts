/**
 * The promise layer over sqlite3: statements kept prepared (the journal's
 * append) give the same answers as one-off ones, report a failed prepare
 * instead of hanging, and never keep the connection from closing.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Sqlite } from "../src/sqlite.ts";

const test = suite("sqlite");
let dir = "";

test.before.each(async () => {
  dir = await mkdtemp(join(tmpdir(), "paylane-sqlite-"));
});
test.after.each(async () => {
  await rm(dir, { recursive: true, force: true });
});

const INSERT = "INSERT INTO t (v) VALUES (?) RETURNING id, v";

test("a kept statement answers each call with its own parameters, in call order, committed", async () => {
  const path = join(dir, "a.db");
  const db = await Sqlite.open(path);
  await db.exec("PRAGMA journal_mode = WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)");
  const rows = await Promise.all(["a", "b", "c"].map((v) => db.getPrepared<{ id: number; v: string }>(INSERT, [v])));
  assert.equal(rows, [
    { id: 1, v: "a" },
    { id: 2, v: "b" },
    { id: 3, v: "c" },
  ]);
  // another connection sees every row: each call ran to completion and committed
  const other = await Sqlite.open(path);
  assert.equal(await other.all("SELECT v FROM t ORDER BY id"), [{ v: "a" }, { v: "b" }, { v: "c" }]);
  await other.close();
  await db.close();
});

test("a statement that fails to prepare rejects with SQLite's reason, and is prepared again next time", async () => {
  const db = await Sqlite.open(join(dir, "b.db"));
  try {
    await db.getPrepared(INSERT, ["x"]);
    assert.unreachable("the table does not exist yet");
  } catch (err) {
    assert.match((err as Error).message, /no such table: t/);
  }
  await db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)");
  assert.equal(await db.getPrepared(INSERT, ["x"]), { id: 1, v: "x" });
  await db.close();
});

test("a failing run rejects and the statement stays usable", async () => {
  const db = await Sqlite.open(join(dir, "c.db"));
  await db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)");
  try {
    await db.getPrepared(INSERT, [null]);
    assert.unreachable("v is NOT NULL");
  } catch (err) {
    assert.match((err as Error).message, /NOT NULL constraint failed: t.v/);
  }
  assert.equal(await db.getPrepared(INSERT, ["y"]), { id: 1, v: "y" });
  await db.close();
});

test("close finalizes kept statements, so the connection closes and the file is released", async () => {
  const path = join(dir, "d.db");
  const db = await Sqlite.open(path);
  await db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)");
  const last = db.getPrepared(INSERT, ["z"]);
  await db.close(); // rejects with SQLITE_BUSY if a statement were left unfinalized
  assert.equal(await last, { id: 1, v: "z" }, "a call queued before close still completes");
  const again = await Sqlite.open(path);
  assert.equal(await again.all("SELECT v FROM t"), [{ v: "z" }]);
  await again.close();
});

test.run();
