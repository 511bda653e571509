/**
 * Payment intents: a payment's key and request, written before the first
 * attempt to authorize it (online or offline), so every retry and a restart
 * after a crash reuse the same key. They live in the journal's file (one
 * fsync domain): the entry that records an approved payment settles its
 * intent in the same statement (a trigger on the journal), and the money
 * this kiosk is owed an answer for is read beside the journal's entries.
 */
import type { Journal } from "../journal.ts";
import type { Sqlite } from "../sqlite.ts";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS payment_intents (
  key TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  member_id TEXT NOT NULL,
  amount INTEGER NOT NULL,
  currency TEXT NOT NULL,
  request TEXT NOT NULL,
  created_at TEXT NOT NULL,
  -- pending: the outcome is not known yet; journaled: its entry is in the journal; declined; abandoned
  state TEXT NOT NULL DEFAULT 'pending',
  seq INTEGER
);
-- The entry that records an approved payment settles its intent in the same statement.
CREATE TRIGGER IF NOT EXISTS journal_settles_intent AFTER INSERT ON journal
WHEN NEW.kind IN ('payment', 'topup')
BEGIN
  UPDATE payment_intents SET state = 'journaled', seq = NEW.seq WHERE key = json_extract(NEW.body, '$.key');
END;
`;

export interface PaymentIntent {
  key: string;
  kind: "purchase" | "topup";
  memberId: string;
  amount: number;
  currency: string;
  /** What is asked of the cloud (or the terminal), reused as is on every retry. */
  request: Record<string, unknown>;
  createdAt: string;
}

interface IntentRow {
  key: string;
  kind: PaymentIntent["kind"];
  member_id: string;
  amount: number;
  currency: string;
  request: string;
  created_at: string;
}

export class PaymentIntents {
  readonly #journal: Journal;
  readonly #db: Sqlite;

  private constructor(journal: Journal) {
    this.#journal = journal;
    this.#db = journal.db;
  }

  /** The intents of an open journal (the table and its trigger are made on first use). */
  static async open(journal: Journal): Promise<PaymentIntents> {
    await journal.db.exec(SCHEMA);
    const intents = new PaymentIntents(journal);
    journal.compactsWith((before) => intents.compact(before));
    return intents;
  }

  /** Writes a payment's key and request before its first authorization attempt. */
  async record(i: PaymentIntent): Promise<void> {
    // Through the journal: a write the disk refuses is a storage failure like a failed append.
    await this.#journal.writing(
      this.#db.run(
        "INSERT INTO payment_intents (key, kind, member_id, amount, currency, request, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [i.key, i.kind, i.memberId, i.amount, i.currency, JSON.stringify(i.request), i.createdAt],
      ),
    );
  }

  /** Ends an intent that was not approved (declined, or abandoned after a terminal timeout). */
  async close(key: string, state: "declined" | "abandoned"): Promise<void> {
    await this.#journal.writing(
      this.#db.run("UPDATE payment_intents SET state = ? WHERE key = ? AND state = 'pending'", [state, key]),
    );
  }

  /** Intents whose outcome is unknown (a crash between asking and journaling), oldest first. */
  async pending(): Promise<PaymentIntent[]> {
    const rows = await this.#db.all<IntentRow>(
      "SELECT * FROM payment_intents WHERE state = 'pending' ORDER BY created_at",
    );
    return rows.map((r) => ({
      key: r.key,
      kind: r.kind,
      memberId: r.member_id,
      amount: r.amount,
      currency: r.currency,
      request: JSON.parse(r.request) as Record<string, unknown>,
      createdAt: r.created_at,
    }));
  }

  /** Removes settled intents older than `before` (the journal's compaction calls it); a pending one stays until its outcome is known. */
  async compact(before: Date): Promise<number> {
    const { changes } = await this.#journal.writing(
      this.#db.run("DELETE FROM payment_intents WHERE state <> 'pending' AND created_at < ?", [before.toISOString()]),
    );
    return changes;
  }
}
