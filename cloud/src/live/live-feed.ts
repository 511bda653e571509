/**
 * The live feed as the rest of the cloud sees it: events committed in the
 * database (check-ins, payments, device status, alerts, command results),
 * delivered to every API instance through Postgres LISTEN/NOTIFY. The
 * WebSocket route (/api/v1/live) and GraphQL subscriptions both read it.
 * The same connection hears console sessions end (accounts/session-endings.ts).
 */
import type { LiveEvent } from "@paylane/protocol";
import type { SessionRevocations } from "../accounts/session-endings.ts";

export interface LiveFeed {
  /** Calls `listener` for each event committed from now on, until the returned function is called. */
  subscribe(listener: (event: LiveEvent) => void): () => void;
  /**
   * Console sessions ended on any instance, heard on the same LISTEN (absent:
   * a feed that hears only this process, as tests' are).
   */
  readonly sessions?: SessionRevocations;
}
