/**
 * The money side of the cloud, without HTTP: what the payment routes
 * (api/payments*.ts) ask of the ledger. Kiosks authorize and void payments and
 * pull their wallet replica; operators read wallets, entries and exposure,
 * keep the price list and offline limits, credit wallets and refund.
 *
 * Every operator write runs under its Idempotency-Key (ledger/idempotency.ts):
 * its answer, refusals included, is stored with it and replayed.
 */
import type { OfflineLimits, PaymentRequest, PaymentResponse } from "@paylane/protocol";
import type { Database, Queryable } from "../db/database.ts";
import type { DevicePresence, PresenceStore } from "../presence/presence-store.ts";
import { authorizePayment, voidPayment } from "./authorize.ts";
import { type IdempotentOutcome, requestHash, type StoredAnswer, withIdempotency } from "./idempotency.ts";
import {
  getWallet,
  LEDGER_COLUMNS,
  type LedgerEntry,
  type LedgerKind,
  LedgerRefusal,
  type LedgerRow,
  operatorRequestKey,
  type Posted,
  post,
  toEntry,
  toWallet,
  type Wallet,
  type WalletRow,
} from "./ledger.ts";
import { walletSync } from "./wallet-sync.ts";

export interface PaymentServiceOptions {
  db: Database;
  presence: PresenceStore;
}

/** Who asks, as the routes authenticated them. */
export interface Kiosk {
  site: string;
  device: string;
}

export interface Item {
  id: string;
  name: string;
  price: number;
  active: boolean;
}

export interface PaymentWithRefunds {
  payment: LedgerEntry;
  refunds: LedgerEntry[];
  refunded: number;
  /** What is left to refund, minor units. */
  refundable: number;
}

export interface Exposure {
  site: string;
  kiosks: Array<{ device: string; state: DevicePresence["state"]; payments: DevicePresence["payments"] }>;
  totals: Array<{ currency: string; offlineExposure: number; offlinePayments: number }>;
}

/** An operator's credit or correction to one wallet. */
export interface WalletCredit {
  kind: "topup" | "adjustment";
  site: string;
  member: string;
  amount: number;
  currency: string;
  note?: string;
}

/** Under an operator's Idempotency-Key. */
export interface OperatorRequest {
  operator: string;
  key: string;
  now: Date;
}

export class PaymentService {
  readonly #db: Database;
  readonly #presence: PresenceStore;

  constructor(o: PaymentServiceOptions) {
    this.#db = o.db;
    this.#presence = o.presence;
  }

  // ---- kiosks --------------------------------------------------------------

  /** Online authorization: one statement, one round trip (see authorize.ts). */
  authorize(kiosk: Kiosk, request: PaymentRequest, now: Date): Promise<IdempotentOutcome<PaymentResponse>> {
    return authorizePayment(this.#db, { ...kiosk, request, now });
  }

  /** A kiosk that lost track of a payment: its answer, or a void that stands for it. */
  void(kiosk: Kiosk, request: PaymentRequest, now: Date): Promise<IdempotentOutcome<PaymentResponse>> {
    return voidPayment(this.#db, { ...kiosk, request, now });
  }

  walletSync(kiosk: Kiosk, since: number | undefined) {
    return walletSync(this.#db, kiosk.site, kiosk.device, since);
  }

  // ---- operators: reads ----------------------------------------------------

  /** A site's wallets by member id, after `afterMember`. */
  async wallets(site: string, afterMember: string | null, limit: number): Promise<Wallet[]> {
    const { rows } = await this.#db.query<WalletRow>(
      `SELECT w.site_id, w.member_id, m.name AS member_name, w.currency, w.balance, w.entries, w.offline_blocked, w.updated_at
       FROM wallets w JOIN members m ON m.site_id = w.site_id AND m.id = w.member_id
       WHERE w.site_id = $1 AND ($2::text IS NULL OR w.member_id > $2) ORDER BY w.member_id LIMIT $3`,
      [site, afterMember, limit],
    );
    return rows.map(toWallet);
  }

  wallet(site: string, member: string): Promise<Wallet | undefined> {
    return getWallet(this.#db, site, member);
  }

  /** A wallet's entries, newest first, by their position in the wallet (before position `beforeN`). */
  async walletEntries(site: string, member: string, beforeN: number | null, limit: number): Promise<LedgerEntry[]> {
    const { rows } = await this.#db.query<LedgerRow>(
      `SELECT ${LEDGER_COLUMNS} FROM ledger_entries
       WHERE site_id = $1 AND member_id = $2 AND ($3::bigint IS NULL OR n < $3) ORDER BY n DESC LIMIT $4`,
      [site, member, beforeN, limit],
    );
    return rows.map(toEntry);
  }

  /** A site's entries (all kinds, or `kind`), newest first, before (recordedAt, id). */
  async ledger(
    site: string,
    kind: LedgerKind | null,
    before: { recordedAt: string; id: string } | null,
    limit: number,
  ): Promise<LedgerEntry[]> {
    const { rows } = await this.#db.query<LedgerRow>(
      `SELECT ${LEDGER_COLUMNS} FROM ledger_entries
       WHERE site_id = $1 AND ($2::text IS NULL OR kind = $2)
         AND ($3::timestamptz IS NULL OR (recorded_at, id) < ($3::timestamptz, $4::uuid))
       ORDER BY recorded_at DESC, id DESC LIMIT $5`,
      [site, kind, before?.recordedAt ?? null, before?.id ?? null, limit],
    );
    return rows.map(toEntry);
  }

  /** One payment (a purchase) with its refunds. */
  async payment(id: string): Promise<PaymentWithRefunds | undefined> {
    const { rows } = await this.#db.query<LedgerRow>(
      `SELECT ${LEDGER_COLUMNS} FROM ledger_entries WHERE (id = $1 AND kind = 'purchase') OR refund_of = $1 ORDER BY n`,
      [id],
    );
    const payment = rows.find((r) => r.id === id);
    if (!payment) return undefined;
    const refunds = rows.filter((r) => r.id !== id).map(toEntry);
    const refunded = refunds.reduce((sum, r) => sum + r.amount, 0);
    return { payment: toEntry(payment), refunds, refunded, refundable: -payment.amount - refunded };
  }

  /** Offline exposure per kiosk (from its latest telemetry) and per site, by currency. */
  async exposure(site: string): Promise<Exposure> {
    const { rows } = await this.#db.query<{ id: string }>("SELECT id FROM devices WHERE site_id = $1 ORDER BY id", [
      site,
    ]);
    const presence = await this.#presence.get(rows.map((r) => ({ site, device: r.id })));
    const kiosks = presence.map((p) => ({ device: p.device, state: p.state, payments: p.payments }));
    const totals = new Map<string, Exposure["totals"][number]>();
    for (const { payments: e } of kiosks) {
      if (!e) continue;
      const t = totals.get(e.currency) ?? { currency: e.currency, offlineExposure: 0, offlinePayments: 0 };
      t.offlineExposure += e.offlineExposure;
      t.offlinePayments += e.offlinePayments;
      totals.set(e.currency, t);
    }
    return { site, kiosks, totals: [...totals.values()] };
  }

  async items(site: string): Promise<Item[]> {
    const { rows } = await this.#db.query<Item>(
      "SELECT id, name, price, active FROM items WHERE site_id = $1 ORDER BY id",
      [site],
    );
    return rows;
  }

  // ---- operators: writes ---------------------------------------------------

  /** The item as stored; undefined when there is no such site. */
  async putItem(site: string, item: Item): Promise<Item | undefined> {
    const { rows } = await this.#db.query<Item>(
      `INSERT INTO items (site_id, id, name, price, active) SELECT s.id, $2, $3, $4, $5 FROM sites s WHERE s.id = $1
       ON CONFLICT (site_id, id) DO UPDATE SET name = $3, price = $4, active = $5
       RETURNING id, name, price, active`,
      [site, item.id, item.name, item.price, item.active],
    );
    return rows[0];
  }

  /**
   * The site's offline limits as stored; undefined when there is no such site.
   * `topupDaily` (the offline top-up cap, 0 = off) is left as it is when not given.
   */
  async putOfflineLimits(site: string, limits: OfflineLimits): Promise<Required<OfflineLimits> | undefined> {
    const { rows } = await this.#db.query<{ topup_daily: number }>(
      `UPDATE sites SET offline_per_payment = $2, offline_per_card_daily = $3, offline_kiosk_exposure = $4,
         offline_topup_daily_cap = coalesce($5, offline_topup_daily_cap)
       WHERE id = $1 RETURNING offline_topup_daily_cap AS topup_daily`,
      [site, limits.perPayment, limits.perCardDaily, limits.kioskExposure, limits.topupDaily ?? null],
    );
    return rows[0] && { ...limits, topupDaily: Number(rows[0].topup_daily) };
  }

  /** A top-up (operator) or an adjustment (admin) of one wallet. */
  credit(c: WalletCredit, r: OperatorRequest): Promise<IdempotentOutcome<unknown>> {
    const { kind, site, member, amount, currency, note } = c;
    // as the request named them: a note left out is no key at all (the hash of earlier requests stays the same)
    const params = { op: kind, member, amount, currency, ...(note === undefined ? {} : { note }) };
    return this.#operatorWrite(site, r, params, (tx) =>
      post(tx, {
        site,
        memberId: member,
        kind,
        amount,
        currency,
        requestKey: operatorRequestKey(r.operator, r.key),
        origin: { operator: r.operator },
        note,
        at: r.now,
        recordedAt: r.now,
      }),
    );
  }

  /**
   * A refund of `amount` of a payment, as a new ledger entry. `id` is the
   * payment id as the operator wrote it: the request's hash is of that.
   */
  refund(
    found: PaymentWithRefunds,
    refund: { id: string; amount: number; reason: string },
    r: OperatorRequest,
  ): Promise<IdempotentOutcome<unknown>> {
    const { payment } = found;
    const { id, amount, reason } = refund;
    return this.#operatorWrite(payment.site, r, { op: "refund", id, amount }, (tx) =>
      post(tx, {
        site: payment.site,
        memberId: payment.memberId,
        kind: "refund",
        amount,
        currency: payment.currency,
        requestKey: operatorRequestKey(r.operator, r.key),
        origin: { operator: r.operator },
        refundOf: id,
        note: reason,
        at: r.now,
        recordedAt: r.now,
      }),
    );
  }

  /**
   * An operator's ledger write under its Idempotency-Key. The ledger's own
   * refusals (currency, refund too large) are answers too: stored, replayed.
   */
  #operatorWrite(
    site: string,
    r: OperatorRequest,
    params: Record<string, unknown>,
    write: (tx: Queryable) => Promise<Posted>,
  ): Promise<IdempotentOutcome<unknown>> {
    return withIdempotency(
      this.#db,
      { site, scope: `operator:${r.operator}`, key: r.key, requestHash: requestHash(params) },
      r.now,
      async (tx): Promise<StoredAnswer<unknown>> => {
        if (typeof params.member === "string") {
          const known = await tx.query("SELECT 1 FROM members WHERE site_id = $1 AND id = $2", [site, params.member]);
          if (known.rows.length === 0) return problem(404, "Not found", `no member ${params.member} at site ${site}`);
        }
        // A refusal aborts what the function did; the savepoint keeps the transaction usable to store the answer.
        await tx.query("SAVEPOINT ledger_write");
        try {
          const posted = await write(tx);
          const { rows: entry } = await tx.query<LedgerRow>(
            `SELECT ${LEDGER_COLUMNS} FROM ledger_entries WHERE id = $1`,
            [posted.entryId],
          );
          return { status: 201, body: toEntry(entry[0]!) };
        } catch (err) {
          if (!(err instanceof LedgerRefusal)) throw err;
          await tx.query("ROLLBACK TO SAVEPOINT ledger_write");
          const status = err.code === "no-site" ? 404 : err.code === "not-refundable" ? 409 : 422;
          return problem(status, "Refused by the ledger", err.message);
        }
      },
    );
  }
}

/** A stored answer that is a problem (application/problem+json): replayed like any other. */
function problem(status: number, title: string, detail: string): StoredAnswer<unknown> {
  return { status, body: { type: "about:blank", title, status, detail } };
}
