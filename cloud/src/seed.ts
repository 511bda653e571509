/**
 * Demo data for `npm start` and the tests: one venue with members who have
 * known card UIDs, a price list, and opening wallet balances.
 */
import type { Database } from "./db/database.ts";
import { operatorRequestKey, post } from "./ledger/ledger.ts";

export interface DemoMember {
  id: string;
  name: string;
  cardUid: string;
  code: string;
  status: "active" | "revoked";
  /** Minor units credited once, as the operator "seed", when the wallet is first seeded. */
  openingBalance?: number;
}

export const DEMO_MEMBERS: readonly DemoMember[] = [
  { id: "m-ada", name: "Ada Lovelace", cardUid: "04A2B3C4", code: "ADA1815", status: "active", openingBalance: 2500 },
  {
    id: "m-grace",
    name: "Grace Hopper",
    cardUid: "04B1C2D3",
    code: "GRACE1906",
    status: "active",
    openingBalance: 1000,
  },
  { id: "m-alan", name: "Alan Turing", cardUid: "04C0FFEE", code: "ALAN1912", status: "active", openingBalance: 150 },
  { id: "m-katherine", name: "Katherine Johnson", cardUid: "04A1B2C3D4E5F6", code: "KJ1918", status: "active" },
  { id: "m-mallory", name: "Mallory Blocked", cardUid: "04DEAD00", code: "MAL0000", status: "revoked" },
];

export interface DemoItem {
  id: string;
  name: string;
  price: number;
}

export const DEMO_ITEMS: readonly DemoItem[] = [
  { id: "coffee", name: "Coffee", price: 250 },
  { id: "water", name: "Water", price: 150 },
  { id: "day-pass", name: "Day pass", price: 1200 },
  { id: "locker", name: "Locker", price: 200 },
];

export interface SeedSite {
  id: string;
  name: string;
  timezone: string;
  currency?: string;
  /** Offline limits, minor units; defaults from the migration when absent. */
  limits?: { perPayment: number; perCardDaily: number; kioskExposure: number };
}

/**
 * Creates (or updates) a site, its members, price list and opening balances;
 * bumps the site's member version once. Opening balances are posted once per
 * member (their request key is fixed), so seeding again changes no balance.
 */
export async function seedSite(
  db: Database,
  site: SeedSite,
  members: readonly DemoMember[] = DEMO_MEMBERS,
  items: readonly DemoItem[] = DEMO_ITEMS,
): Promise<void> {
  await db.transaction(async (tx) => {
    const { rows } = await tx.query<{ members_version: number }>(
      `INSERT INTO sites (id, name, timezone, members_version, currency) VALUES ($1, $2, $3, 1, $4)
       ON CONFLICT (id) DO UPDATE SET name = $2, timezone = $3, members_version = sites.members_version + 1, currency = $4
       RETURNING members_version`,
      [site.id, site.name, site.timezone, site.currency ?? "EUR"],
    );
    if (site.limits) {
      await tx.query(
        "UPDATE sites SET offline_per_payment = $2, offline_per_card_daily = $3, offline_kiosk_exposure = $4 WHERE id = $1",
        [site.id, site.limits.perPayment, site.limits.perCardDaily, site.limits.kioskExposure],
      );
    }
    const version = rows[0]!.members_version;
    for (const m of members) {
      await tx.query(
        `INSERT INTO members (site_id, id, name, card_uid, code, status, version) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (site_id, id) DO UPDATE SET name = $3, card_uid = $4, code = $5, status = $6, version = $7, updated_at = now()`,
        [site.id, m.id, m.name, m.cardUid, m.code, m.status, version],
      );
    }
    for (const i of items) {
      await tx.query(
        `INSERT INTO items (site_id, id, name, price) VALUES ($1, $2, $3, $4)
         ON CONFLICT (site_id, id) DO UPDATE SET name = $3, price = $4, active = true`,
        [site.id, i.id, i.name, i.price],
      );
    }
    const now = new Date();
    for (const m of members) {
      if (!m.openingBalance) continue;
      await post(tx, {
        site: site.id,
        memberId: m.id,
        kind: "topup",
        amount: m.openingBalance,
        currency: site.currency ?? "EUR",
        requestKey: operatorRequestKey("seed", `opening-${m.id}`),
        origin: { operator: "seed" },
        note: "opening balance",
        at: now,
        recordedAt: now,
      });
    }
  });
}
