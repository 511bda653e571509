/**
 * Each kiosk's online/offline transitions, for the device page (issue 16).
 * The bridge applies a status to the presence store and only then emits it
 * on the fleet (a stale Will is never emitted), so what is written here is
 * what presence holds. Only transitions are kept: the retained birth the
 * broker hands again at each cloud reconnect, or the same Will heard by two
 * cloud instances, is not a second row.
 */
import type { DeviceAddress, Status } from "@paylane/protocol";
import type { Logger } from "pino";
import type { Queryable } from "../db/database.ts";
import { type FleetLink, PerDeviceQueue } from "./link.ts";

export interface StatusHistoryOptions {
  db: Queryable;
  link: FleetLink;
  logger: Logger;
  now: () => Date;
}

export interface StatusTransition {
  state: "online" | "offline";
  at: string;
  session: number | null;
  version: string | null;
}

export class StatusHistory {
  readonly #o: StatusHistoryOptions;
  readonly #queue: PerDeviceQueue;
  #off: (() => void) | undefined;

  constructor(o: StatusHistoryOptions) {
    this.#o = o;
    this.#queue = new PerDeviceQueue((err) => o.logger.warn({ err: err.message }, "status history write failed"));
  }

  /** Listens to the fleet's applied statuses; before the bridge connects, so the retained births count. */
  attach(): void {
    const onStatus = (device: DeviceAddress, status: Status) => {
      const at = this.#o.now();
      void this.#queue.run(device, () => this.record(device, status, at));
    };
    this.#o.link.fleet.on("status", onStatus);
    this.#off = () => this.#o.link.fleet.off("status", onStatus);
  }

  /** Stops listening and waits for what is queued. */
  async detach(): Promise<void> {
    this.#off?.();
    this.#off = undefined;
    await this.#queue.idle();
  }

  /** Resolves once every status heard so far is written. */
  idle(): Promise<void> {
    return this.#queue.idle();
  }

  /** Writes the status unless the device's newest row already says the same (same state and session). */
  async record(device: DeviceAddress, status: Status, at: Date): Promise<void> {
    const session = status.session ?? null;
    const version = status.state === "online" ? status.version : null;
    await this.#o.db.query(
      `INSERT INTO device_status_history (site_id, device_id, state, at, session, version)
       SELECT $1, $2, $3, $4, $5, $6
       WHERE NOT EXISTS (
         SELECT 1 FROM (
           SELECT state, session FROM device_status_history
           WHERE site_id = $1 AND device_id = $2 ORDER BY at DESC, id DESC LIMIT 1
         ) newest
         WHERE newest.state = $3 AND newest.session IS NOT DISTINCT FROM $5::bigint)
       ON CONFLICT (site_id, device_id, state, session) WHERE session IS NOT NULL DO NOTHING`,
      [device.site, device.device, status.state, at, session, version],
    );
  }
}

/** A device's newest transitions, newest first. */
export async function statusHistory(db: Queryable, device: DeviceAddress, limit: number): Promise<StatusTransition[]> {
  const { rows } = await db.query<{
    state: "online" | "offline";
    at: Date;
    session: string | null;
    version: string | null;
  }>(
    `SELECT state, at, session, version FROM device_status_history
     WHERE site_id = $1 AND device_id = $2 ORDER BY at DESC, id DESC LIMIT $3`,
    [device.site, device.device, limit],
  );
  return rows.map((r) => ({
    state: r.state,
    at: r.at.toISOString(),
    session: r.session === null ? null : Number(r.session),
    version: r.version,
  }));
}
