/**
 * The kiosk's journal: every decision the kiosk tells a user about is an
 * entry here first, durable before the user sees it.
 *
 * - `seq` is per device and gap-free: it is assigned by the INSERT itself
 *   from the `meta` row, and a trigger advances `meta` in the same statement,
 *   so a crash can never leave a seq used twice or skipped.
 * - `synchronous=FULL` in WAL mode makes each commit durable on return; it is
 *   set and read back on every open, because a kiosk that silently runs with
 *   NORMAL can lose acknowledged check-ins on a power cut.
 * - Nothing is deleted before the cloud's ack covers it: compaction only
 *   ever touches `seq <= acked_up_to`, and only entries older than the
 *   retention window (which keeps "already checked in today" answerable).
 */
import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import type { Entry } from "@paylane/protocol";
import { Sqlite } from "./sqlite.ts";

export class JournalError extends Error {
  override name = "JournalError";
  /** The file itself is damaged (integrity_check failed, or not a database): recovery starts a new journal. */
  readonly damaged: boolean;

  constructor(message: string, options?: ErrorOptions & { damaged?: boolean }) {
    super(message, options);
    this.damaged = options?.damaged ?? false;
  }
}

/** The cloud acked past this journal's last seq: it holds entries this journal does not (see `moveBeyond`). */
export class AckBeyondJournalError extends JournalError {
  override name = "AckBeyondJournalError";
  constructor(
    readonly upTo: number,
    readonly lastSeq: number,
  ) {
    super(`ack upTo ${upTo} is beyond the last journaled seq ${lastSeq}`);
  }
}

export interface JournalOpenOptions {
  /**
   * For a NEW journal only: its first entry gets seq `startAfterSeq + 1`, and
   * everything up to it counts as acked. A journal recovered after damage
   * continues from the cloud's acked high-water mark, so no seq is reused.
   */
  startAfterSeq?: number;
}

interface EntryRow {
  seq: number;
  id: string;
  kind: string;
  at: string;
  body: string;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (
  one INTEGER PRIMARY KEY CHECK (one = 1),
  last_seq INTEGER NOT NULL,
  acked_up_to INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta (one, last_seq, acked_up_to) VALUES (1, 0, 0);
CREATE TABLE IF NOT EXISTS journal (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL,
  at TEXT NOT NULL,
  body TEXT NOT NULL,
  -- denormalised for the "already checked in today" lookup
  member_id TEXT,
  local_day TEXT
);
CREATE INDEX IF NOT EXISTS journal_member_day ON journal (member_id, local_day) WHERE member_id IS NOT NULL;
CREATE TRIGGER IF NOT EXISTS journal_seq_advance AFTER INSERT ON journal
BEGIN
  UPDATE meta SET last_seq = NEW.seq WHERE one = 1;
END;
-- Payment reads (payments/journal-money.ts) look up entries of a kind past a seq.
CREATE INDEX IF NOT EXISTS journal_kind_seq ON journal (kind, seq);
-- Seqs at which the cloud holds another entry than ours (ack.conflicts): kept, whatever the
-- ack says, until ops resolve them. An entry here is never compacted.
CREATE TABLE IF NOT EXISTS conflicted (
  seq INTEGER PRIMARY KEY,
  noted_at TEXT NOT NULL,
  -- 1 once an ack listed it: the cloud keeps our entry beside its own (seq_collisions)
  reported INTEGER NOT NULL DEFAULT 0
);
-- Journal epochs: each time the cloud turned out to hold seqs beyond this journal's last
-- (a journal restored from an older copy), the journal moved past the cloud's mark with a
-- \`journal-rolled-back\` entry; the entries from first_seq on belong to that epoch.
CREATE TABLE IF NOT EXISTS epochs (
  epoch INTEGER PRIMARY KEY,
  first_seq INTEGER NOT NULL,
  at TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS journal_epoch_starts AFTER INSERT ON journal
WHEN NEW.kind = 'journal-rolled-back'
BEGIN
  INSERT INTO epochs (epoch, first_seq, at) VALUES (json_extract(NEW.body, '$.epoch'), NEW.seq, NEW.at);
END;
`;

/** Lets the journal answer "has this member done X today" without parsing bodies. */
export interface MemberDay {
  memberId: string;
  /** Site-local calendar day, YYYY-MM-DD. */
  day: string;
}

export interface JournalStats {
  lastSeq: number;
  ackedUpTo: number;
  backlog: number;
  /** Seqs at which the cloud holds another entry than this journal's: a fault for ops. */
  conflicts: number;
  /** Device time of the oldest entry the cloud has not acked; null when nothing is waiting. */
  oldestUnackedAt: string | null;
}

/**
 * What the journal tells whoever listens, so no writer has to remember to:
 * every entry made durable (the uplink sends it), and every write the disk
 * refused (storage is failing: the UI says so and a probe watches for recovery).
 */
export interface JournalEvents {
  appended: [Entry];
  "write-failed": [Error];
}

export class Journal {
  readonly #db: Sqlite;
  readonly events = new EventEmitter<JournalEvents>();
  /** Resolved unless a rollback check holds acks (see `holdingAcks`). */
  #ackGate: Promise<void> = Promise.resolve();
  /** What the stores sharing this file remove when the journal compacts (see `compactsWith`). */
  readonly #alsoCompact: Array<(before: Date) => Promise<unknown>> = [];

  private constructor(db: Sqlite) {
    this.#db = db;
  }

  /** Opens (or creates) the journal, enforcing durability settings and checking integrity. */
  static async open(path: string, options: JournalOpenOptions = {}): Promise<Journal> {
    const db = await Sqlite.open(path);
    try {
      await db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;");
      const mode = await db.get<{ journal_mode: string }>("PRAGMA journal_mode");
      const sync = await db.get<{ synchronous: number }>("PRAGMA synchronous");
      // path ':memory:' cannot use WAL; everything else must.
      if (path !== ":memory:" && mode?.journal_mode !== "wal") {
        throw new JournalError(`journal ${path}: journal_mode is ${mode?.journal_mode}, expected wal`);
      }
      if (sync?.synchronous !== 2) {
        throw new JournalError(`journal ${path}: synchronous is ${sync?.synchronous}, expected 2 (FULL)`);
      }
      const check = await db.all<{ integrity_check: string }>("PRAGMA integrity_check");
      if (check.length !== 1 || check[0]?.integrity_check !== "ok") {
        throw new JournalError(
          `journal ${path} failed integrity_check: ${check.map((r) => r.integrity_check).join("; ")}`,
          { damaged: true },
        );
      }
      await db.exec(SCHEMA);
      const start = options.startAfterSeq ?? 0;
      if (start > 0) {
        // Only a journal that has never held an entry may be given a starting point.
        await db.run(
          "UPDATE meta SET last_seq = ?, acked_up_to = ? WHERE one = 1 AND last_seq = 0 AND NOT EXISTS (SELECT 1 FROM journal)",
          [start, start],
        );
      }
      return new Journal(db);
    } catch (err) {
      await db.close().catch(() => {});
      // SQLite opens lazily: a damaged file fails on the first statement, without saying which file.
      if (err instanceof JournalError) throw err;
      const code = (err as { code?: string }).code;
      throw new JournalError(`journal ${path}: ${(err as Error).message}`, {
        cause: err,
        damaged: code === "SQLITE_CORRUPT" || code === "SQLITE_NOTADB",
      });
    }
  }

  /** The database handle, shared with the stores kept in the journal's file (payment intents: one fsync domain). */
  get db(): Sqlite {
    return this.#db;
  }

  /**
   * Appends one entry and returns it with its seq. Resolves only once the
   * entry is durable (synchronous=FULL commit).
   */
  async append(kind: string, body: Record<string, unknown>, at: Date, index?: MemberDay): Promise<Entry> {
    const id = randomUUID();
    // getPrepared runs the statement to completion, so the row is committed when this resolves;
    // compiled once (with its triggers), not on every append.
    const row = await this.writing(
      this.#db.getPrepared<{ seq: number }>(
        `INSERT INTO journal (seq, id, kind, at, body, member_id, local_day)
         SELECT last_seq + 1, ?, ?, ?, ?, ?, ? FROM meta WHERE one = 1
         RETURNING seq`,
        [id, kind, at.toISOString(), JSON.stringify(body), index?.memberId ?? null, index?.day ?? null],
      ),
    );
    if (!row) throw new JournalError("journal meta row is missing");
    const entry = { seq: row.seq, id, kind, at: at.toISOString(), body };
    this.events.emit("appended", entry);
    return entry;
  }

  /**
   * A write on the journal's database file (the journal's own, or a store
   * sharing its file such as payment intents): a failure is told to the
   * listeners (`write-failed`) before the caller sees it.
   */
  async writing<T>(write: Promise<T>): Promise<T> {
    try {
      return await write;
    } catch (err) {
      this.events.emit("write-failed", err as Error);
      throw err;
    }
  }

  /** Entries after `afterSeq`, oldest first. */
  async entriesAfter(afterSeq: number, limit: number): Promise<Entry[]> {
    const rows = await this.#db.all<EntryRow>(
      "SELECT seq, id, kind, at, body FROM journal WHERE seq > ? ORDER BY seq LIMIT ?",
      [afterSeq, limit],
    );
    return rows.map(entryFromRow);
  }

  /**
   * Records the cloud's ack. Acks only move forward, and never past what was
   * journaled: an ack beyond lastSeq means the cloud is confused about this
   * device (e.g. a restored journal) and is refused loudly.
   */
  async markAcked(upTo: number, conflicts: readonly number[] = []): Promise<number> {
    // Conflicts first: a crash between the two statements then only leaves an ack to receive again,
    // never an entry the ack made compactable without its conflict on record.
    if (conflicts.length > 0) {
      await this.writing(
        this.#db.run(
          `INSERT INTO conflicted (seq, noted_at, reported) SELECT value, ?, 1 FROM json_each(?)
           WHERE true ON CONFLICT (seq) DO UPDATE SET reported = 1`,
          [new Date().toISOString(), JSON.stringify(conflicts)],
        ),
      );
    }
    // Wait until no rollback check holds acks, including one queued behind the one awaited.
    for (let gate = this.#ackGate; ; gate = this.#ackGate) {
      await gate;
      if (gate === this.#ackGate) break;
    }
    // One statement, so overlapping acks cannot interleave a read and a write.
    const row = await this.writing(
      this.#db.get<{ acked_up_to: number }>(
        "UPDATE meta SET acked_up_to = max(acked_up_to, ?) WHERE one = 1 AND ? <= last_seq RETURNING acked_up_to",
        [upTo, upTo],
      ),
    );
    if (!row) {
      const { lastSeq } = await this.stats();
      throw new AckBeyondJournalError(upTo, lastSeq);
    }
    return row.acked_up_to;
  }

  /**
   * The cloud holds seqs up to `cloudAckedSeq`, beyond this journal's last:
   * the journal was restored from an older copy (or someone published with
   * this kiosk's credentials). Moves the journal past the cloud's mark with
   * one `journal-rolled-back` entry at `cloudAckedSeq + 1` (the insert and
   * the move are one statement), so no seq the cloud holds is ever reused.
   * Nothing is deleted: entries not acked stay and are sent as before.
   * Returns the entry, or null when the journal is not behind.
   */
  async moveBeyond(cloudAckedSeq: number, detectedBy: "stream" | "ack", at: Date): Promise<Entry | null> {
    const id = randomUUID();
    const row = await this.writing(
      this.#db.get<{ seq: number; body: string }>(
        `INSERT INTO journal (seq, id, kind, at, body)
         SELECT ? + 1, ?, 'journal-rolled-back', ?,
                json_object('epoch', (SELECT coalesce(max(epoch), 0) + 1 FROM epochs), 'localLastSeq', last_seq,
                            'cloudAckedSeq', ?, 'detectedBy', ?)
         FROM meta WHERE one = 1 AND last_seq < ?
         RETURNING seq, body`,
        [cloudAckedSeq, id, at.toISOString(), cloudAckedSeq, detectedBy, cloudAckedSeq],
      ),
    );
    if (!row) return null;
    const entry = { seq: row.seq, id, kind: "journal-rolled-back", at: at.toISOString(), body: JSON.parse(row.body) };
    this.events.emit("appended", entry);
    return entry;
  }

  /** Seqs at which the cloud holds another entry than this journal's. */
  async conflicts(): Promise<number[]> {
    const rows = await this.#db.all<{ seq: number }>("SELECT seq FROM conflicted ORDER BY seq");
    return rows.map((r) => r.seq);
  }

  /** Records seqs found to conflict without an ack saying so (the cloud has not kept ours yet). */
  async noteConflicts(seqs: readonly number[]): Promise<void> {
    if (seqs.length === 0) return;
    await this.writing(
      this.#db.run("INSERT OR IGNORE INTO conflicted (seq, noted_at) SELECT value, ? FROM json_each(?)", [
        new Date().toISOString(),
        JSON.stringify(seqs),
      ]),
    );
  }

  /** Conflicting entries no ack has listed yet: to send, so that the cloud keeps them beside its own. */
  async unreportedConflicts(limit: number): Promise<Entry[]> {
    const rows = await this.#db.all<EntryRow>(
      `SELECT j.seq, j.id, j.kind, j.at, j.body FROM journal j JOIN conflicted c ON c.seq = j.seq
       WHERE c.reported = 0 ORDER BY j.seq LIMIT ?`,
      [limit],
    );
    return rows.map(entryFromRow);
  }

  /** The ids of this journal's entries in (after, upTo], by seq. */
  async entryIds(after: number, upTo: number): Promise<Map<number, string>> {
    const rows = await this.#db.all<{ seq: number; id: string }>(
      "SELECT seq, id FROM journal WHERE seq > ? AND seq <= ? ORDER BY seq",
      [after, upTo],
    );
    return new Map(rows.map((r) => [r.seq, r.id]));
  }

  /**
   * Runs `work` while acks wait: `markAcked` moves nothing until it is done.
   * A rolled-back journal is checked against the cloud under it, so no ack
   * can cover an entry before it is known whether the cloud holds that very entry.
   */
  async holdingAcks<T>(work: () => Promise<T>): Promise<T> {
    const previous = this.#ackGate;
    let release!: () => void;
    this.#ackGate = new Promise<void>((resolve) => {
      release = resolve;
    });
    await previous;
    try {
      return await work();
    } finally {
      release();
    }
  }

  async stats(): Promise<JournalStats> {
    const m = await this.#db.get<{ last_seq: number; acked_up_to: number; oldest: string | null; conflicts: number }>(
      `SELECT last_seq, acked_up_to, (SELECT at FROM journal WHERE seq > meta.acked_up_to ORDER BY seq LIMIT 1) AS oldest,
              (SELECT count(*) FROM conflicted) AS conflicts
       FROM meta WHERE one = 1`,
    );
    if (!m) throw new JournalError("journal meta row is missing");
    return {
      lastSeq: m.last_seq,
      ackedUpTo: m.acked_up_to,
      backlog: m.last_seq - m.acked_up_to,
      conflicts: m.conflicts,
      oldestUnackedAt: m.last_seq > m.acked_up_to ? m.oldest : null,
    };
  }

  /**
   * Deletes acked entries older than `before` (device time); returns how many.
   * Unacked entries are never touched, whatever their age.
   */
  async compact(before: Date): Promise<number> {
    const rows = await this.writing(
      this.#db.all<{ seq: number }>(
        `DELETE FROM journal WHERE seq <= (SELECT acked_up_to FROM meta WHERE one = 1) AND at < ?
           AND seq NOT IN (SELECT seq FROM conflicted) RETURNING seq`,
        [before.toISOString()],
      ),
    );
    for (const compact of this.#alsoCompact) await compact(before);
    return rows.length;
  }

  /**
   * A store kept in the journal's file (payment intents) compacts with it:
   * `compact` runs with the same cut-off, after the journal's own entries.
   */
  compactsWith(compact: (before: Date) => Promise<unknown>): void {
    this.#alsoCompact.push(compact);
  }

  /**
   * Whether a durable write can be made right now (after a failed append:
   * disk full, I/O error). Writes and removes one row in one transaction.
   */
  async probeWritable(): Promise<boolean> {
    try {
      await this.#db.exec(
        "BEGIN IMMEDIATE; CREATE TABLE IF NOT EXISTS write_probe (x BLOB); INSERT INTO write_probe VALUES (zeroblob(4096)); DELETE FROM write_probe; COMMIT;",
      );
      return true;
    } catch {
      await this.#db.exec("ROLLBACK").catch(() => {});
      return false;
    }
  }

  /** Whether the member has an entry of `kind` on the given site-local day. */
  async hasEntryOn(kind: string, index: MemberDay): Promise<boolean> {
    const row = await this.#db.get("SELECT 1 FROM journal WHERE member_id = ? AND local_day = ? AND kind = ? LIMIT 1", [
      index.memberId,
      index.day,
      kind,
    ]);
    return row !== undefined;
  }

  close(): Promise<void> {
    return this.#db.close();
  }
}

function entryFromRow(r: EntryRow): Entry {
  return { seq: r.seq, id: r.id, kind: r.kind, at: r.at, body: JSON.parse(r.body) };
}
