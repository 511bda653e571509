/**
 * One leader among the cloud instances of a database, for the duties that
 * must run once however many instances there are (docs/scale-bridges.md):
 * the telemetry history and its purge, alert state and notifications
 * (webhook, PagerDuty, the retained alert topics), the command sweep and the
 * redelivery of pending commands on births, the idempotency-key purge.
 *
 * Leadership is a Postgres session advisory lock held on a connection of its
 * own: the database itself says who holds it, and a leader that dies (or
 * whose connection is cut) lets it go with its session, so another instance
 * takes it at its next try. Every instance computes the same state from what
 * it hears (every instance hears statuses and telemetry); only the leader
 * writes it down and notifies. A handover may repeat or miss the one change
 * that happened during it; nothing is lost from the database's truth (the
 * inbox, the ledger), only a notification may be sent twice.
 *
 * PGlite (npm start) is one process: its one instance leads.
 */
import { realTimers, type Timers } from "@paylane/protocol";
import type { Logger } from "pino";
import type { Database, SessionConnection } from "../db/database.ts";

/**
 * The advisory lock's key, per schema (advisory locks are database-wide, and several clouds may
 * share a database in schemas of their own) and per site scope ($1: deployments owning different
 * CLOUD_SITES on one database each need a leader of their own): fixed, so every version agrees.
 */
const LOCK_KEY = "hashtext('paylane-leader:' || current_schema() || ':' || $1::text)";

/** The lock's site scope: the sorted CLOUD_SITES, or `*` for every site. */
export function leaderScope(sites: readonly string[] | undefined): string {
  return sites && sites.length > 0 ? [...sites].sort().join(",") : "*";
}

export interface LeaderOptions {
  db: Database;
  logger: Logger;
  /** This instance's name (CLOUD_INSTANCE), for the logs. */
  instance: string;
  timers?: Timers;
  /** How often a follower tries to take the lock (ms). */
  everyMs?: number;
  /** Whether this instance may lead at all (CLOUD_ROLE api does not). */
  eligible?: boolean;
  /** The sites whose duties it leads (CLOUD_SITES; default every site). */
  sites?: readonly string[];
}

export class Leader {
  readonly #o: LeaderOptions;
  #leading = false;
  #stopped = true;
  #release: (() => void) | undefined;
  #session: Promise<void> | undefined;
  #timer: unknown;

  constructor(o: LeaderOptions) {
    this.#o = o;
  }

  /** Whether this instance holds the lock now. */
  get leading(): boolean {
    return this.#leading;
  }

  /** The duties' guard: `() => leader.leading`. */
  readonly isLeader = (): boolean => this.#leading;

  async start(): Promise<void> {
    this.#stopped = false;
    if (this.#o.eligible === false) return;
    if (this.#o.db.kind === "pglite") {
      this.#leading = true;
      return;
    }
    await this.#try();
  }

  /** Lets the lock go (its session ends), so another instance leads at its next try. */
  async stop(): Promise<void> {
    this.#stopped = true;
    (this.#o.timers ?? realTimers).clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#release?.();
    await this.#session;
    this.#leading = false;
  }

  /** One try: take the lock and hold its session while it answers; or try again later. */
  async #try(): Promise<void> {
    if (this.#stopped || this.#session) return;
    let took!: (v: boolean) => void;
    const taken = new Promise<boolean>((resolve) => {
      took = resolve;
    });
    this.#session = this.#o.db
      .session(async (conn) => {
        // A leader whose host vanishes (no FIN, no RST) must not hold the lock for the kernel's two
        // hours of TCP keepalive: the server probes this session's socket after 10 s idle instead.
        await conn
          .query("SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3")
          .catch(() => undefined);
        const { rows } = await conn.query<{ ok: boolean }>(`SELECT pg_try_advisory_lock(${LOCK_KEY}) AS ok`, [
          leaderScope(this.#o.sites),
        ]);
        if (!rows[0]?.ok) {
          took(false);
          return;
        }
        if (this.#stopped) {
          // stop() came while the lock was being asked for: its release call found no hold to end.
          took(false);
          await conn
            .query(`SELECT pg_advisory_unlock(${LOCK_KEY})`, [leaderScope(this.#o.sites)])
            .catch(() => undefined);
          return;
        }
        this.#leading = true;
        took(true);
        this.#o.logger.info({ instance: this.#o.instance }, "this instance leads the singleton duties");
        try {
          await this.#hold(conn);
        } finally {
          this.#leading = false;
          await conn
            .query(`SELECT pg_advisory_unlock(${LOCK_KEY})`, [leaderScope(this.#o.sites)])
            .catch(() => undefined);
        }
      })
      .catch(() => {
        took(false); // no lock now (a failed try, or a lost lead): the next try starts over
        this.#leading = false;
      })
      .finally(() => {
        this.#session = undefined;
        if (!this.#stopped) this.#later(() => void this.#try());
      });
    await taken;
  }

  /**
   * Holds the session, sending nothing, until stop() or until its connection is lost (the lock
   * goes with it on the server): then the lead ends at once and the next try starts over.
   */
  async #hold(conn: SessionConnection): Promise<void> {
    const released = new Promise<void>((resolve) => {
      this.#release = resolve;
    });
    const lost = await Promise.race([released.then(() => undefined), conn.lost ?? new Promise<never>(() => {})]);
    if (lost) {
      this.#o.logger.warn({ instance: this.#o.instance, err: lost.message }, "leadership lost with its connection");
      throw lost;
    }
  }

  #later(fn: () => void): void {
    const timers = this.#o.timers ?? realTimers;
    timers.clearTimeout(this.#timer);
    this.#timer = timers.setTimeout(fn, this.#o.everyMs ?? 5000);
  }
}
