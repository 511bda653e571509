/**
 * What a kiosk authorizes against while offline (`GET .../wallets?since=V`):
 * the site's currency, limits and price list, and its wallets, whole or
 * changed since V.
 *
 * The version is the reading snapshot's xmin, and every wallet row carries
 * the id of the transaction that last changed it. A row changed by a
 * transaction this snapshot could not see has an id >= xmin, so the next
 * delta (`changed_xid >= V`) includes it: deltas may repeat a row, never
 * miss one, and no site-wide counter serialises the payments that write them.
 */
import type { WalletSync } from "@paylane/protocol";
import type { Queryable } from "../db/database.ts";

const SQL = `SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS version,
    s.currency, s.offline_per_payment, s.offline_per_card_daily, s.offline_kiosk_exposure, s.offline_topup_daily_cap,
    coalesce((SELECT acked_seq FROM device_streams d WHERE d.site_id = s.id AND d.device_id = $2), 0) AS applied_up_to,
    (SELECT coalesce(json_agg(json_build_array(i.id, i.name, i.price) ORDER BY i.id), '[]')
     FROM items i WHERE i.site_id = s.id AND i.active) AS items,
    (SELECT coalesce(json_agg(json_build_array(w.member_id, w.balance, w.offline_blocked) ORDER BY w.member_id), '[]')
     FROM wallets w WHERE w.site_id = s.id AND ($3::bigint IS NULL OR w.changed_xid >= $3::text::xid8)) AS wallets
  FROM sites s WHERE s.id = $1`;

/** The sync for `device` of `site`: a delta from `since` when the cloud can give one, else everything. */
export async function walletSync(
  db: Queryable,
  site: string,
  device: string,
  since: number | undefined,
): Promise<WalletSync | undefined> {
  // One statement, one snapshot: balances, version and appliedUpTo agree with each other.
  const read = (from: number | undefined) =>
    db.query<{
      version: number;
      currency: string;
      offline_per_payment: number;
      offline_per_card_daily: number;
      offline_kiosk_exposure: number;
      offline_topup_daily_cap: number;
      applied_up_to: number;
      items: Array<[string, string, number]>;
      wallets: Array<[string, number, boolean]>;
    }>(SQL, [site, device, from ?? null]);
  let { rows } = await read(since);
  let r = rows[0];
  if (!r) return undefined;
  // A cursor from the future (the database was restored, or it is another cloud's): start over.
  if (since !== undefined && since > r.version) {
    ({ rows } = await read(undefined));
    r = rows[0]!;
    since = undefined;
  }
  return {
    site,
    full: since === undefined,
    version: r.version,
    currency: r.currency,
    limits: {
      perPayment: r.offline_per_payment,
      perCardDaily: r.offline_per_card_daily,
      kioskExposure: r.offline_kiosk_exposure,
      topupDaily: r.offline_topup_daily_cap,
    },
    items: r.items.map(([id, name, price]) => ({ id, name, price })),
    wallets: r.wallets.map(([memberId, balance, offlineBlocked]) => ({ memberId, balance, offlineBlocked })),
    appliedUpTo: r.applied_up_to,
  };
}
