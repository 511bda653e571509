/**
 * Small settings the kiosk keeps across restarts (its mode, the last good
 * desired configuration), one JSON value per name, in the journal's SQLite
 * file: the one store already made durable (WAL, synchronous FULL) and
 * backed up with the kiosk, so no second database to open, check and lose.
 */
import type { Sqlite } from "./sqlite.ts";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS kiosk_settings (
  name TEXT PRIMARY KEY,
  value TEXT NOT NULL,
  updated_at TEXT NOT NULL
);`;

export class SettingsStore {
  readonly #db: Sqlite;

  private constructor(db: Sqlite) {
    this.#db = db;
  }

  /** The settings of an open database (the table is made on first use). */
  static async open(db: Sqlite): Promise<SettingsStore> {
    await db.exec(SCHEMA);
    return new SettingsStore(db);
  }

  /** The stored value, or undefined when none (or it no longer parses: the default applies then). */
  async get<T>(name: string): Promise<T | undefined> {
    const row = await this.#db.get<{ value: string }>("SELECT value FROM kiosk_settings WHERE name = ?", [name]);
    if (!row) return undefined;
    try {
      return JSON.parse(row.value) as T;
    } catch {
      return undefined;
    }
  }

  async set(name: string, value: unknown, at: Date): Promise<void> {
    await this.#db.run(
      "INSERT INTO kiosk_settings (name, value, updated_at) VALUES (?, ?, ?) " +
        "ON CONFLICT(name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
      [name, JSON.stringify(value), at.toISOString()],
    );
  }
}
