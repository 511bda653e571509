/**
 * The enrolment audit: every claim created, enrolment, refusal, revocation
 * and rotation, with who asked (an operator's `sub`, or "device") and from
 * which address. Never a claim code: the claim is named by its id.
 */
import type { Queryable } from "../db/database.ts";

export const ENROLMENT_ACTIONS = [
  "claim-created",
  "enrolled",
  "refused",
  "revoked",
  "rotated",
  "rotate-asked",
] as const;
export type EnrolmentAction = (typeof ENROLMENT_ACTIONS)[number];

export interface AuditEntry {
  at: Date;
  action: EnrolmentAction;
  site?: string | null;
  device?: string | null;
  claimId?: string | null;
  /** The operator token's sub, or "device". */
  actor: string;
  address?: string | null;
  outcome: "ok" | "refused";
  reason?: string | null;
}

export interface AuditRecord extends Omit<AuditEntry, "at"> {
  at: string;
}

export async function writeAudit(db: Queryable, e: AuditEntry): Promise<void> {
  await db.query(
    `INSERT INTO enrolment_audit (at, action, site_id, device_id, claim_id, actor, address, outcome, reason)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
    [
      e.at,
      e.action,
      e.site ?? null,
      e.device ?? null,
      e.claimId ?? null,
      e.actor,
      e.address ?? null,
      e.outcome,
      e.reason ?? null,
    ],
  );
}

/** The audit of a site (or every site), newest first. */
export async function listAudit(db: Queryable, site: string | undefined, limit: number): Promise<AuditRecord[]> {
  const { rows } = await db.query<{
    at: Date;
    action: EnrolmentAction;
    site_id: string | null;
    device_id: string | null;
    claim_id: string | null;
    actor: string;
    address: string | null;
    outcome: "ok" | "refused";
    reason: string | null;
  }>(
    `SELECT at, action, site_id, device_id, claim_id, actor, address, outcome, reason FROM enrolment_audit
     WHERE $1::text IS NULL OR site_id = $1 ORDER BY at DESC, id DESC LIMIT $2`,
    [site ?? null, limit],
  );
  return rows.map((r) => ({
    at: r.at.toISOString(),
    action: r.action,
    site: r.site_id,
    device: r.device_id,
    claimId: r.claim_id,
    actor: r.actor,
    address: r.address,
    outcome: r.outcome,
    reason: r.reason,
  }));
}
