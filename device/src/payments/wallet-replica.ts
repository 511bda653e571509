/**
 * The kiosk's replica of its site's wallets, price list and offline limits,
 * in its own SQLite file: a cache of the cloud, rebuilt from a full sync at
 * any time, never the record of anything (the journal is).
 */
import type { OfflineLimits, PriceListItem, ReplicaWallet, WalletSync } from "@paylane/protocol";
import { ReplicaFile } from "../replica-file.ts";
import type { Sqlite } from "../sqlite.ts";

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
  readonly #file: ReplicaFile;
  /** Lookups: the last committed sync, never one half-applied (a payment must not see balances or prices vanish). */
  readonly #db: Sqlite;

  private constructor(file: ReplicaFile) {
    this.#file = file;
    this.#db = file.reader;
  }

  static async open(path: string): Promise<WalletReplica> {
    return new WalletReplica(await ReplicaFile.open(path, SCHEMA, "wallet_meta"));
  }

  /** Lookups that must agree (a balance with the limits and version it came with) see one sync: see ReplicaFile.snapshot. */
  snapshot<T>(read: () => Promise<T>): Promise<T> {
    return this.#file.snapshot(read);
  }

  /**
   * Applies a sync atomically: a full one replaces everything; a delta only
   * on top of the version it was asked from (`since`), else nothing changes
   * (false) and the next pull asks again. The price list always comes whole.
   */
  apply(sync: WalletSync, since: number | null, syncedAt: Date): Promise<boolean> {
    return this.#file.apply({
      applies: (held) => sync.full || held === since,
      tables: [
        {
          table: "wallets",
          key: "member_id",
          full: sync.full,
          rows: sync.wallets.map((w) => ({
            member_id: w.memberId,
            balance: w.balance,
            offline_blocked: w.offlineBlocked ? 1 : 0,
          })),
        },
        {
          table: "items",
          key: "id",
          full: true,
          rows: sync.items.map((i) => ({ id: i.id, name: i.name, price: i.price })),
        },
      ],
      meta: {
        version: sync.version,
        currency: sync.currency,
        limits: JSON.stringify(sync.limits),
        applied_up_to: sync.appliedUpTo,
        synced_at: syncedAt.toISOString(),
      },
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

  close(): Promise<void> {
    return this.#file.close();
  }
}
