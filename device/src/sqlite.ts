/**
 * A small promise layer over the `sqlite3` package. Statements from
 * overlapping calls on one connection interleave, and a connection sees its
 * own uncommitted writes: atomicity comes from single statements (the
 * journal) or from a separate writer connection (the replica).
 */
import sqlite3 from "sqlite3";

export type Row = Record<string, unknown>;
export type Params = readonly unknown[];

export class Sqlite {
  readonly #db: sqlite3.Database;

  private constructor(db: sqlite3.Database) {
    this.#db = db;
  }

  static open(path: string): Promise<Sqlite> {
    return new Promise((resolve, reject) => {
      const db = new sqlite3.Database(path, (err) => {
        if (err) reject(new Error(`cannot open SQLite database ${path}: ${err.message}`));
        else resolve(new Sqlite(db));
      });
    });
  }

  run(sql: string, params: Params = []): Promise<{ changes: number; lastID: number }> {
    return new Promise((resolve, reject) => {
      this.#db.run(sql, params, function onRun(err) {
        if (err) reject(err);
        else resolve({ changes: this.changes, lastID: this.lastID });
      });
    });
  }

  /**
   * The first row. Runs the statement to completion (`all`): sqlite3's own
   * get() steps once and finalizes later, and while a statement is still
   * active SQLite does not commit the connection's autocommit writes, so an
   * append could resolve before its row was durable (found by the kill -9
   * test, test/integration/crash-appends.test.ts).
   */
  async get<T = Row>(sql: string, params: Params = []): Promise<T | undefined> {
    const rows = await this.all<T>(sql, params);
    return rows[0];
  }

  all<T = Row>(sql: string, params: Params = []): Promise<T[]> {
    return new Promise((resolve, reject) => {
      this.#db.all(sql, params, (err, rows) => (err ? reject(err) : resolve(rows as T[])));
    });
  }

  exec(sql: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#db.exec(sql, (err) => (err ? reject(err) : resolve()));
    });
  }

  close(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#db.close((err) => (err ? reject(err) : resolve()));
    });
  }
}
