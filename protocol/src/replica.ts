/**
 * HTTP contract for the member replica a kiosk keeps: what
 * `GET /api/v1/sites/{site}/members` returns to a device.
 */
import { z } from "zod";

export const MEMBER_STATUSES = ["active", "revoked"] as const;

export const ReplicaMemberSchema = z.object({
  id: z.string().min(1),
  name: z.string().min(1),
  cardUid: z.string().nullable(),
  code: z.string().nullable(),
  status: z.enum(MEMBER_STATUSES),
});
export type ReplicaMember = z.infer<typeof ReplicaMemberSchema>;

export const MemberSnapshotSchema = z.object({
  site: z.string(),
  /** Monotonic version of the site's member list; travels with each decision. */
  version: z.number().int().min(0),
  timezone: z.string().min(1),
  /** The venue's display name (receipts, the attract screen). */
  siteName: z.string().min(1),
  members: z.array(ReplicaMemberSchema),
});
export type MemberSnapshot = z.infer<typeof MemberSnapshotSchema>;
