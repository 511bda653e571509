/**
 * A replica of the cloud in its own SQLite file (members; wallets and
 * prices): a cache rebuilt from a full sync at any time, never the record
 * of anything (the journal is). Lookups go through `reader` and, in WAL
 * mode, see the last committed sync; a sync is applied on its own writer
 * connection in one transaction, so no lookup sees one half-applied.
 */
import { openCache, type Sqlite } from "./sqlite.ts";

/** The rows of one table a sync writes. */
export interface TableSync {
  table: string;
  /** The primary key column: a partial sync replaces the rows it carries by it. */
  key: string;
  /** Every row of the table is replaced (a full sync), or only those carried. */
  full: boolean;
  rows: readonly Record<string, unknown>[];
}

export interface SyncWrite {
  /** Whether the sync applies on top of the version held (read inside the transaction). */
  applies: (held: number | null) => boolean;
  tables: readonly TableSync[];
  /** The meta row's columns after the sync (its version among them). */
  meta: Record<string, unknown>;
}

export class ReplicaFile {
  readonly reader: Sqlite;
  readonly #writer: Sqlite;
  readonly #metaTable: string;

  private constructor(reader: Sqlite, writer: Sqlite, metaTable: string) {
    this.reader = reader;
    this.#writer = writer;
    this.#metaTable = metaTable;
  }

  /** Opens (or creates) the file; `schema` makes a one-row `metaTable` (`one = 1`) with a `version` column. */
  static async open(path: string, schema: string, metaTable: string): Promise<ReplicaFile> {
    const { reader, writer } = await openCache(path, schema);
    return new ReplicaFile(reader, writer, metaTable);
  }

  /**
   * Runs lookups on one snapshot: every statement `read` makes sees the same
   * committed sync, even if another commits meanwhile (one lookup alone
   * always does; several in a row need this).
   */
  snapshot<T>(read: () => Promise<T>): Promise<T> {
    return this.reader.transaction(read, "DEFERRED");
  }

  /** Runs a schema change on the writer (a column added since older files were made). */
  async migrate(work: (writer: Sqlite) => Promise<void>): Promise<void> {
    await work(this.#writer);
  }

  /**
   * Applies a sync atomically, or nothing (false) when `applies` says no.
   * Every carried row is removed before any is written back, so a unique
   * value (a card) moving between two carried rows cannot trip a constraint
   * half-way.
   */
  apply(sync: SyncWrite): Promise<boolean> {
    const w = this.#writer;
    return w.transaction(async () => {
      const held = await w.get<{ version: number | null }>(`SELECT version FROM ${this.#metaTable} WHERE one = 1`);
      if (!sync.applies(held?.version ?? null)) return false;
      for (const t of sync.tables) {
        if (t.full) await w.run(`DELETE FROM ${t.table}`);
        else for (const row of t.rows) await w.run(`DELETE FROM ${t.table} WHERE ${t.key} = ?`, [row[t.key]]);
      }
      for (const t of sync.tables) {
        for (const row of t.rows) {
          const columns = Object.keys(row);
          await w.run(
            `INSERT INTO ${t.table} (${columns.join(", ")}) VALUES (${columns.map(() => "?").join(", ")})`,
            Object.values(row),
          );
        }
      }
      const columns = Object.keys(sync.meta);
      await w.run(
        `UPDATE ${this.#metaTable} SET ${columns.map((c) => `${c} = ?`).join(", ")} WHERE one = 1`,
        Object.values(sync.meta),
      );
      return true;
    });
  }

  async close(): Promise<void> {
    await this.#writer.close();
    await this.reader.close();
  }
}
