import pg from "pg";
import type { Database, Queryable } from "./database.ts";
import { PgListener } from "./pg-listener.ts";
import { type ParsedPgUrl, parsePgUrl, type TargetSessionAttrs } from "./pg-url.ts";

const INT8 = 20;

export interface PgOptions {
  /**
   * A Postgres URL; libpq's multi-host form too (`postgres://h1:5432,h2:5433/db?target_session_attrs=read-write`):
   * the first host whose session has the attributes asked for is used, and the choice is made
   * again after a connection to it is lost (a failover: the old primary gone, a standby promoted).
   */
  url: string;
  /** Schema holding PayLane's tables; created if missing. Tests use one per run. */
  schema: string;
  max?: number;
  /**
   * A statement with no answer by then fails on the client and its connection
   * is dropped (default 30 s). Without it, a reply lost with the connection
   * still open (a Postgres host dying mid-statement, no RST, no FIN) left the
   * ingest statement pending forever and its devices never acked again.
   */
  queryTimeoutMs?: number;
  /** Told each time a (new) host is chosen among several, and why a choice failed. */
  onHostChosen?: (host: string) => void;
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** How long a probe of one host may take (connect and one query) before the next host is tried. */
const PROBE_TIMEOUT_MS = 3000;

function poolConfig(url: string, o: PgOptions): pg.PoolConfig {
  return {
    connectionString: url,
    max: o.max ?? 10,
    query_timeout: o.queryTimeoutMs ?? 30_000,
    keepAlive: true,
    connectionTimeoutMillis: 10_000,
    // jit=off: every cloud statement is short OLTP work. The ingest statement's high-water step
    // is estimated from whole-table statistics (~1M cost) although it reads a handful of rows,
    // which crosses jit_above_cost and spends ~300 ms compiling a 25 ms statement.
    options: `-c search_path=${o.schema} -c jit=off`,
    // seqs and versions are bigint in SQL and safe integers in JS
    types: {
      getTypeParser: ((oid: number, format?: "text" | "binary") =>
        oid === INT8 ? Number : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
  };
}

/**
 * An error after which the host may no longer be the one to talk to: the connection is gone
 * (no SQLSTATE: pg's "Connection terminated", a timeout; a socket error), the server is
 * shutting down or starting (57P01-57P03), the connection failed (class 08), or the host now
 * refuses writes (25006: a standby, or a demoted primary).
 */
export function isConnectionLoss(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (typeof code !== "string") return true;
  if (/^E[A-Z]+$/.test(code)) return true;
  return code.startsWith("08") || code === "57P01" || code === "57P02" || code === "57P03" || code === "25006";
}

interface HostState {
  standby: boolean;
  readOnly: boolean;
}

function matches(attrs: TargetSessionAttrs, s: HostState): boolean {
  switch (attrs) {
    case "any":
    case "prefer-standby":
      return true;
    case "read-write":
      return !s.readOnly;
    case "read-only":
      return s.readOnly;
    case "primary":
      return !s.standby;
    case "standby":
      return s.standby;
  }
}

/**
 * The hosts of one URL and the pool of the one in use. A single host without
 * target_session_attrs is used as is, never probed (the behaviour before
 * multi-host URLs). Otherwise each host is probed in order (its own short
 * connection: `pg_is_in_recovery()` and `transaction_read_only`, as libpq
 * checks them) and the first that fits is used until a connection loss on it.
 */
export class HostSelector {
  readonly #parsed: ParsedPgUrl;
  readonly #o: PgOptions;
  readonly #pools = new Map<number, pg.Pool>();
  #current: { index: number; pool: pg.Pool } | undefined;
  #choosing: Promise<{ index: number; pool: pg.Pool }> | undefined;
  #closed = false;

  constructor(parsed: ParsedPgUrl, o: PgOptions) {
    this.#parsed = parsed;
    this.#o = o;
  }

  get probes(): boolean {
    return this.#parsed.hosts.length > 1 || this.#parsed.explicitAttrs;
  }

  /** The host in use, `host:port` (undefined while none is chosen). */
  get current(): string | undefined {
    return this.#current ? this.#parsed.hosts[this.#current.index]!.label : undefined;
  }

  /** The pool of the host to use now, choosing one when none is. */
  async pool(): Promise<pg.Pool> {
    if (this.#closed) throw new Error("the database is closed");
    if (this.#current) return this.#current.pool;
    this.#choosing ??= this.#choose().finally(() => {
      this.#choosing = undefined;
    });
    return (await this.#choosing).pool;
  }

  /** The single-host URL of the host to use now (the LISTEN connection follows it). */
  async url(): Promise<string> {
    await this.pool();
    return this.#parsed.hosts[this.#current!.index]!.url;
  }

  /** A connection on `pool` was lost: the next call chooses again (when there is a choice to make). */
  lost(pool: pg.Pool, err: unknown): void {
    if (!this.probes || !isConnectionLoss(err)) return;
    if (this.#current?.pool === pool) this.#current = undefined;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#current = undefined;
    await Promise.all([...this.#pools.values()].map((p) => p.end().catch(() => {})));
    this.#pools.clear();
  }

  #poolFor(index: number): pg.Pool {
    let pool = this.#pools.get(index);
    if (!pool) {
      pool = new pg.Pool(poolConfig(this.#parsed.hosts[index]!.url, this.#o));
      // An idle client losing its connection (a Postgres restart) must not crash the process;
      // with several hosts it is also the first sign of a failover.
      const p = pool;
      pool.on("error", (err) => this.lost(p, err));
      this.#pools.set(index, pool);
    }
    return pool;
  }

  async #choose(): Promise<{ index: number; pool: pg.Pool }> {
    const { hosts, targetSessionAttrs } = this.#parsed;
    if (!this.probes) {
      this.#current = { index: 0, pool: this.#poolFor(0) };
      return this.#current;
    }
    const why: string[] = [];
    const states: (HostState | undefined)[] = [];
    for (let i = 0; i < hosts.length; i++) {
      const state = await probe(hosts[i]!.url).catch((err: Error) => {
        why.push(`${hosts[i]!.label}: ${err.message}`);
        return undefined;
      });
      states.push(state);
      if (!state) continue;
      const fits = targetSessionAttrs === "prefer-standby" ? state.standby : matches(targetSessionAttrs, state);
      if (fits) return this.#use(i);
      why.push(`${hosts[i]!.label}: ${state.standby ? "in recovery (a standby)" : "read-only"}`);
    }
    if (targetSessionAttrs === "prefer-standby") {
      const any = states.findIndex((s) => s !== undefined);
      if (any >= 0) return this.#use(any);
    }
    throw new Error(`no host of DATABASE_URL fits target_session_attrs=${targetSessionAttrs} (${why.join("; ")})`);
  }

  #use(index: number): { index: number; pool: pg.Pool } {
    if (this.#closed) throw new Error("the database is closed");
    this.#current = { index, pool: this.#poolFor(index) };
    this.#o.onHostChosen?.(this.#parsed.hosts[index]!.label);
    return this.#current;
  }
}

async function probe(url: string): Promise<HostState> {
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: PROBE_TIMEOUT_MS,
    query_timeout: PROBE_TIMEOUT_MS,
  });
  client.on("error", () => {});
  try {
    await client.connect();
    const { rows } = await client.query<{ standby: boolean; read_only: string }>(
      "SELECT pg_is_in_recovery() AS standby, current_setting('transaction_read_only') AS read_only",
    );
    return { standby: rows[0]!.standby, readOnly: rows[0]!.read_only === "on" };
  } finally {
    await client.end().catch(() => {});
  }
}

/** The schema name and the URL checked, each error naming its variable. */
function parseOptions(o: { url: string; schema: string }, variable: string): ParsedPgUrl {
  if (!SCHEMA_NAME.test(o.schema))
    throw new Error(`DATABASE_SCHEMA ${JSON.stringify(o.schema)}: expected ${SCHEMA_NAME}`);
  try {
    return parsePgUrl(o.url);
  } catch (err) {
    throw new Error(`${variable}: ${(err as Error).message}`);
  }
}

export async function openPg(o: PgOptions): Promise<Database> {
  const parsed = parseOptions(o, "DATABASE_URL");
  const hosts = new HostSelector(parsed, o);
  try {
    const pool = await hosts.pool();
    const client = await pool.connect();
    try {
      // Under a lock, because concurrent CREATE SCHEMA IF NOT EXISTS can still collide in the catalog.
      await client.query("BEGIN");
      await client.query("SELECT pg_advisory_xact_lock(7410)");
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${o.schema}`);
      await client.query("COMMIT");
    } finally {
      client.release();
    }
  } catch (err) {
    await hosts.close();
    throw new Error(`cannot connect to DATABASE_URL: ${(err as Error).message}`);
  }
  // Opened at the first listen(): a cloud that never listens holds no extra connection.
  // Named, so ops (and the tests that cut it) find it in pg_stat_activity. With several
  // hosts it reopens on the host in use at the time.
  const listenerConfig = {
    connectionTimeoutMillis: 10_000,
    application_name: `paylane-live:${o.schema}`,
  };
  const listener = new PgListener(
    hosts.probes
      ? async () => ({ ...listenerConfig, connectionString: await hosts.url() })
      : { ...listenerConfig, connectionString: parsed.hosts[0]!.url },
  );
  /** Runs `fn` on the pool in use; a connection loss makes the next call choose a host again. */
  async function onPool<T>(fn: (pool: pg.Pool) => Promise<T>): Promise<T> {
    const pool = await hosts.pool();
    try {
      return await fn(pool);
    } catch (err) {
      hosts.lost(pool, err);
      throw err;
    }
  }
  return {
    kind: "pg",
    listen: (channel, onPayload, events) => listener.listen(channel, onPayload, events),
    query: async (sql, params) => onPool((pool) => pool.query(sql, params as unknown[]) as never),
    transaction: (fn) =>
      onPool(async (pool) => {
        const client = await pool.connect();
        try {
          await client.query("BEGIN");
          const tx: Queryable = { query: async (sql, params) => client.query(sql, params as unknown[]) as never };
          const result = await fn(tx);
          await client.query("COMMIT");
          return result;
        } catch (err) {
          await client.query("ROLLBACK").catch(() => {});
          throw err;
        } finally {
          client.release();
        }
      }),
    session: (fn) =>
      onPool(async (pool) => {
        const client = await pool.connect();
        let broken: Error | undefined;
        // A connection lost while the session holds it between queries (the cloud leader's advisory
        // lock) is an 'error' on a client no pool listens to while it is lent out: an unhandled
        // 'error' would end the process. Kept instead; the session's next query fails on it.
        let lose: (err: Error) => void = () => {};
        const lost = new Promise<Error>((resolve) => {
          lose = resolve;
        });
        const onError = (err: Error) => {
          broken ??= err;
          lose(err);
        };
        client.on("error", onError);
        try {
          return await fn({
            lost,
            async query(sql, params) {
              const result: pg.QueryResult | pg.QueryResult[] = await client.query(sql, params as unknown[]);
              // several statements (no parameters): pg answers each; the last one's rows, as PGlite gives them
              return (Array.isArray(result) ? result.at(-1)! : result) as never;
            },
          });
        } catch (err) {
          broken = err as Error;
          throw err;
        } finally {
          // A session that failed may leave a transaction open: the pool gets a fresh connection instead.
          client.off("error", onError);
          client.release(broken);
        }
      }),
    async exec(sql) {
      await onPool((pool) => pool.query(sql));
    },
    async close() {
      await listener.close();
      await hosts.close();
    },
  };
}

export interface PgReaderOptions extends Omit<PgOptions, "url"> {
  /** DATABASE_READ_URL: a replica (or several, libpq's multi-host form; target_session_attrs as libpq's). */
  url: string;
  /** Where writes, transactions and LISTEN go, and reads while the replica is down. */
  primary: Database;
  /** After a replica failure, reads go to the primary this long before the replica is tried again (default 5 s). */
  retryAfterMs?: number;
  now?: () => number;
}

/**
 * The read side for DATABASE_READ_URL: `query` goes to the replica, falling
 * back to the primary when the replica cannot answer (down, unreachable, still
 * starting); everything else is the primary's. A replica lags its primary by
 * its replay delay, so only reads that may be a moment stale belong here.
 * Opening never fails on the replica: it is connected at the first read.
 */
export function openPgReader(o: PgReaderOptions): Database & { readonly replicaDownSince: number | undefined } {
  const hosts = new HostSelector(parseOptions(o, "DATABASE_READ_URL"), o);
  const now = o.now ?? Date.now;
  const retryAfterMs = o.retryAfterMs ?? 5000;
  let downSince: number | undefined;
  let downAt = 0;
  const primary = o.primary;
  return {
    kind: "pg",
    get replicaDownSince() {
      return downSince;
    },
    async query(sql, params) {
      if (downSince === undefined || now() - downAt >= retryAfterMs) {
        let pool: pg.Pool | undefined;
        try {
          pool = await hosts.pool();
          const result = await pool.query(sql, params as unknown[]);
          downSince = undefined;
          return result as never;
        } catch (err) {
          if (pool) hosts.lost(pool, err);
          // A wrong query is the caller's error on any host; only a replica that cannot answer falls back.
          if (pool && !isConnectionLoss(err) && !isRecoveryConflict(err)) throw err;
          downSince ??= now();
          downAt = now();
        }
      }
      return primary.query(sql, params);
    },
    transaction: (fn) => primary.transaction(fn),
    session: (fn) => primary.session(fn),
    exec: (sql) => primary.exec(sql),
    listen: primary.listen?.bind(primary),
    async close() {
      await hosts.close();
    },
  };
}

/** 40001 on a standby: a query cancelled by a recovery conflict (replayed WAL removed what it read). */
function isRecoveryConflict(err: unknown): boolean {
  return (err as { code?: unknown }).code === "40001";
}
