/**
 * A small promise layer over the `sqlite3` package. Statements from
 * overlapping calls on one connection interleave, and a connection sees its
 * own uncommitted writes: atomicity comes from single statements (the
 * journal) or from a separate writer connection (the replicas, `openCache`).
 */
import sqlite3 from "sqlite3";

export type Row = Record<string, unknown>;
export type Params = readonly unknown[];

export class Sqlite {
  readonly #db: sqlite3.Database;
  /** The transactions of this connection, one after another (see `transaction`). */
  #transactions: Promise<unknown> = Promise.resolve();
  /** Statements compiled once and kept (see `getPrepared`), by SQL text; finalized by close(). */
  readonly #prepared = new Map<string, Promise<sqlite3.Statement>>();

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

  /**
   * `get` on a statement compiled on first use and kept: SQLite compiles a
   * statement's triggers with it, which cost the journal's append more CPU
   * than the insert itself (bench/journal.bench.ts). For fixed, hot SQL only.
   * Calls on one statement run in order, one at a time.
   */
  async getPrepared<T = Row>(sql: string, params: Params = []): Promise<T | undefined> {
    const stmt = await this.#prepare(sql);
    return new Promise((resolve, reject) => {
      // all(), as in get(): run to completion, so an autocommit write is committed when this resolves.
      stmt.all(params, (err, rows) => (err ? reject(err) : resolve((rows as T[])[0])));
    });
  }

  #prepare(sql: string): Promise<sqlite3.Statement> {
    let ready = this.#prepared.get(sql);
    if (!ready) {
      // With a callback, a failed prepare is reported to it (without one, sqlite3 emits 'error').
      ready = new Promise((resolve, reject) => {
        const stmt: sqlite3.Statement = this.#db.prepare(sql, (err) => (err ? reject(err) : resolve(stmt)));
      });
      this.#prepared.set(sql, ready);
      ready.catch(() => this.#prepared.delete(sql)); // tried again on the next call
    }
    return ready;
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

  /**
   * Runs `work` in one transaction: committed when it resolves, rolled back
   * when it throws. IMMEDIATE (the default) takes the write lock at once; a
   * DEFERRED one that only reads sees one snapshot of the file for all its
   * statements (WAL). Transactions on one connection run one at a time, or
   * the statements of one would land inside the other.
   */
  transaction<T>(work: () => Promise<T>, mode: "IMMEDIATE" | "DEFERRED" = "IMMEDIATE"): Promise<T> {
    const run = this.#transactions.then(async () => {
      await this.exec(`BEGIN ${mode}`);
      try {
        const result = await work();
        await this.exec("COMMIT");
        return result;
      } catch (err) {
        // err is what went wrong; a failed COMMIT may already have ended the transaction
        await this.exec("ROLLBACK").catch(() => {});
        throw err;
      }
    });
    this.#transactions = run.catch(() => {}); // the caller sees the failure; the next transaction still runs
    return run;
  }

  /** Closes the connection once the transactions in progress have ended. */
  async close(): Promise<void> {
    await this.#transactions;
    // A connection with unfinalized statements does not close; finalize waits for their queued calls.
    for (const ready of this.#prepared.values()) {
      const stmt = await ready.catch(() => undefined);
      await new Promise<void>((resolve) => (stmt ? stmt.finalize(() => resolve()) : resolve()));
    }
    this.#prepared.clear();
    return new Promise((resolve, reject) => {
      this.#db.close((err) => (err ? reject(err) : resolve()));
    });
  }
}

/**
 * A cache the cloud can rebuild at any time (the replicas): its writes go
 * through `writer`, and lookups on `reader` (WAL) see the last committed
 * state, never a transaction half-way.
 */
export async function openCache(path: string, schema: string): Promise<{ reader: Sqlite; writer: Sqlite }> {
  const writer = await Sqlite.open(path);
  await writer.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;");
  await writer.exec(schema);
  const reader = await Sqlite.open(path);
  await reader.exec("PRAGMA busy_timeout = 5000;");
  return { reader, writer };
}
