/**
 * The cloud's one small database interface. `pg` (a real Postgres) and PGlite
 * (Postgres in WASM, for `npm start`) both implement it and both pass the same
 * integration suite.
 */
export interface Queryable {
  query<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<{ rows: R[] }>;
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
  session<T>(fn: (conn: Queryable) => Promise<T>): Promise<T>;
  /** Runs a script of several statements. */
  exec(sql: string): Promise<void>;
  close(): Promise<void>;
}
