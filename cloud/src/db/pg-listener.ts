/**
 * LISTEN on a real Postgres: one client of its own (a pooled connection
 * would be handed to other queries and lose its LISTEN), reopened after a cut
 * with a growing pause, listening again on every channel it had.
 */
import pg from "pg";
import type { ListenEvents } from "./database.ts";

/** The pause before reopening, doubling from the first to the last after each failed try. */
const RETRY_FIRST_MS = 100;
const RETRY_MAX_MS = 2000;

export interface PgListenerOptions {
  /**
   * How often the idle connection is asked `SELECT 1` (default 30 s). A
   * LISTEN connection only ever reads, so a peer gone without RST or FIN (a
   * host dying, a partition) would go unnoticed for the OS's keepalive hours:
   * the query failing or timing out (the client's `query_timeout`, default
   * 10 s) counts as a cut.
   */
  heartbeatMs?: number;
}

export class PgListener {
  /** A function: asked again at every (re)open, so the listener follows a failover to another host. */
  readonly #connection: pg.ClientConfig | (() => Promise<pg.ClientConfig>);
  readonly #heartbeatMs: number;
  #heartbeat: NodeJS.Timeout | undefined;
  readonly #channels = new Map<string, Set<{ onPayload: (payload: string) => void; events: ListenEvents }>>();
  #client: pg.Client | undefined;
  #connecting: Promise<pg.Client> | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #retryMs = RETRY_FIRST_MS;
  #closed = false;

  constructor(connection: pg.ClientConfig | (() => Promise<pg.ClientConfig>), o: PgListenerOptions = {}) {
    this.#connection =
      typeof connection === "function"
        ? async () => ({ query_timeout: 10_000, ...(await connection()) })
        : { query_timeout: 10_000, ...connection };
    this.#heartbeatMs = o.heartbeatMs ?? 30_000;
  }

  async listen(channel: string, onPayload: (payload: string) => void, events: ListenEvents = {}) {
    const subscriber = { onPayload, events };
    let set = this.#channels.get(channel);
    const first = !set;
    if (!set) {
      set = new Set();
      this.#channels.set(channel, set);
    }
    set.add(subscriber);
    try {
      const client = await this.#connected();
      if (first) await client.query(`LISTEN ${quoteIdent(channel)}`);
    } catch (err) {
      set.delete(subscriber);
      if (set.size === 0) this.#channels.delete(channel);
      throw err;
    }
    return async () => {
      set.delete(subscriber);
      if (set.size > 0 || this.#channels.get(channel) !== set) return;
      this.#channels.delete(channel);
      if (this.#channels.size === 0) await this.close();
      else await this.#client?.query(`UNLISTEN ${quoteIdent(channel)}`).catch(() => {});
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    clearInterval(this.#heartbeat);
    const client = this.#client;
    this.#client = undefined;
    await client?.end().catch(() => {});
  }

  /** The open client, opening it (and LISTENing on every channel) when there is none. */
  #connected(): Promise<pg.Client> {
    if (this.#client) return Promise.resolve(this.#client);
    this.#closed = false;
    this.#connecting ??= this.#open().finally(() => {
      this.#connecting = undefined;
    });
    return this.#connecting;
  }

  async #open(): Promise<pg.Client> {
    const connection = typeof this.#connection === "function" ? await this.#connection() : this.#connection;
    const client = new pg.Client({ ...connection, keepAlive: true, keepAliveInitialDelayMillis: 10_000 });
    let lost = false;
    const onLost = (err: Error) => {
      if (lost) return;
      lost = true;
      clearInterval(this.#heartbeat);
      if (this.#client === client) this.#client = undefined;
      client.end().catch(() => {});
      if (this.#closed) return;
      for (const set of this.#channels.values()) for (const s of set) s.events.onLost?.(err);
      this.#scheduleReopen();
    };
    client.on("error", onLost);
    client.on("end", () => onLost(new Error("the listening connection ended")));
    client.on("notification", (n) => {
      for (const s of this.#channels.get(n.channel) ?? []) {
        try {
          s.onPayload(n.payload ?? "");
        } catch {
          // a subscriber's failure is its own; the others still get the notification
        }
      }
    });
    try {
      await client.connect();
      for (const channel of this.#channels.keys()) await client.query(`LISTEN ${quoteIdent(channel)}`);
    } catch (err) {
      lost = true; // the caller retries or fails; no second reopen from the events
      await client.end().catch(() => {});
      throw err;
    }
    if (this.#closed) {
      // Closed while this connection was opening: close() could not end it, so it is ended here
      // (kept, it and its heartbeat would hold the process open).
      lost = true;
      await client.end().catch(() => {});
      throw new Error("the listener was closed while connecting");
    }
    this.#client = client;
    this.#retryMs = RETRY_FIRST_MS;
    clearInterval(this.#heartbeat);
    // Real time: it watches a connection over the network, as pg's own timeouts do.
    this.#heartbeat = setInterval(() => {
      client
        .query("SELECT 1")
        .catch((err: Error) => onLost(new Error(`the listening connection is not answering: ${err.message}`)));
    }, this.#heartbeatMs);
    return client;
  }

  #scheduleReopen(): void {
    clearTimeout(this.#retryTimer);
    // Real time: it paces reconnection to a database over the network, as pg's own timeouts do.
    this.#retryTimer = setTimeout(() => {
      if (this.#closed || this.#channels.size === 0) return;
      this.#connected().then(
        () => {
          for (const set of this.#channels.values()) for (const s of set) s.events.onReconnected?.();
        },
        () => {
          // Closed while reopening: no further try (its timer would hold the stopped process).
          if (this.#closed) return;
          this.#retryMs = Math.min(this.#retryMs * 2, RETRY_MAX_MS);
          this.#scheduleReopen();
        },
      );
    }, this.#retryMs);
  }
}

/** A channel name as an SQL identifier (LISTEN takes no parameters). */
function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
