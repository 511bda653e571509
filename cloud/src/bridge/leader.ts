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
 * writes it down and notifies.
 *
 * The lead is a lease: the leader pings its lock session and gives the lead
 * up when a ping fails or does not answer in time, which is always before the
 * server can free the lock after a silent network cut (LEASE). So two
 * instances do not both believe they lead (short of a process frozen for
 * longer than the lease's margin: its timers cannot fire); a handover may
 * still miss the one change that happened during it (nobody leads meanwhile).
 *
 * Deployments owning different sites (CLOUD_SITES) on one schema each have a
 * lock of their own; two that own a site in common would both lead it, so an
 * instance does not take its lock while an overlapping deployment's leader
 * holds its own (one error line, paylane_cloud_overlapping_sites). Which one
 * leads can change at a handover (whoever tries first in the gap). Not a
 * refusal to start: a rolling update that changes CLOUD_SITES has its new pods
 * beside the old ones, and must not crash-loop.
 *
 * PGlite (npm start) is one process: its one instance leads.
 */
import { realTimers, type Timers } from "@paylane/protocol";
import type { Logger } from "pino";
import type { Registry as MetricsRegistry } from "prom-client";
import type { Database, Queryable, SessionConnection } from "../db/database.ts";
import { registeredGauge } from "../metrics/registered.ts";

/**
 * The advisory lock's key of a site scope (an SQL text expression), per schema (advisory locks are
 * database-wide, and several clouds may share a database in schemas of their own) and per site scope
 * (deployments owning different CLOUD_SITES on one database each need a leader of their own): fixed,
 * so every version agrees.
 */
const lockKey = (scope: string) => `hashtext('paylane-leader:' || current_schema() || ':' || ${scope})`;
const LOCK_KEY = lockKey("$1::text");

/**
 * The leader's lease on its lock session. The server frees a silent session's lock after its TCP
 * keepalive gives up: 10 s idle, then 3 probes 5 s apart, so 25 s after the last packet it received
 * from the leader (the SETs in #try; later if it still has unacknowledged data to resend). The
 * leader pings every `pingEveryMs` and gives the lead up when a ping has not answered after
 * `answerMs`: at most 5 + 5 = 10 s after the last answered ping, which the server received before
 * it answered, so the lead ends at least 15 s before the lock can go to another instance. The
 * pings also keep the healthy session from ever going idle long enough to be probed.
 */
export const LEASE = { pingEveryMs: 5000, answerMs: 5000, serverReleaseMs: 10_000 + 3 * 5000 } as const;

/** The lock's site scope: the sorted CLOUD_SITES, or `*` for every site. */
export function leaderScope(sites: readonly string[] | undefined): string {
  return sites && sites.length > 0 ? [...sites].sort().join(",") : "*";
}

/** The sites two scopes both lead (`*` leads every site); empty when they are disjoint or the same scope. */
export function sharedSites(mine: string, theirs: string): string[] {
  if (mine === theirs) return [];
  if (mine === "*") return theirs.split(",");
  if (theirs === "*") return mine.split(",");
  const their = new Set(theirs.split(","));
  return mine.split(",").filter((s) => their.has(s));
}

/** A scope as its operator wrote it. */
function describeScope(scope: string): string {
  return scope === "*" ? "CLOUD_SITES unset (every site)" : `CLOUD_SITES=${scope}`;
}

/** A running deployment on the same schema whose sites overlap this one's. */
export interface Overlap {
  scope: string;
  /** The sites both would lead. */
  sites: string[];
}

/** The one line that names both deployments' CLOUD_SITES and what to do. */
export function overlapLine(mine: string, overlaps: readonly Overlap[], schema: string): string {
  const sites = [...new Set(overlaps.flatMap((o) => o.sites))].sort();
  const others = overlaps.map((o) => describeScope(o.scope)).join(" and ");
  return (
    `${describeScope(mine)} overlaps ${others} of another deployment running on schema ${schema} ` +
    `(${sites.length === 1 ? "site" : "sites"} ${sites.join(", ")}): the one whose leader holds its lock leads them, ` +
    "the other none of its sites meanwhile; give every site to exactly one deployment (a rolling update that " +
    "changes CLOUD_SITES passes through this until its old pods are gone)"
  );
}

export interface LeaderOptions {
  db: Database;
  logger: Logger;
  /** This instance's name (CLOUD_INSTANCE), for the logs. */
  instance: string;
  /** The lease's timers as well as the tries' (a fake clock in tests). */
  timers?: Timers;
  /** How often a follower tries to take the lock (ms). */
  everyMs?: number;
  /** Whether this instance may lead at all (CLOUD_ROLE api does not). */
  eligible?: boolean;
  /** The sites whose duties it leads (CLOUD_SITES; default every site). */
  sites?: readonly string[];
  /** Where paylane_cloud_overlapping_sites is registered. */
  metrics?: MetricsRegistry;
}

export class Leader {
  readonly #o: LeaderOptions;
  readonly #scope: string;
  #leading = false;
  #stopped = true;
  #release: (() => void) | undefined;
  #session: Promise<void> | undefined;
  #timer: unknown;
  /** This scope is recorded in leader_scopes (once per start). */
  #registered = false;
  /** The running overlapping deployments' scopes last reported, and how many sites they share with this one. */
  #overlapsSeen = "";
  #overlappingSites = 0;

  constructor(o: LeaderOptions) {
    this.#o = o;
    this.#scope = leaderScope(o.sites);
  }

  /** Whether this instance holds the lock now. */
  get leading(): boolean {
    return this.#leading;
  }

  /** The duties' guard: `() => leader.leading`. */
  readonly isLeader = (): boolean => this.#leading;

  get #timers(): Timers {
    return this.#o.timers ?? realTimers;
  }

  /** Takes the lead if it is free and no running deployment on the schema owns some of this one's sites. */
  async start(): Promise<void> {
    this.#stopped = false;
    this.#registered = false;
    const leader = this;
    if (this.#o.metrics) {
      registeredGauge(this.#o.metrics, {
        name: "paylane_cloud_overlapping_sites",
        help: "Sites of this deployment (CLOUD_SITES) that another running deployment on the same database schema also owns (0 when none); while above 0 the deployment that started later does not lead",
        collect() {
          this.set(leader.#overlappingSites);
        },
      });
    }
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
    this.#timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#release?.();
    await this.#session;
    this.#leading = false;
  }

  /**
   * One try: record this scope, look for an overlapping one that runs (then leave the lead to it),
   * take the lock and hold its session while it answers; or try again later. Resolves when the try
   * is decided.
   */
  async #try(): Promise<void> {
    if (this.#stopped || this.#session) return;
    let decided!: () => void;
    const taken = new Promise<void>((resolve) => {
      decided = resolve;
    });
    const scope = [this.#scope];
    this.#session = this.#o.db
      .session(async (conn) => {
        // A leader whose host vanishes (no FIN, no RST) must not hold the lock for the kernel's two
        // hours of TCP keepalive: the server probes this session's socket after 10 s idle instead.
        // Each statement of a try has the lease's time to answer: a try on a silent connection gives
        // up (its connection dropped) instead of holding the next one back until pg's query timeout.
        await this.#inTime(
          conn
            .query("SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3")
            .catch(() => undefined),
          "the keepalive settings",
        );
        if (!this.#registered) {
          await this.#inTime(
            conn.query(
              "INSERT INTO leader_scopes (scope) VALUES ($1) ON CONFLICT (scope) DO UPDATE SET last_started_at = now()",
              scope,
            ),
            "recording the site scope",
          );
          this.#registered = true;
        }
        const overlap = await this.#findOverlaps(conn);
        this.#report(overlap);
        if (overlap) {
          decided(); // the deployment whose leader holds its lock leads the shared sites; this one tries again later
          return;
        }
        const { rows } = await this.#inTime(
          conn.query<{ ok: boolean }>(`SELECT pg_try_advisory_lock(${LOCK_KEY}) AS ok`, scope),
          "the lock",
        );
        if (!rows[0]?.ok) {
          decided();
          return;
        }
        if (this.#stopped) {
          // stop() came while the lock was being asked for: its release call found no hold to end.
          decided();
          await this.#inTime(conn.query(`SELECT pg_advisory_unlock(${LOCK_KEY})`, scope), "the unlock");
          return;
        }
        this.#leading = true;
        decided();
        this.#o.logger.info({ instance: this.#o.instance }, "this instance leads the singleton duties");
        // Throws when the lease is lost: the session's connection is then destroyed, and the server
        // frees the lock when it notices (at once, or by its keepalive when the network is silent).
        await this.#hold(conn);
        this.#leading = false;
        // In time, or stop() would wait on a silently cut connection until TCP gives up: a rejection
        // drops the connection, and the server frees the lock with its session.
        await this.#inTime(conn.query(`SELECT pg_advisory_unlock(${LOCK_KEY})`, scope), "the unlock");
      })
      .catch(() => {
        decided(); // no lock now (a failed try, or a lost lead): the next try starts over
        this.#leading = false;
      })
      .finally(() => {
        this.#session = undefined;
        if (!this.#stopped) this.#later(() => void this.#try());
      });
    return taken;
  }

  /**
   * Holds the session until stop(), pinging it every LEASE.pingEveryMs. A ping that fails or has
   * not answered after LEASE.answerMs, or the connection lost, ends the lead at once (before the
   * server can give the lock to another instance) and rejects: the session's connection is then
   * dropped, not reused.
   */
  #hold(conn: SessionConnection): Promise<void> {
    const timers = this.#timers;
    return new Promise<void>((resolve, reject) => {
      let timer: unknown;
      let over = false;
      const end = (lost?: Error) => {
        if (over) return;
        over = true;
        timers.clearTimeout(timer);
        this.#release = undefined;
        if (!lost) {
          resolve();
          return;
        }
        // Here, not when the rejection is handled: a duty asking right after this sees the lead gone.
        this.#leading = false;
        this.#o.logger.warn(
          { instance: this.#o.instance, err: lost.message },
          "this instance no longer leads the singleton duties",
        );
        reject(lost);
      };
      const ping = () => {
        timer = timers.setTimeout(
          () => end(new Error(`a ping of the lock session had no answer within ${LEASE.answerMs} ms`)),
          LEASE.answerMs,
        );
        conn.query("SELECT 1").then(
          () => {
            if (over) return;
            timers.clearTimeout(timer);
            timer = timers.setTimeout(ping, LEASE.pingEveryMs);
            // Two overlapping deployments that started at the same moment both took their locks: each
            // sees the other here (on another connection: the lock session carries the pings alone), and
            // the one whose scope sorts later gives its lead up, so one leads the shared sites.
            void this.#findOverlaps(this.#o.db).then(
              (overlap) => {
                this.#report(overlap);
                if (overlap?.scopes.some((other) => other < this.#scope)) end();
              },
              () => undefined,
            );
          },
          (err: Error) => end(new Error(`a ping of the lock session failed: ${err.message}`)),
        );
      };
      this.#release = () => end();
      void conn.lost?.then((err) => end(new Error(`the lock session's connection was lost: ${err.message}`)));
      timer = timers.setTimeout(ping, LEASE.pingEveryMs);
    });
  }

  /**
   * The running deployments on this schema whose sites overlap this one's (noted in the gauge), and
   * the line naming them; undefined when there are none. A deployment runs while its leader holds
   * its lock: taking that lock for one statement (released at the statement's end) fails then.
   * Shared, so two instances checking one scope at the same moment do not take each other's check
   * for a running leader (an exclusive one would fail for the second: a healthy leader let go).
   */
  async #findOverlaps(q: Queryable): Promise<{ line: string; scopes: string[] } | undefined> {
    const { rows } = await this.#inTime(
      q.query<{ scope: string }>("SELECT scope FROM leader_scopes WHERE scope <> $1", [this.#scope]),
      "the site scopes",
    );
    // Only overlapping scopes' locks are taken: a disjoint deployment's next try is never disturbed.
    const candidates = rows.map((r) => r.scope).filter((s) => sharedSites(this.#scope, s).length > 0);
    if (candidates.length === 0) {
      this.#overlappingSites = 0;
      return undefined;
    }
    const running = await this.#inTime(
      q.query<{ scope: string; schema: string }>(
        `SELECT s.scope, current_schema() AS schema FROM unnest($1::text[]) AS s(scope)
         WHERE NOT pg_try_advisory_xact_lock_shared(${lockKey("s.scope")})`,
        [candidates],
      ),
      "the overlapping scopes' locks",
    );
    const overlaps = running.rows.map((r) => ({ scope: r.scope, sites: sharedSites(this.#scope, r.scope) }));
    this.#overlappingSites = new Set(overlaps.flatMap((o) => o.sites)).size;
    if (overlaps.length === 0) return undefined;
    return {
      line: overlapLine(this.#scope, overlaps, running.rows[0]!.schema),
      scopes: overlaps.map((o) => o.scope).sort(),
    };
  }

  /** Logs the overlap found while running when it changes: an error naming both, or that it ended. */
  #report(overlap: { line: string; scopes: string[] } | undefined): void {
    const seen = overlap?.scopes.join(" ") ?? "";
    if (seen === this.#overlapsSeen) return;
    this.#overlapsSeen = seen;
    const fields = { instance: this.#o.instance, sites: this.#scope, others: overlap?.scopes ?? [] };
    if (overlap) this.#o.logger.error(fields, overlap.line);
    else this.#o.logger.info(fields, "no other running deployment leads this deployment's sites any more");
  }

  /** `p`, or a rejection once LEASE.answerMs passed on this leader's timers. */
  #inTime<T>(p: Promise<T>, what: string): Promise<T> {
    const timers = this.#timers;
    return new Promise<T>((resolve, reject) => {
      const timer = timers.setTimeout(
        () => reject(new Error(`${what}: no answer within ${LEASE.answerMs} ms`)),
        LEASE.answerMs,
      );
      p.then(
        (v) => {
          timers.clearTimeout(timer);
          resolve(v);
        },
        (err: unknown) => {
          timers.clearTimeout(timer);
          reject(err);
        },
      );
    });
  }

  #later(fn: () => void): void {
    const timers = this.#timers;
    timers.clearTimeout(this.#timer);
    this.#timer = timers.setTimeout(fn, this.#o.everyMs ?? 5000);
  }
}
