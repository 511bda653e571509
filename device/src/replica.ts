/**
 * The kiosk's replica of its site's members, kept in its own SQLite file.
 * It is a cache of the cloud (rebuilt from a snapshot at any time), so it
 * lives apart from the journal: its transactions never share a connection
 * with journal appends.
 */
import type { MemberDelta, MemberSnapshot, ReplicaMember } from "@paylane/protocol";
import { ReplicaFile } from "./replica-file.ts";
import type { Sqlite } from "./sqlite.ts";

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
  readonly #file: ReplicaFile;
  /** Lookups: the last committed snapshot, never one half-written. */
  readonly #db: Sqlite;

  private constructor(file: ReplicaFile) {
    this.#file = file;
    this.#db = file.reader;
  }

  static async open(path: string): Promise<Replica> {
    const file = await ReplicaFile.open(path, SCHEMA, "replica_meta");
    // Replicas written before the venue name travelled with the snapshot: add the column.
    await file.migrate(async (w) => {
      const columns = await w.all<{ name: string }>("PRAGMA table_info(replica_meta)");
      if (!columns.some((c) => c.name === "site_name"))
        await w.exec("ALTER TABLE replica_meta ADD COLUMN site_name TEXT NOT NULL DEFAULT ''");
    });
    return new Replica(file);
  }

  /**
   * Replaces the replica with a snapshot, atomically. An older snapshot never
   * replaces a newer one, unless `followCloudBack`: the cloud's versions went
   * back (restored from a backup), and the cloud is the source of truth.
   */
  replace(snapshot: MemberSnapshot, syncedAt: Date, o: { followCloudBack?: boolean } = {}): Promise<boolean> {
    return this.#write(
      snapshot,
      syncedAt,
      snapshot.members,
      true,
      (held) => snapshot.version >= held || o.followCloudBack === true,
    );
  }

  /**
   * Applies a delta atomically, only on top of the version it was computed
   * from; returns false (nothing changed) when the replica moved meanwhile,
   * and the next pull asks again.
   */
  applyDelta(delta: MemberDelta, syncedAt: Date): Promise<boolean> {
    return this.#write(
      delta,
      syncedAt,
      delta.changes,
      false,
      (held) => held === delta.since && delta.version >= delta.since,
    );
  }

  #write(
    meta: { version: number; timezone: string; siteName: string },
    syncedAt: Date,
    members: readonly ReplicaMember[],
    full: boolean,
    applies: (heldVersion: number) => boolean,
  ): Promise<boolean> {
    return this.#file.apply({
      applies: (held) => applies(held ?? 0),
      tables: [
        {
          table: "members",
          key: "id",
          full,
          rows: members.map((m) => ({ id: m.id, name: m.name, card_uid: m.cardUid, code: m.code, status: m.status })),
        },
      ],
      meta: {
        version: meta.version,
        timezone: meta.timezone,
        site_name: meta.siteName,
        synced_at: syncedAt.toISOString(),
      },
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

  close(): Promise<void> {
    return this.#file.close();
  }
}

function toMember(r: MemberRow): ReplicaMember {
  return { id: r.id, name: r.name, cardUid: r.card_uid, code: r.code, status: r.status };
}
