/**
 * The commands this kiosk has answered, by id, so a command delivered twice
 * (republished when the kiosk reconnects, or after the daemon restarted)
 * runs once: the repeat gets the stored answer. Kept in the journal's SQLite
 * file (durable, and there from the first moment of a start), bounded by age
 * and by count, so a kiosk that runs for years does not grow it without end.
 */
import { type CommandResult, CommandResultSchema } from "@paylane/protocol";
import type { Sqlite } from "./sqlite.ts";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS command_results (
  id TEXT PRIMARY KEY,
  command TEXT NOT NULL,
  status TEXT NOT NULL,
  result TEXT NOT NULL,
  answered_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS command_results_answered ON command_results (answered_at);`;

export interface CommandLogLimits {
  /** Ids older than this are forgotten (a command is never redelivered this late: it has expired). */
  keepMs: number;
  /** At most this many ids are kept; the oldest go first. */
  keepCount: number;
}

export const COMMAND_LOG_LIMITS: CommandLogLimits = { keepMs: 30 * 24 * 3600_000, keepCount: 10_000 };

export class CommandLog {
  readonly #db: Sqlite;
  readonly #limits: CommandLogLimits;

  private constructor(db: Sqlite, limits: CommandLogLimits) {
    this.#db = db;
    this.#limits = limits;
  }

  static async open(db: Sqlite, limits: CommandLogLimits = COMMAND_LOG_LIMITS): Promise<CommandLog> {
    await db.exec(SCHEMA);
    return new CommandLog(db, limits);
  }

  /** The last answer recorded for `id`: `accepted` means it started and never finished (the daemon stopped). */
  async get(id: string): Promise<CommandResult | undefined> {
    const row = await this.#db.get<{ result: string }>("SELECT result FROM command_results WHERE id = ?", [id]);
    if (!row) return undefined;
    const parsed = CommandResultSchema.safeParse(JSON.parse(row.result));
    return parsed.success ? parsed.data : undefined;
  }

  /** Records an answer before it is published: what is said once is said the same way again. */
  async record(command: string, result: CommandResult, at: Date): Promise<void> {
    await this.#db.run(
      "INSERT INTO command_results (id, command, status, result, answered_at) VALUES (?, ?, ?, ?, ?) " +
        "ON CONFLICT(id) DO UPDATE SET status = excluded.status, result = excluded.result, answered_at = excluded.answered_at",
      [result.id, command, result.status, JSON.stringify(result), at.getTime()],
    );
  }

  /** Forgets ids past the age limit, then the oldest beyond the count limit; returns how many went. */
  async prune(now: Date): Promise<number> {
    const old = await this.#db.run("DELETE FROM command_results WHERE answered_at < ?", [
      now.getTime() - this.#limits.keepMs,
    ]);
    const over = await this.#db.run(
      "DELETE FROM command_results WHERE id IN (SELECT id FROM command_results ORDER BY answered_at DESC, id LIMIT -1 OFFSET ?)",
      [this.#limits.keepCount],
    );
    return old.changes + over.changes;
  }

  async count(): Promise<number> {
    const row = await this.#db.get<{ n: number }>("SELECT count(*) AS n FROM command_results");
    return row?.n ?? 0;
  }
}
