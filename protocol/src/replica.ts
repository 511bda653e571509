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
  /** Absent or true: the whole member list (replaces the replica). */
  full: z.literal(true).optional(),
  site: z.string(),
  /** Monotonic version of the site's member list; travels with each decision. */
  version: z.number().int().min(0),
  timezone: z.string().min(1),
  /** The venue's display name (receipts, the attract screen). */
  siteName: z.string().min(1),
  members: z.array(ReplicaMemberSchema),
});
export type MemberSnapshot = z.infer<typeof MemberSnapshotSchema>;

/**
 * `GET .../members?since=V` when the cloud can answer with a delta: the
 * members changed after version V (members are never deleted, only revoked).
 * The kiosk applies it only on top of version V; anything else gets a full
 * snapshot instead (no cursor, a cursor from another timeline, or too old).
 */
export const MemberDeltaSchema = z.object({
  full: z.literal(false),
  site: z.string(),
  /** The version this delta applies on top of. */
  since: z.number().int().min(0),
  version: z.number().int().min(0),
  timezone: z.string().min(1),
  siteName: z.string().min(1),
  changes: z.array(ReplicaMemberSchema),
});
export type MemberDelta = z.infer<typeof MemberDeltaSchema>;

export const MemberSyncSchema = z.union([MemberDeltaSchema, MemberSnapshotSchema]);
export type MemberSync = z.infer<typeof MemberSyncSchema>;

/** Deltas span at most this many versions; an older cursor gets a full snapshot. */
export const MEMBER_DELTA_MAX_VERSIONS = 1000;
