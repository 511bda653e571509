/**
 * The ledger's TypeScript side: posting through `ledger_post` (the one
 * place the money rules live, see migrations/005_ledger.sql) and reading
 * wallets and entries back.
 */
import type { Queryable } from "../db/database.ts";

export const LEDGER_KINDS = ["topup", "purchase", "refund", "adjustment"] as const;
export type LedgerKind = (typeof LEDGER_KINDS)[number];

export interface Posting {
  site: string;
  memberId: string;
  kind: LedgerKind;
  /** Signed minor units: credits > 0, debits < 0. */
  amount: number;
  currency: string;
  /** Namespaced by origin: see kioskRequestKey / operatorRequestKey. */
  requestKey: string;
  origin: { device: string; seq?: number } | { operator: string };
  authorization?: "online" | "offline";
  itemId?: string | null;
  refundOf?: string;
  note?: string;
  at: Date;
  recordedAt: Date;
}

export interface Posted {
  entryId: string;
  balanceAfter: number;
  amount: number;
  /** False: an entry with this request key was already in the ledger, and it is returned instead. */
  posted: boolean;
  overdraftOpened: boolean;
}

/** Why a posting was refused by the ledger itself (see the SQLSTATEs raised by ledger_post). */
export class LedgerRefusal extends Error {
  override name = "LedgerRefusal";
  constructor(
    readonly code: "no-site" | "currency-mismatch" | "not-refundable" | "refund-too-large",
    message: string,
  ) {
    super(message);
  }
}

const REFUSALS: Record<string, LedgerRefusal["code"]> = {
  PL000: "no-site",
  PL001: "currency-mismatch",
  PL002: "not-refundable",
  PL003: "refund-too-large",
};

export const kioskRequestKey = (device: string, key: string) => `kiosk:${device}:${key}`;
export const operatorRequestKey = (operator: string, key: string) => `operator:${operator}:${key}`;

export async function post(tx: Queryable, p: Posting): Promise<Posted> {
  const device = "device" in p.origin ? p.origin : undefined;
  const operator = "operator" in p.origin ? p.origin.operator : null;
  try {
    const { rows } = await tx.query<{
      entry_id: string;
      balance_after: number;
      amount: number;
      posted: boolean;
      overdraft_opened: boolean;
    }>("SELECT * FROM ledger_post($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)", [
      p.site,
      p.memberId,
      p.kind,
      p.amount,
      p.currency,
      p.requestKey,
      device?.device ?? null,
      device?.seq ?? null,
      operator,
      p.authorization ?? null,
      p.itemId ?? null,
      p.refundOf ?? null,
      p.note ?? null,
      p.at,
      p.recordedAt,
    ]);
    const r = rows[0]!;
    return {
      entryId: r.entry_id,
      balanceAfter: r.balance_after,
      amount: r.amount,
      posted: r.posted,
      overdraftOpened: r.overdraft_opened,
    };
  } catch (err) {
    throw ledgerError(err);
  }
}

/** A database error raised by ledger_post as the LedgerRefusal it stands for; any other error as it is. */
export function ledgerError(err: unknown): unknown {
  const code = REFUSALS[(err as { code?: string }).code ?? ""];
  return code ? new LedgerRefusal(code, (err as Error).message) : err;
}

export interface LedgerEntry {
  id: string;
  site: string;
  memberId: string;
  /** Position in the wallet: 1, 2, 3, … */
  n: number;
  kind: LedgerKind;
  amount: number;
  currency: string;
  balanceAfter: number;
  origin: { device: string; seq: number | null } | { operator: string };
  authorization: "online" | "offline" | null;
  itemId: string | null;
  refundOf: string | null;
  note: string | null;
  at: string;
  recordedAt: string;
}

export interface LedgerRow {
  id: string;
  site_id: string;
  member_id: string;
  n: number;
  kind: LedgerKind;
  amount: number;
  currency: string;
  balance_after: number;
  origin_device: string | null;
  origin_seq: number | null;
  operator: string | null;
  authorization: "online" | "offline" | null;
  item_id: string | null;
  refund_of: string | null;
  note: string | null;
  at: Date;
  recorded_at: Date;
}

/** The columns of a LedgerRow; an online payment's kiosk seq comes from the journal entry that followed it. */
export const LEDGER_COLUMNS = `id, site_id, member_id, n, kind, amount, currency, balance_after, origin_device,
  coalesce(origin_seq, (SELECT k.seq FROM ledger_journal_links k WHERE k.entry_id = ledger_entries.id)) AS origin_seq,
  operator, "authorization", item_id, refund_of, note, at, recorded_at`;

export function toEntry(r: LedgerRow): LedgerEntry {
  return {
    id: r.id,
    site: r.site_id,
    memberId: r.member_id,
    n: r.n,
    kind: r.kind,
    amount: r.amount,
    currency: r.currency,
    balanceAfter: r.balance_after,
    origin: r.operator ? { operator: r.operator } : { device: r.origin_device!, seq: r.origin_seq },
    authorization: r.authorization,
    itemId: r.item_id,
    refundOf: r.refund_of,
    note: r.note,
    at: r.at.toISOString(),
    recordedAt: r.recorded_at.toISOString(),
  };
}

export interface Wallet {
  site: string;
  memberId: string;
  memberName: string | null;
  currency: string;
  balance: number;
  entries: number;
  offlineBlocked: boolean;
  updatedAt: string;
}

export interface WalletRow {
  site_id: string;
  member_id: string;
  member_name: string | null;
  currency: string;
  balance: number;
  entries: number;
  offline_blocked: boolean;
  updated_at: Date;
}

export function toWallet(r: WalletRow): Wallet {
  return {
    site: r.site_id,
    memberId: r.member_id,
    memberName: r.member_name,
    currency: r.currency,
    balance: r.balance,
    entries: r.entries,
    offlineBlocked: r.offline_blocked,
    updatedAt: r.updated_at.toISOString(),
  };
}

export async function getWallet(db: Queryable, site: string, memberId: string): Promise<Wallet | undefined> {
  const { rows } = await db.query<WalletRow>(
    `SELECT w.site_id, w.member_id, m.name AS member_name, w.currency, w.balance, w.entries, w.offline_blocked, w.updated_at
     FROM wallets w JOIN members m ON m.site_id = w.site_id AND m.id = w.member_id
     WHERE w.site_id = $1 AND w.member_id = $2`,
    [site, memberId],
  );
  return rows[0] && toWallet(rows[0]);
}
