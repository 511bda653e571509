/**
 * The cloud's one small database interface. `pg` (a real Postgres) and PGlite
 * (Postgres in WASM, for `npm start`) both implement it and both pass the same
 * integration suite.
 */
export interface Queryable {
  query<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<{ rows: R[] }>;
}

/** A session's connection (Database.session). */
export interface SessionConnection extends Queryable {
  /**
   * Resolves when the connection is lost while the session holds it, even between queries (a
   * held advisory lock). Absent where it cannot be lost (PGlite is this process).
   */
  readonly lost?: Promise<Error>;
}

export interface ListenEvents {
  /** The listening connection was lost (it is being reopened). */
  onLost?(err: Error): void;
  /** Listening again after a loss: notifications sent meanwhile were missed. */
  onReconnected?(): void;
}

export interface Database extends Queryable {
  readonly kind: "pg" | "pglite";
  /** Runs `fn` in one transaction: committed if it resolves, rolled back if it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /**
   * Runs `fn` on one connection held for it alone: what it sets on the
   * session (an advisory lock, search_path, its own BEGIN/COMMIT) stays with
   * it. A query without parameters may hold several statements (Postgres'
   * simple query protocol), answered with the last one's rows. Migrations run this way.
   */
  session<T>(fn: (conn: SessionConnection) => Promise<T>): Promise<T>;
  /** Runs a script of several statements. */
  exec(sql: string): Promise<void>;
  /**
   * Calls `onPayload` with each notification on `channel` (LISTEN) from now
   * on, until the returned function is called. pg listens on a connection of
   * its own that comes back after a cut (a Postgres restart, a terminated
   * backend) and listens again; what was notified while it was away is lost,
   * which `onReconnected` says. Absent: a wrapper that cannot listen (tests).
   */
  listen?(channel: string, onPayload: (payload: string) => void, o?: ListenEvents): Promise<() => Promise<void>>;
  close(): Promise<void>;
}
