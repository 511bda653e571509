/**
 * What this kiosk's journal says about money that the wallet replica may
 * not know yet: payments and top-ups journaled since the replica's applied
 * seq, purchases still pending (their intents), offline spending per day,
 * the offline exposure, and the top-ups since the terminal's last
 * settlement. Reads only, on the journal's file, over the payment entries'
 * bodies and the journal's per-member-per-day index.
 */
import type { TopupBody } from "@paylane/protocol";
import type { Journal } from "../journal.ts";
import type { Sqlite } from "../sqlite.ts";

export interface MemberMoney {
  /** Payments minus top-ups journaled after the replica's applied seq. */
  unsyncedSpend: number;
  /** Purchases whose outcome is not known yet. */
  pendingSpend: number;
  /** Offline payments of this member at this kiosk on the given day. */
  offlineSpentToday: number;
}

export class JournalMoney {
  readonly #db: Sqlite;

  /** Needs the journal's payment intents table (PaymentIntents.open). */
  constructor(journal: Journal) {
    this.#db = journal.db;
  }

  /**
   * A member's money this kiosk knows of: spending and top-ups journaled
   * after `afterSeq` (the replica's applied seq), purchases still pending
   * (counted as spent, to be safe) except `exceptKey`, and the member's
   * offline spending on `day`.
   */
  async member(memberId: string, afterSeq: number, day: string, exceptKey = ""): Promise<MemberMoney> {
    const row = await this.#db.get<{ spent: number; topped: number; pending: number; offline_today: number }>(
      `SELECT
         coalesce((SELECT sum(json_extract(body, '$.amount')) FROM journal
                   WHERE member_id = ?1 AND kind = 'payment' AND seq > ?2), 0) AS spent,
         coalesce((SELECT sum(json_extract(body, '$.amount')) FROM journal
                   WHERE member_id = ?1 AND kind = 'topup' AND seq > ?2
                     AND coalesce(json_extract(body, '$.authorization'), 'online') <> 'offline'), 0) AS topped,
         coalesce((SELECT sum(amount) FROM payment_intents
                   WHERE member_id = ?1 AND kind = 'purchase' AND state = 'pending' AND key <> ?4), 0) AS pending,
         coalesce((SELECT sum(json_extract(body, '$.amount')) FROM journal
                   WHERE member_id = ?1 AND local_day = ?3 AND kind = 'payment'
                     AND json_extract(body, '$.authorization') = 'offline'), 0) AS offline_today`,
      [memberId, afterSeq, day, exceptKey],
    );
    return {
      unsyncedSpend: (row?.spent ?? 0) - (row?.topped ?? 0),
      pendingSpend: row?.pending ?? 0,
      offlineSpentToday: row?.offline_today ?? 0,
    };
  }

  /**
   * What this kiosk took in offline top-ups on a site-local day (the site's
   * per-kiosk cap counts against it). Entries are kept at least two days
   * (journalRetentionDays), so today's are all here.
   */
  async offlineTopupsOn(day: string): Promise<number> {
    const row = await this.#db.get<{ amount: number }>(
      `SELECT coalesce(sum(json_extract(body, '$.amount')), 0) AS amount FROM journal
       WHERE kind = 'topup' AND local_day = ? AND json_extract(body, '$.authorization') = 'offline'`,
      [day],
    );
    return row?.amount ?? 0;
  }

  /**
   * The top-ups journaled since the last `terminal-settlement` entry: what the
   * terminal's next end-of-day should total. `fromSeq` is that entry's seq (0
   * when there is none), `toSeq` the journal's last seq.
   */
  async topupsSinceSettlement(): Promise<{ fromSeq: number; toSeq: number; topups: TopupBody[] }> {
    const from = await this.#db.get<{ seq: number | null; last: number }>(
      `SELECT (SELECT max(seq) FROM journal WHERE kind = 'terminal-settlement') AS seq,
              (SELECT last_seq FROM meta WHERE one = 1) AS last`,
    );
    const fromSeq = from?.seq ?? 0;
    const rows = await this.#db.all<{ body: string }>(
      "SELECT body FROM journal WHERE kind = 'topup' AND seq > ? ORDER BY seq",
      [fromSeq],
    );
    return { fromSeq, toSeq: from?.last ?? fromSeq, topups: rows.map((r) => JSON.parse(r.body) as TopupBody) };
  }

  /** Offline payments the cloud has not acked yet: what this kiosk is exposed to. */
  async offlineExposure(): Promise<{ amount: number; payments: number }> {
    const row = await this.#db.get<{ amount: number; payments: number }>(
      `SELECT coalesce(sum(json_extract(body, '$.amount')), 0) AS amount, count(*) AS payments FROM journal
       WHERE kind = 'payment' AND json_extract(body, '$.authorization') = 'offline'
         AND seq > (SELECT acked_up_to FROM meta WHERE one = 1)`,
    );
    return { amount: row?.amount ?? 0, payments: row?.payments ?? 0 };
  }
}
