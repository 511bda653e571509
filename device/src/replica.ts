/**
 * The kiosk's replica of its site's members, kept in its own SQLite file.
 * It is a cache of the cloud (rebuilt from a snapshot at any time), so it
 * lives apart from the journal: its transactions never share a connection
 * with journal appends.
 */
import type { MemberDelta, MemberSnapshot, ReplicaMember } from "@paylane/protocol";
import { openCache, type Sqlite } from "./sqlite.ts";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS members (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  card_uid TEXT UNIQUE,
  code TEXT UNIQUE,
  status TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS replica_meta (
  one INTEGER PRIMARY KEY CHECK (one = 1),
  version INTEGER NOT NULL,
  timezone TEXT NOT NULL,
  synced_at TEXT,
  site_name TEXT NOT NULL DEFAULT ''
);
INSERT OR IGNORE INTO replica_meta (one, version, timezone, synced_at) VALUES (1, 0, 'UTC', NULL);
`;

interface MemberRow {
  id: string;
  name: string;
  card_uid: string | null;
  code: string | null;
  status: ReplicaMember["status"];
}

export interface ReplicaInfo {
  version: number;
  timezone: string;
  /** The venue's name; "" until the first sync. */
  siteName: string;
  syncedAt: string | null;
  members: number;
}

export class Replica {
  /** Lookups. In WAL mode it sees the last committed snapshot while a new one is written. */
  readonly #db: Sqlite;
  /** Snapshot replacement, on its own connection so lookups never see a half-written replica. */
  readonly #writer: Sqlite;

  private constructor(db: Sqlite, writer: Sqlite) {
    this.#db = db;
    this.#writer = writer;
  }

  static async open(path: string): Promise<Replica> {
    const { reader, writer } = await openCache(path, SCHEMA);
    // Replicas written before the venue name travelled with the snapshot: add the column.
    const columns = await writer.all<{ name: string }>("PRAGMA table_info(replica_meta)");
    if (!columns.some((c) => c.name === "site_name"))
      await writer.exec("ALTER TABLE replica_meta ADD COLUMN site_name TEXT NOT NULL DEFAULT ''");
    return new Replica(reader, writer);
  }

  /**
   * Replaces the replica with a snapshot, atomically. An older snapshot never
   * replaces a newer one, unless `followCloudBack`: the cloud's versions went
   * back (restored from a backup), and the cloud is the source of truth.
   */
  replace(snapshot: MemberSnapshot, syncedAt: Date, o: { followCloudBack?: boolean } = {}): Promise<boolean> {
    return this.#write(snapshot, syncedAt, snapshot.members, {
      applies: (current) => snapshot.version >= current || o.followCloudBack === true,
      clear: "DELETE FROM members",
    });
  }

  /**
   * Applies a delta atomically, only on top of the version it was computed
   * from; returns false (nothing changed) when the replica moved meanwhile,
   * and the next pull asks again. Changed members are removed and written
   * back, so a card or code moving between two changed members cannot trip
   * the unique constraints half-way.
   */
  applyDelta(delta: MemberDelta, syncedAt: Date): Promise<boolean> {
    return this.#write(delta, syncedAt, delta.changes, {
      applies: (current) => current === delta.since && delta.version >= delta.since,
    });
  }

  /**
   * One replica write, in one transaction on the writer connection. Removes
   * `clear` (or each written member), writes `members` and the new version,
   * or nothing when `applies` says no.
   */
  #write(
    meta: { version: number; timezone: string; siteName: string },
    syncedAt: Date,
    members: readonly ReplicaMember[],
    o: { applies: (currentVersion: number) => boolean; clear?: string },
  ): Promise<boolean> {
    const w = this.#writer;
    return w.transaction(async () => {
      const current = await w.get<{ version: number }>("SELECT version FROM replica_meta WHERE one = 1");
      if (!o.applies(current?.version ?? 0)) return false;
      if (o.clear) await w.run(o.clear);
      else for (const m of members) await w.run("DELETE FROM members WHERE id = ?", [m.id]);
      for (const m of members) {
        await w.run("INSERT INTO members (id, name, card_uid, code, status) VALUES (?, ?, ?, ?, ?)", [
          m.id,
          m.name,
          m.cardUid,
          m.code,
          m.status,
        ]);
      }
      await w.run("UPDATE replica_meta SET version = ?, timezone = ?, site_name = ?, synced_at = ? WHERE one = 1", [
        meta.version,
        meta.timezone,
        meta.siteName,
        syncedAt.toISOString(),
      ]);
      return true;
    });
  }

  async byCard(uid: string): Promise<ReplicaMember | undefined> {
    const row = await this.#db.get<MemberRow>("SELECT * FROM members WHERE card_uid = ?", [uid]);
    return row && toMember(row);
  }

  async byCode(code: string): Promise<ReplicaMember | undefined> {
    const row = await this.#db.get<MemberRow>("SELECT * FROM members WHERE code = ?", [code]);
    return row && toMember(row);
  }

  async info(): Promise<ReplicaInfo> {
    const meta = await this.#db.get<{ version: number; timezone: string; site_name: string; synced_at: string | null }>(
      "SELECT version, timezone, site_name, synced_at FROM replica_meta WHERE one = 1",
    );
    const count = await this.#db.get<{ n: number }>("SELECT count(*) AS n FROM members");
    return {
      version: meta?.version ?? 0,
      timezone: meta?.timezone ?? "UTC",
      siteName: meta?.site_name ?? "",
      syncedAt: meta?.synced_at ?? null,
      members: count?.n ?? 0,
    };
  }

  async close(): Promise<void> {
    await this.#writer.close();
    await this.#db.close();
  }
}

function toMember(r: MemberRow): ReplicaMember {
  return { id: r.id, name: r.name, cardUid: r.card_uid, code: r.code, status: r.status };
}
