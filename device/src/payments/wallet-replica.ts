/**
 * The kiosk's replica of its site's wallets, price list and offline limits,
 * in its own SQLite file: a cache of the cloud, rebuilt from a full sync at
 * any time, never the record of anything (the journal is).
 */
import type { OfflineLimits, PriceListItem, ReplicaWallet, WalletSync } from "@paylane/protocol";
import { openCache, type Sqlite } from "../sqlite.ts";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS wallets (
  member_id TEXT PRIMARY KEY,
  balance INTEGER NOT NULL,
  offline_blocked INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  price INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS wallet_meta (
  one INTEGER PRIMARY KEY CHECK (one = 1),
  version INTEGER,
  currency TEXT,
  limits TEXT,
  applied_up_to INTEGER NOT NULL DEFAULT 0,
  synced_at TEXT
);
INSERT OR IGNORE INTO wallet_meta (one) VALUES (1);
`;

export interface WalletReplicaInfo {
  /** Null until the first sync: the kiosk takes no payments before it knows prices and limits. */
  version: number | null;
  currency: string | null;
  limits: OfflineLimits | null;
  /** This kiosk's journal seq up to which its own payments are in the balances. */
  appliedUpTo: number;
  syncedAt: string | null;
}

export class WalletReplica {
  /** Lookups: the last committed sync, never one half-applied (a payment must not see balances or prices vanish). */
  readonly #db: Sqlite;
  /** Syncs, on their own connection. */
  readonly #writer: Sqlite;

  private constructor(db: Sqlite, writer: Sqlite) {
    this.#db = db;
    this.#writer = writer;
  }

  static async open(path: string): Promise<WalletReplica> {
    const { reader, writer } = await openCache(path, SCHEMA);
    return new WalletReplica(reader, writer);
  }

  /**
   * Applies a sync atomically: a full one replaces everything; a delta only
   * on top of the version it was asked from (`since`), else nothing changes
   * (false) and the next pull asks again.
   */
  apply(sync: WalletSync, since: number | null, syncedAt: Date): Promise<boolean> {
    const w = this.#writer;
    return w.transaction(async () => {
      const held = (await w.get<{ version: number | null }>("SELECT version FROM wallet_meta WHERE one = 1"))?.version;
      if (!sync.full && (held ?? null) !== since) return false;
      if (sync.full) await w.run("DELETE FROM wallets");
      for (const wallet of sync.wallets) {
        await w.run("INSERT OR REPLACE INTO wallets (member_id, balance, offline_blocked) VALUES (?, ?, ?)", [
          wallet.memberId,
          wallet.balance,
          wallet.offlineBlocked ? 1 : 0,
        ]);
      }
      await w.run("DELETE FROM items");
      for (const i of sync.items) {
        await w.run("INSERT INTO items (id, name, price) VALUES (?, ?, ?)", [i.id, i.name, i.price]);
      }
      await w.run(
        "UPDATE wallet_meta SET version = ?, currency = ?, limits = ?, applied_up_to = ?, synced_at = ? WHERE one = 1",
        [sync.version, sync.currency, JSON.stringify(sync.limits), sync.appliedUpTo, syncedAt.toISOString()],
      );
      return true;
    });
  }

  async info(): Promise<WalletReplicaInfo> {
    const m = await this.#db.get<{
      version: number | null;
      currency: string | null;
      limits: string | null;
      applied_up_to: number;
      synced_at: string | null;
    }>("SELECT version, currency, limits, applied_up_to, synced_at FROM wallet_meta WHERE one = 1");
    return {
      version: m?.version ?? null,
      currency: m?.currency ?? null,
      limits: m?.limits ? (JSON.parse(m.limits) as OfflineLimits) : null,
      appliedUpTo: m?.applied_up_to ?? 0,
      syncedAt: m?.synced_at ?? null,
    };
  }

  /** A member's wallet as of the last sync; a member with no wallet yet has 0. */
  async wallet(memberId: string): Promise<ReplicaWallet> {
    const row = await this.#db.get<{ balance: number; offline_blocked: number }>(
      "SELECT balance, offline_blocked FROM wallets WHERE member_id = ?",
      [memberId],
    );
    return { memberId, balance: row?.balance ?? 0, offlineBlocked: row?.offline_blocked === 1 };
  }

  async items(): Promise<PriceListItem[]> {
    return this.#db.all<PriceListItem>("SELECT id, name, price FROM items ORDER BY name");
  }

  async item(id: string): Promise<PriceListItem | undefined> {
    return this.#db.get<PriceListItem>("SELECT id, name, price FROM items WHERE id = ?", [id]);
  }

  async close(): Promise<void> {
    await this.#writer.close();
    await this.#db.close();
  }
}
