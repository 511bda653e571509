/**
 * The LiveFeed of one cloud process: one LISTEN on `paylane_live` (see
 * notify.ts and migrations/016_live_notify.sql), each notification of this
 * cloud's schema read back as its REST read shows the row, and handed to
 * every subscriber (the WebSocket route, GraphQL subscriptions) in commit
 * order. With no subscriber nothing is read: an API instance nobody watches
 * costs the database nothing but the notifications.
 *
 * The same connection LISTENs on `paylane_sessions` (accounts/session-endings.ts):
 * a session ended on any instance is forgotten by this one's session cache
 * and its WebSockets at once (`sessions`).
 */
import type { DeviceAddress, LiveEvent } from "@paylane/protocol";
import type { Logger } from "pino";
import { Counter, type Registry as MetricsRegistry } from "prom-client";
import { z } from "zod";
import { SESSIONS_CHANNEL, type SessionRevocations } from "../accounts/session-endings.ts";
import { AlertStore } from "../alerts/store.ts";
import type { Database, Queryable } from "../db/database.ts";
import { readCommand } from "../fleet/commands.ts";
import { LEDGER_COLUMNS, type LedgerEntry, type LedgerRow, toEntry } from "../ledger/ledger.ts";
import { journaledAlertsAt } from "../read-models/alerts.ts";
import { checkinsAt, type StreamPosition } from "../read-models/checkins.ts";
import type { LiveFeed } from "./live-feed.ts";
import { LIVE_CHANNEL, type LiveNotification, LiveNotificationSchema } from "./notify.ts";

const SessionsEndedSchema = z.object({ s: z.string(), sids: z.array(z.string()).nullable() });

/** Notifications waiting to be read back, at most; beyond it they are dropped (and counted). */
const MAX_PENDING = 10_000;
/**
 * Notifications read back together: a kiosk's replayed backlog commits
 * hundreds of check-ins in one statement, and one query for all of them
 * keeps the last one as close to its commit as the first.
 */
const READ_BATCH = 500;
/** A device status announced by several instances' bridges is delivered once within this window. */
const STATUS_REPEAT_MS = 10_000;

export interface DatabaseLiveFeedOptions {
  db: Database;
  logger: Logger;
  metrics: MetricsRegistry;
  now?: () => Date;
}

type Outcome = "delivered" | "other-schema" | "unwatched" | "repeat" | "gone" | "invalid" | "dropped" | "failed";

export class DatabaseLiveFeed implements LiveFeed, SessionRevocations {
  readonly #o: DatabaseLiveFeedOptions;
  readonly #now: () => Date;
  readonly #listeners = new Set<(event: LiveEvent) => void>();
  readonly #notifications: Counter<"outcome">;
  readonly #alerts: AlertStore;
  readonly #recentStatuses = new Map<string, number>();
  #schema: string | undefined;
  #unlisten: (() => Promise<void>) | undefined;
  #unlistenSessions: (() => Promise<void>) | undefined;
  readonly #sessionListeners = new Set<(sids: readonly string[] | null) => void>();
  #hearingSessions = false;
  readonly #queue: LiveNotification[] = [];
  #draining: Promise<void> | undefined;

  constructor(o: DatabaseLiveFeedOptions) {
    this.#o = o;
    this.#now = o.now ?? (() => new Date());
    this.#alerts = new AlertStore(o.db);
    this.#notifications = new Counter({
      name: "paylane_live_notifications_total",
      help: "Live feed notifications heard on Postgres, by what became of them (delivered, unwatched, repeat, dropped, ...)",
      labelNames: ["outcome"],
      registers: [o.metrics],
    });
  }

  async start(): Promise<void> {
    const listen = this.#o.db.listen;
    if (!listen) {
      // A wrapper without LISTEN (a test's or a benchmark's): the cloud serves, its live feed stays quiet.
      this.#o.logger.warn("live feed off: this database cannot LISTEN");
      return;
    }
    const { rows } = await this.#o.db.query<{ schema: string }>("SELECT current_schema() AS schema");
    this.#schema = rows[0]!.schema;
    this.#unlisten = await listen.call(this.#o.db, LIVE_CHANNEL, (payload) => this.#heard(payload), {
      onLost: (err) => this.#o.logger.warn({ err: err.message }, "live feed: lost its LISTEN connection, reconnecting"),
      onReconnected: () =>
        this.#o.logger.warn("live feed: listening again; what was committed while it was away was not delivered"),
    });
    this.#unlistenSessions = await listen.call(
      this.#o.db,
      SESSIONS_CHANNEL,
      (payload) => this.#sessionsEnded(payload),
      {
        // Endings may be missed meanwhile: nothing cached is believed, and nothing is cached until it is back.
        onLost: () => this.#setHearing(false),
        onReconnected: () => this.#setHearing(true),
      },
    );
    this.#setHearing(true);
  }

  /** Sessions ended on any instance (or by paylane-admin), as this instance's session checks hear them. */
  get sessions(): SessionRevocations {
    return this;
  }

  onSessionsEnded(listener: (sids: readonly string[] | null) => void): () => void {
    this.#sessionListeners.add(listener);
    return () => {
      this.#sessionListeners.delete(listener);
    };
  }

  /** Whether this instance hears every session ending now (its LISTEN is up). */
  get hearing(): boolean {
    return this.#hearingSessions;
  }

  #setHearing(hearing: boolean): void {
    this.#hearingSessions = hearing;
    this.#tellSessions(null);
  }

  #sessionsEnded(payload: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(payload);
    } catch {
      return;
    }
    const n = SessionsEndedSchema.safeParse(parsed);
    if (!n.success || n.data.s !== this.#schema) return;
    this.#tellSessions(n.data.sids);
  }

  #tellSessions(sids: readonly string[] | null): void {
    for (const listener of this.#sessionListeners) {
      try {
        listener(sids);
      } catch (err) {
        this.#o.logger.error({ err: (err as Error).message }, "live feed: a session listener threw");
      }
    }
  }

  /** Stops listening; what is being read back still goes out. */
  async stop(): Promise<void> {
    const unlisten = this.#unlisten;
    const unlistenSessions = this.#unlistenSessions;
    this.#unlisten = this.#unlistenSessions = undefined;
    if (this.#hearingSessions) this.#setHearing(false);
    await unlisten?.();
    await unlistenSessions?.();
    await this.#draining;
  }

  subscribe(listener: (event: LiveEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  get subscribers(): number {
    return this.#listeners.size;
  }

  #heard(payload: string): void {
    const n = this.#admit(payload);
    if (typeof n === "string") {
      this.#count(n);
      return;
    }
    if (this.#queue.length >= MAX_PENDING) {
      this.#count("dropped");
      this.#o.logger.warn({ pending: this.#queue.length }, "live feed: too far behind, a notification was dropped");
      return;
    }
    this.#queue.push(n);
    this.#draining ??= this.#drain().finally(() => {
      this.#draining = undefined;
    });
  }

  /** Reads back what is queued, a batch at a time, and hands the events out in commit order. */
  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, READ_BATCH);
      let events: (LiveEvent | null)[];
      try {
        events = await this.#readBatch(this.#o.db, batch);
      } catch (err) {
        this.#notifications.inc({ outcome: "failed" }, batch.length);
        this.#o.logger.warn({ err: (err as Error).message, events: batch.length }, "live feed: reading rows failed");
        continue;
      }
      for (const event of events) {
        this.#count(event ? "delivered" : "gone");
        if (!event) continue;
        for (const listener of this.#listeners) {
          try {
            listener(event);
          } catch (err) {
            this.#o.logger.error({ err: (err as Error).message }, "live feed: a subscriber threw");
          }
        }
      }
    }
  }

  /** The notification to read back, or why not. */
  #admit(payload: string): LiveNotification | Outcome {
    // Before any parsing: an instance nobody watches spends nothing on the ingest's notifications.
    if (this.#listeners.size === 0) return "unwatched";
    let parsed: unknown;
    try {
      parsed = JSON.parse(payload);
    } catch {
      return "invalid";
    }
    const n = LiveNotificationSchema.safeParse(parsed);
    if (!n.success) return "invalid";
    if (n.data.s !== this.#schema) return "other-schema";
    if (n.data.t === "device-status" && this.#repeatedStatus(n.data)) return "repeat";
    return n.data;
  }

  #count(outcome: Outcome): void {
    this.#notifications.inc({ outcome });
  }

  /** Whether another instance's bridge already announced this very status change. */
  #repeatedStatus(n: LiveNotification): boolean {
    const s = n.status!;
    const key = `${n.site}/${n.device}/${s.state}/${s.session ?? ""}/${s.bootedAt ?? ""}`;
    const now = this.#now().getTime();
    for (const [k, at] of this.#recentStatuses) if (now - at > STATUS_REPEAT_MS) this.#recentStatuses.delete(k);
    const seen = this.#recentStatuses.has(key);
    this.#recentStatuses.set(key, now);
    return seen;
  }

  /**
   * The events for a batch, in its order: check-ins, journaled alerts and
   * ledger entries in one query each, the rarer kinds one by one.
   */
  async #readBatch(db: Queryable, batch: LiveNotification[]): Promise<(LiveEvent | null)[]> {
    const streamKey = (site: string, device: string | null | undefined, seq: number | undefined) =>
      `${site}/${device ?? ""}/${seq ?? -1}`;
    const ofType = (t: LiveNotification["t"], journal?: boolean) =>
      batch.filter((n) => n.t === t && (journal === undefined || (n.key === undefined) === journal));
    const checkins = await byPosition(ofType("checkin"), (at) => checkinsAt(db, at));
    const journaled = await byPosition(ofType("alert", true), (at) => journaledAlertsAt(db, at));
    const payments = ofType("payment");
    const entries = new Map<string, LedgerEntry>();
    if (payments.length > 0) {
      const { rows } = await db.query<LedgerRow>(
        `SELECT ${LEDGER_COLUMNS} FROM ledger_entries WHERE id = ANY($1::uuid[])`,
        [payments.map((n) => n.id)],
      );
      for (const r of rows) entries.set(r.id, toEntry(r));
    }
    const events: (LiveEvent | null)[] = [];
    for (const n of batch) {
      const event = (at: string, data: object): LiveEvent => ({
        type: n.t,
        site: n.site,
        device: n.device ?? null,
        at,
        data: data as Record<string, unknown>,
      });
      if (n.t === "checkin") {
        const row = checkins.get(streamKey(n.site, n.device, n.seq));
        events.push(row ? event(row.receivedAt, row) : null);
      } else if (n.t === "alert" && n.key === undefined) {
        const row = journaled.get(streamKey(n.site, n.device, n.seq));
        events.push(row ? event(row.receivedAt, row) : null);
      } else if (n.t === "payment") {
        const entry = entries.get(n.id ?? "");
        events.push(entry ? event(entry.recordedAt, entry) : null);
      } else {
        events.push(await this.#read(db, n));
      }
    }
    return events;
  }

  /** The event for a notification, its row read as the REST read shows it; null: the row is gone. */
  async #read(db: Queryable, n: LiveNotification): Promise<LiveEvent | null> {
    const device = n.device ?? null;
    const event = (at: string, data: object): LiveEvent => ({
      type: n.t,
      site: n.site,
      device,
      at,
      data: data as Record<string, unknown>,
    });
    const address: DeviceAddress = { site: n.site, device: device ?? "" };
    switch (n.t) {
      case "alert": {
        const alert = await this.#alerts.get(n.key ?? "");
        return alert ? event(alert.at, alert) : null;
      }
      case "command-result": {
        const command = await readCommand(db, address, n.id ?? "");
        return command && event(command.updatedAt, command);
      }
      case "device-status": {
        const s = n.status!;
        return event(s.statusAt, { site: n.site, device, ...s });
      }
      default:
        return null; // read in batches (#readBatch)
    }
  }
}

/** Rows read back by stream position, keyed `site/device/seq` as the notifications name them. */
async function byPosition<T extends { site: string; device: string; seq: number }>(
  ns: LiveNotification[],
  read: (at: StreamPosition[]) => Promise<T[]>,
): Promise<Map<string, T>> {
  const rows = await read(ns.map((n) => ({ site: n.site, device: n.device ?? "", seq: n.seq ?? -1 })));
  return new Map(rows.map((r) => [`${r.site}/${r.device}/${r.seq}`, r]));
}
