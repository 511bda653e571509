/**
 * Ended console sessions, announced to every API instance: each write that
 * ends one (logout, a reused refresh token, an account changed or disabled,
 * from any instance or paylane-admin) notifies SESSIONS_CHANNEL in its own
 * transaction, and each instance's LISTEN (the live feed's connection,
 * live/database-live-feed.ts) hands the ids to its `Sessions`, which stops
 * believing them at once.
 */
import type { Queryable } from "../db/database.ts";

/** The Postgres channel every ended session is announced on (see `notifySessionsEnded`). */
export const SESSIONS_CHANNEL = "paylane_sessions";
/** Past this many sessions ended at once, a notification names none: every cached session is asked again. */
export const MAX_NAMED_SIDS = 100;

/**
 * Where a cloud hears that sessions ended, on whichever instance (the live
 * feed's LISTEN: live/database-live-feed.ts).
 */
export interface SessionRevocations {
  /**
   * Calls `listener` with the ids of sessions that ended, or null when any
   * may have (many at once, or the listening connection was lost and
   * notifications may have been missed). Returns the unsubscribe.
   */
  onSessionsEnded(listener: (sids: readonly string[] | null) => void): () => void;
  /** Whether every ending is heard now; while not, `Sessions` caches nothing. */
  readonly hearing: boolean;
}

/**
 * Announces ended sessions to every API instance: in `q`'s transaction, so
 * the notification goes out with the commit that ended them, never before.
 */
export async function notifySessionsEnded(q: Queryable, sids: readonly string[]): Promise<void> {
  if (sids.length === 0) return;
  await q.query("SELECT pg_notify($1, json_build_object('s', current_schema(), 'sids', $2::text[])::text)", [
    SESSIONS_CHANNEL,
    sids.length > MAX_NAMED_SIDS ? null : sids,
  ]);
}
