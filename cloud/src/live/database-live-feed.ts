/**
 * The LiveFeed of one cloud process: one LISTEN on `paylane_live` (see
 * notify.ts and migrations/016_live_notify.sql), each notification of this
 * cloud's schema read back as its REST read shows the row, and handed to
 * every subscriber (the WebSocket route, GraphQL subscriptions) in commit
 * order. With no subscriber nothing is read: an API instance nobody watches
 * costs the database nothing but the notifications.
 */
import type { DeviceAddress, LiveEvent } from "@paylane/protocol";
import type { Logger } from "pino";
import { Counter, type Registry as MetricsRegistry } from "prom-client";
import { AlertStore } from "../alerts/store.ts";
import type { Database, Queryable } from "../db/database.ts";
import { readCommand } from "../fleet/commands.ts";
import { LEDGER_COLUMNS, type LedgerRow, toEntry } from "../ledger/ledger.ts";
import type { JournaledAlert } from "../read-models/alerts.ts";
import type { CheckinView } from "../read-models/checkins.ts";
import type { LiveFeed } from "./live-feed.ts";
import { LIVE_CHANNEL, type LiveNotification, LiveNotificationSchema } from "./notify.ts";

/** Notifications waiting to be read back, at most; beyond it they are dropped (and counted). */
const MAX_PENDING = 10_000;
/** A device status announced by several instances' bridges is delivered once within this window. */
const STATUS_REPEAT_MS = 10_000;

export interface DatabaseLiveFeedOptions {
  db: Database;
  logger: Logger;
  metrics: MetricsRegistry;
  now?: () => Date;
}

type Outcome = "delivered" | "other-schema" | "unwatched" | "repeat" | "gone" | "invalid" | "dropped" | "failed";

export class DatabaseLiveFeed implements LiveFeed {
  readonly #o: DatabaseLiveFeedOptions;
  readonly #now: () => Date;
  readonly #listeners = new Set<(event: LiveEvent) => void>();
  readonly #notifications: Counter<"outcome">;
  readonly #alerts: AlertStore;
  readonly #recentStatuses = new Map<string, number>();
  #schema: string | undefined;
  #unlisten: (() => Promise<void>) | undefined;
  #chain: Promise<void> = Promise.resolve();
  #pending = 0;

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
  }

  /** Stops listening; what is being read back still goes out. */
  async stop(): Promise<void> {
    const unlisten = this.#unlisten;
    this.#unlisten = undefined;
    await unlisten?.();
    await this.#chain;
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
    if (this.#pending >= MAX_PENDING) {
      this.#count("dropped");
      this.#o.logger.warn({ pending: this.#pending }, "live feed: too far behind, a notification was dropped");
      return;
    }
    this.#pending++;
    // One at a time: events go out in the order they were committed.
    this.#chain = this.#chain.then(async () => {
      try {
        const event = await this.#read(this.#o.db, n);
        this.#count(event ? "delivered" : "gone");
        if (!event) return;
        for (const listener of this.#listeners) {
          try {
            listener(event);
          } catch (err) {
            this.#o.logger.error({ err: (err as Error).message }, "live feed: a subscriber threw");
          }
        }
      } catch (err) {
        this.#count("failed");
        this.#o.logger.warn({ err: (err as Error).message, type: n.t }, "live feed: reading a row failed");
      } finally {
        this.#pending--;
      }
    });
  }

  /** The notification to read back, or why not. */
  #admit(payload: string): LiveNotification | Outcome {
    let parsed: unknown;
    try {
      parsed = JSON.parse(payload);
    } catch {
      return "invalid";
    }
    const n = LiveNotificationSchema.safeParse(parsed);
    if (!n.success) return "invalid";
    if (n.data.s !== this.#schema) return "other-schema";
    if (this.#listeners.size === 0) return "unwatched";
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
      case "checkin": {
        const row = await readCheckin(db, address, n.seq ?? -1);
        return row && event(row.receivedAt, row);
      }
      case "alert": {
        if (n.key !== undefined) {
          const alert = await this.#alerts.get(n.key);
          return alert ? event(alert.at, alert) : null;
        }
        const row = await readJournaledAlert(db, address, n.seq ?? -1);
        return row && event(row.receivedAt, row);
      }
      case "payment": {
        const { rows } = await db.query<LedgerRow>(`SELECT ${LEDGER_COLUMNS} FROM ledger_entries WHERE id = $1`, [
          n.id,
        ]);
        const entry = rows[0] && toEntry(rows[0]);
        return entry ? event(entry.recordedAt, entry) : null;
      }
      case "command-result": {
        const command = await readCommand(db, address, n.id ?? "");
        return command && event(command.updatedAt, command);
      }
      case "device-status": {
        const s = n.status!;
        return event(s.statusAt, { site: n.site, device, ...s });
      }
    }
  }
}

/** One check-in by its stream position, as `GET /api/v1/checkins` shows it (read-models/checkins.ts). */
async function readCheckin(db: Queryable, d: DeviceAddress, seq: number): Promise<CheckinView | null> {
  const { rows } = await db.query<{
    id: string;
    member_id: string;
    member_name: string | null;
    credential_type: string;
    at: Date;
    received_at: Date;
    offline: boolean;
    replica_version: number;
  }>(
    `SELECT c.id, c.member_id, m.name AS member_name, c.credential_type, c.at, c.received_at, c.offline,
            c.replica_version
     FROM checkins c LEFT JOIN members m ON m.site_id = c.site_id AND m.id = c.member_id
     WHERE c.site_id = $1 AND c.device_id = $2 AND c.seq = $3`,
    [d.site, d.device, seq],
  );
  const r = rows[0];
  if (!r) return null;
  return {
    id: r.id,
    site: d.site,
    device: d.device,
    seq,
    memberId: r.member_id,
    memberName: r.member_name,
    credential: r.credential_type,
    at: r.at.toISOString(),
    receivedAt: r.received_at.toISOString(),
    offline: r.offline,
    replicaVersion: r.replica_version,
  };
}

/** One journaled alert (a staff call, a journal recovery), as `GET /api/v1/alerts` shows it. */
async function readJournaledAlert(db: Queryable, d: DeviceAddress, seq: number): Promise<JournaledAlert | null> {
  const { rows } = await db.query<{
    id: string;
    kind: string;
    detail: Record<string, unknown>;
    at: Date;
    received_at: Date;
  }>(`SELECT id, kind, detail, at, received_at FROM alerts WHERE site_id = $1 AND device_id = $2 AND seq = $3`, [
    d.site,
    d.device,
    seq,
  ]);
  const r = rows[0];
  if (!r) return null;
  return {
    id: r.id,
    kind: r.kind,
    site: d.site,
    device: d.device,
    seq,
    detail: r.detail,
    at: r.at.toISOString(),
    receivedAt: r.received_at.toISOString(),
  };
}
