/** Demo data for `npm start`: one venue and a handful of members with known card UIDs. */
import type { Database } from "./db/database.ts";

export interface DemoMember {
  id: string;
  name: string;
  cardUid: string;
  code: string;
  status: "active" | "revoked";
}

export const DEMO_MEMBERS: readonly DemoMember[] = [
  { id: "m-ada", name: "Ada Lovelace", cardUid: "04A2B3C4", code: "ADA1815", status: "active" },
  { id: "m-grace", name: "Grace Hopper", cardUid: "04B1C2D3", code: "GRACE1906", status: "active" },
  { id: "m-alan", name: "Alan Turing", cardUid: "04C0FFEE", code: "ALAN1912", status: "active" },
  { id: "m-katherine", name: "Katherine Johnson", cardUid: "04A1B2C3D4E5F6", code: "KJ1918", status: "active" },
  { id: "m-mallory", name: "Mallory Blocked", cardUid: "04DEAD00", code: "MAL0000", status: "revoked" },
];

/** Creates (or updates) a site and its members, bumping the site's member version once. */
export async function seedSite(
  db: Database,
  site: { id: string; name: string; timezone: string },
  members: readonly DemoMember[] = DEMO_MEMBERS,
): Promise<void> {
  await db.transaction(async (tx) => {
    const { rows } = await tx.query<{ members_version: number }>(
      `INSERT INTO sites (id, name, timezone, members_version) VALUES ($1, $2, $3, 1)
       ON CONFLICT (id) DO UPDATE SET name = $2, timezone = $3, members_version = sites.members_version + 1
       RETURNING members_version`,
      [site.id, site.name, site.timezone],
    );
    const version = rows[0]!.members_version;
    for (const m of members) {
      await tx.query(
        `INSERT INTO members (site_id, id, name, card_uid, code, status, version) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (site_id, id) DO UPDATE SET name = $3, card_uid = $4, code = $5, status = $6, version = $7, updated_at = now()`,
        [site.id, m.id, m.name, m.cardUid, m.code, m.status, version],
      );
    }
  });
}
