/**
 * Commands to kiosks, with results and an audit (issue 14, "Commands with
 * results"). The cloud sends `cmd/{name}` (QoS 1, with an id, an expiry and
 * who asked) and records in `device_commands` every command seen on the
 * broker, its own and those an operator's tool (`paylane-ops`) published
 * directly. The device's `cmd-result` moves a row on: accepted, then done /
 * failed / expired.
 *
 * Offline delivery: a device's birth makes the cloud republish the commands
 * still pending for it, unless expired (those are marked expired instead).
 * The kiosk remembers the ids it answered, so a command delivered twice runs
 * once. A command whose expiry passes with no final answer is closed by the
 * sweep: `expired` when the device never had it or never started it (a
 * device refuses a command past its expiry, so it can no longer run),
 * `timeout` when it was delivered to an online device, or accepted, and no
 * final answer came (what happened is unknown).
 */
import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import {
  type Command,
  type CommandResult,
  CommandSchema,
  type DeviceAddress,
  encode,
  realTimers,
  type Status,
  type Timers,
  topics,
} from "@paylane/protocol";
import type { Logger } from "pino";
import { Counter, type Registry as MetricsRegistry } from "prom-client";
import type { Database, Queryable } from "../db/database.ts";
import { deviceKey, type FleetLink, PerDeviceQueue } from "./link.ts";

export const COMMAND_ROW_STATUSES = ["pending", "accepted", "done", "failed", "expired", "timeout"] as const;
export type CommandRowStatus = (typeof COMMAND_ROW_STATUSES)[number];
/** Nothing more is expected of the device (a late answer still replaces `timeout` or an inferred `expired`). */
export const isSettled = (s: CommandRowStatus) => s !== "pending" && s !== "accepted";

/** A command with no expiry (an operator's tool may send one) is redelivered and awaited this long. */
export const NO_EXPIRY_HORIZON_S = 86_400;
/** Past its expiry, how long the cloud still waits for an answer in flight before it closes a command. */
export const EXPIRY_GRACE_S = 30;
const SWEEP_EVERY_MS = 15_000;
/** Kiosks whose births are looked up in one query. */
const BIRTH_BATCH = 1000;

/** One row of the audit, as the API shows it. */
export interface CommandRecord {
  id: string;
  site: string;
  device: string;
  command: string;
  args: Record<string, unknown>;
  requestedBy: string | null;
  requestedAt: string;
  expiresAt: string | null;
  status: CommandRowStatus;
  result: unknown;
  reason: string | null;
  deliveredAt: string | null;
  answeredAt: string | null;
  updatedAt: string;
}

interface Row {
  site_id: string;
  device_id: string;
  id: string;
  name: string;
  args: Record<string, unknown>;
  requested_by: string | null;
  requested_at: Date;
  expires_at: Date | null;
  status: CommandRowStatus;
  result: unknown;
  reason: string | null;
  delivered_at: Date | null;
  answered_at: Date | null;
  updated_at: Date;
}

const COLUMNS = `site_id, device_id, id, name, args, requested_by, requested_at, expires_at, status, result, reason,
  delivered_at, answered_at, updated_at`;
/** The instant past which a command can no longer run (its expiry, or the horizon of one without). */
const HORIZON = `coalesce(expires_at, requested_at + interval '${NO_EXPIRY_HORIZON_S} seconds')`;

const iso = (d: Date | null) => d?.toISOString() ?? null;

function record(r: Row): CommandRecord {
  return {
    id: r.id,
    site: r.site_id,
    device: r.device_id,
    command: r.name,
    args: r.args,
    requestedBy: r.requested_by,
    requestedAt: r.requested_at.toISOString(),
    expiresAt: iso(r.expires_at),
    status: r.status,
    result: r.result ?? null,
    reason: r.reason,
    deliveredAt: iso(r.delivered_at),
    answeredAt: iso(r.answered_at),
    updatedAt: r.updated_at.toISOString(),
  };
}

export interface CommandDeskOptions {
  db: Database;
  link: FleetLink;
  logger: Logger;
  now: () => Date;
  /** Drives the periodic sweep (tests may inject theirs). */
  timers?: Timers;
  sweepEveryMs?: number;
  /** Where `paylane_commands_settled_total` is registered (none: not counted). */
  metrics?: MetricsRegistry;
  /**
   * Whether this instance runs the sweep and redelivers pending commands on births (default
   * always). Every instance hears every birth; only the leader (bridge/leader.ts) acts on it, so a
   * kiosk is not sent each pending command once per instance.
   */
  leads?: () => boolean;
}

export interface SendCommand extends DeviceAddress {
  name: string;
  args: Record<string, unknown>;
  /** Seconds from now; the device answers `expired` past it and does nothing. */
  expiresInSeconds: number;
  /** Who asked (the operator token's sub). */
  by: string;
}

export class CommandDesk {
  /** Every change to a row of the audit, after it is written (a live view, tests). */
  readonly changes = new EventEmitter<{ change: [command: CommandRecord] }>();
  readonly #o: CommandDeskOptions;
  readonly #queue: PerDeviceQueue;
  /** Devices whose last status was a birth: a command published to them now is delivered. */
  readonly #online = new Set<string>();
  /** Each device's session counter of its last birth: a Will of an older session does not take it offline. */
  readonly #sessions = new Map<string, number>();
  /** Births waiting for their pending commands to be published again. */
  readonly #births = new Map<string, DeviceAddress>();
  #redelivering: Promise<void> | undefined;
  /** `site/device/id` → wake-ups of requests waiting for that command to settle. */
  readonly #waiters = new Map<string, Set<() => void>>();
  readonly #listeners: Array<() => void> = [];
  /** The waits of requests in progress (a stop answers them before the database closes). */
  readonly #waits = new Set<Promise<unknown>>();
  #sweepTimer: unknown;
  readonly #settledTotal: Counter<"status"> | undefined;
  #sweeping: Promise<unknown> = Promise.resolve();

  constructor(o: CommandDeskOptions) {
    this.#o = o;
    this.#queue = new PerDeviceQueue((err) => o.logger.error({ err: err.message }, "command audit write failed"));
    this.#settledTotal = o.metrics
      ? new Counter({
          name: "paylane_commands_settled_total",
          help: "Commands settled, by status (done, failed, expired, timeout); a timeout the kiosk answers later counts again",
          labelNames: ["status"],
          registers: [o.metrics],
        })
      : undefined;
  }

  /** Listens to the fleet; call before the bridge connects, so the retained births are heard. */
  attach(): void {
    const { fleet } = this.#o.link;
    const on = <K extends "status" | "command" | "cmd-result">(event: K, fn: (...a: never[]) => void) => {
      fleet.on(event, fn as never);
      this.#listeners.push(() => fleet.off(event, fn as never));
    };
    on("status", (device: DeviceAddress, status: Status) => this.#onStatus(device, status));
    on(
      "command",
      (device: DeviceAddress, name: string, command: Command) =>
        void this.#queue.run(device, () => this.#record(device, name, command)),
    );
    on(
      "cmd-result",
      (device: DeviceAddress, result: CommandResult) =>
        void this.#queue.run(device, () => this.#onResult(device, result)),
    );
    this.#scheduleSweep();
  }

  /** Stops listening and sweeping; waits for the writes already queued. */
  async detach(): Promise<void> {
    for (const off of this.#listeners.splice(0)) off();
    (this.#o.timers ?? realTimers).clearTimeout(this.#sweepTimer);
    this.#sweepTimer = undefined;
    // Requests still waiting for a result answer now, with where their command stands.
    for (const set of this.#waiters.values()) for (const wake of set) wake();
    await Promise.allSettled(this.#waits);
    await this.#queue.idle();
    await this.#redelivering;
    await this.#sweeping.catch(() => {});
  }

  /** Records the command, then publishes it. A publish that fails leaves it pending: the device's next birth delivers it. */
  async send(c: SendCommand): Promise<CommandRecord> {
    const now = this.#o.now();
    const id = randomUUID();
    const expiresAt = new Date(now.getTime() + c.expiresInSeconds * 1000);
    const { rows } = await this.#o.db.query<Row>(
      `INSERT INTO device_commands (site_id, device_id, id, name, args, requested_by, requested_at, expires_at, status, updated_at)
       VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, 'pending', $7) RETURNING ${COLUMNS}`,
      [c.site, c.device, id, c.name, JSON.stringify(c.args), c.by, now, expiresAt],
    );
    const command: Command = { id, args: c.args, expiresAt: expiresAt.toISOString(), by: c.by };
    try {
      const online = this.#online.has(deviceKey(c));
      await this.#o.link.publish(topics.cmd(c, c.name), encode(CommandSchema, command), { qos: 1 });
      if (online) return (await this.#markDelivered(c, [id])) ?? record(rows[0]!);
    } catch (err) {
      this.#o.logger.warn(
        { site: c.site, device: c.device, command: c.name, id, err: (err as Error).message },
        "command not published now; it is sent again when the device comes online",
      );
    }
    return record(rows[0]!);
  }

  /**
   * The command once it settles (done, failed, expired, timeout), or as it
   * stands when `ms` have passed; null if there is no such command.
   */
  waitSettled(device: DeviceAddress, id: string, ms: number): Promise<CommandRecord | null> {
    const wait = this.#waitSettled(device, id, ms);
    this.#waits.add(wait);
    void wait.finally(() => this.#waits.delete(wait)).catch(() => {});
    return wait;
  }

  async #waitSettled(device: DeviceAddress, id: string, ms: number): Promise<CommandRecord | null> {
    const key = `${deviceKey(device)}/${id}`;
    let wake: () => void = () => {};
    const woken = new Promise<void>((resolve) => {
      wake = resolve;
    });
    const set = this.#waiters.get(key) ?? new Set();
    set.add(wake);
    this.#waiters.set(key, set);
    // Real time: this bounds an HTTP request's wait, as the network's own timeouts do.
    const timer = setTimeout(wake, ms);
    try {
      // Registered before the first read, so a result landing between the two is not missed.
      const first = await this.get(device, id);
      if (!first || isSettled(first.status) || ms <= 0) return first;
      await woken;
      return await this.get(device, id);
    } finally {
      clearTimeout(timer);
      set.delete(wake);
      if (set.size === 0) this.#waiters.delete(key);
    }
  }

  get(device: DeviceAddress, id: string): Promise<CommandRecord | null> {
    return readCommand(this.#o.db, device, id);
  }

  /** A device's audit, newest first; commands past their expiry are closed first, so none shows pending forever. */
  async list(
    device: DeviceAddress,
    o: { limit: number; before?: { requestedAt: string; id: string } },
  ): Promise<CommandRecord[]> {
    await this.sweep(device);
    const { rows } = await this.#o.db.query<Row>(
      `SELECT ${COLUMNS} FROM device_commands
       WHERE site_id = $1 AND device_id = $2
         AND ($3::timestamptz IS NULL OR (requested_at, id) < ($3::timestamptz, $4::text))
       ORDER BY requested_at DESC, id DESC LIMIT $5`,
      [device.site, device.device, o.before?.requestedAt ?? null, o.before?.id ?? null, o.limit],
    );
    return rows.map(record);
  }

  /**
   * Closes the commands whose expiry (plus a grace for answers in flight)
   * has passed with no final answer: expired if never delivered or never
   * started, timeout if delivered or accepted. Returns how many.
   */
  async sweep(device?: DeviceAddress): Promise<number> {
    const now = this.#o.now();
    const { rows } = await this.#o.db.query<Row>(
      `UPDATE device_commands SET
         status = CASE WHEN status = 'accepted' OR delivered_at IS NOT NULL THEN 'timeout' ELSE 'expired' END,
         reason = CASE
           WHEN status = 'accepted' THEN 'the device started it but sent no result before it expired; its outcome is unknown'
           WHEN delivered_at IS NOT NULL THEN 'delivered to the device, which did not answer before it expired'
           ELSE 'the device was not online before it expired: never delivered, never run' END,
         updated_at = $1
       WHERE status IN ('pending', 'accepted') AND ${HORIZON} + interval '${EXPIRY_GRACE_S} seconds' <= $1
         AND ($2::text IS NULL OR (site_id = $2 AND device_id = $3))
       RETURNING ${COLUMNS}`,
      [now, device?.site ?? null, device?.device ?? null],
    );
    for (const r of rows) this.#settled(r);
    return rows.length;
  }

  #scheduleSweep(): void {
    const timers = this.#o.timers ?? realTimers;
    this.#sweepTimer = timers.setTimeout(() => {
      const leads = this.#o.leads?.() ?? true;
      this.#sweeping = (leads ? this.sweep() : Promise.resolve(0))
        .catch((err: Error) => this.#o.logger.warn({ err: err.message }, "command sweep failed"))
        .finally(() => {
          if (this.#sweepTimer !== undefined) this.#scheduleSweep();
        });
    }, this.#o.sweepEveryMs ?? SWEEP_EVERY_MS);
    (this.#sweepTimer as { unref?: () => void }).unref?.();
  }

  #onStatus(device: DeviceAddress, status: Status): void {
    const key = deviceKey(device);
    if (status.state !== "online") {
      const current = this.#sessions.get(key);
      if (status.session !== undefined && current !== undefined && status.session < current) return;
      this.#online.delete(key);
      return;
    }
    if (status.session !== undefined) this.#sessions.set(key, status.session);
    this.#online.add(key);
    if (this.#o.leads && !this.#o.leads()) return;
    this.#births.set(key, device);
    this.#redelivering ??= this.#redeliverBirths();
  }

  /**
   * Births are handled in batches, one at a time: after a broker restart the
   * whole fleet is born again within seconds, and one pair of queries per
   * batch, not per kiosk, keeps that off the database the ingest needs.
   */
  async #redeliverBirths(): Promise<void> {
    // The births of this tick join the first batch.
    await new Promise((resolve) => setImmediate(resolve));
    try {
      while (this.#births.size > 0) {
        const batch = [...this.#births.values()].slice(0, BIRTH_BATCH);
        for (const d of batch) this.#births.delete(deviceKey(d));
        await this.#redeliver(batch).catch((err: Error) =>
          this.#o.logger.error({ err: err.message, devices: batch.length }, "pending commands not redelivered"),
        );
      }
    } finally {
      this.#redelivering = undefined;
    }
  }

  /** On births: pending commands past their expiry are closed, the others published again. */
  async #redeliver(devices: DeviceAddress[]): Promise<void> {
    const now = this.#o.now();
    const ofDevices = "(site_id, device_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))";
    const params = [devices.map((d) => d.site), devices.map((d) => d.device)];
    const expired = await this.#o.db.query<Row>(
      `UPDATE device_commands
       SET status = 'expired', reason = 'it expired before the device came online: never delivered, never run', updated_at = $3
       WHERE ${ofDevices} AND status = 'pending' AND ${HORIZON} <= $3
       RETURNING ${COLUMNS}`,
      [...params, now],
    );
    for (const r of expired.rows) this.#settled(r);
    const { rows } = await this.#o.db.query<Row>(
      `SELECT ${COLUMNS} FROM device_commands WHERE ${ofDevices} AND status = 'pending'
       ORDER BY site_id, device_id, requested_at, id`,
      params,
    );
    if (rows.length === 0) return;
    const sent: Row[] = [];
    for (const r of rows) {
      const device = { site: r.site_id, device: r.device_id };
      const command: Command = {
        id: r.id,
        args: r.args,
        ...(r.expires_at ? { expiresAt: r.expires_at.toISOString() } : {}),
        ...(r.requested_by ? { by: r.requested_by } : {}),
      };
      try {
        await this.#o.link.publish(topics.cmd(device, r.name), encode(CommandSchema, command), { qos: 1 });
        sent.push(r);
      } catch (err) {
        this.#o.logger.warn({ ...device, id: r.id, err: (err as Error).message }, "pending command not redelivered");
      }
    }
    if (sent.length > 0) {
      const delivered = await this.#o.db.query<Row>(
        `UPDATE device_commands SET delivered_at = $4
         WHERE (site_id, device_id, id) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))
         RETURNING ${COLUMNS}`,
        [sent.map((r) => r.site_id), sent.map((r) => r.device_id), sent.map((r) => r.id), this.#o.now()],
      );
      for (const r of delivered.rows) this.#changed(r);
      this.#o.logger.info({ commands: sent.length, devices: devices.length }, "pending commands redelivered on births");
    }
  }

  async #markDelivered(device: DeviceAddress, ids: string[]): Promise<CommandRecord | null> {
    const { rows } = await this.#o.db.query<Row>(
      `UPDATE device_commands SET delivered_at = $4
       WHERE site_id = $1 AND device_id = $2 AND id = ANY($3::text[]) RETURNING ${COLUMNS}`,
      [device.site, device.device, ids, this.#o.now()],
    );
    for (const r of rows) this.#changed(r);
    return rows[0] ? record(rows[0]) : null;
  }

  /** A command seen on the broker: the cloud's own (already recorded) or an operator tool's (recorded now). */
  async #record(device: DeviceAddress, name: string, command: Command): Promise<void> {
    const now = this.#o.now();
    const { rows } = await this.#o.db.query<Row>(
      `INSERT INTO device_commands (site_id, device_id, id, name, args, requested_by, requested_at, expires_at, status,
                                    delivered_at, updated_at)
       VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, 'pending', $9, $7)
       ON CONFLICT (site_id, device_id, id) DO NOTHING RETURNING ${COLUMNS}`,
      [
        device.site,
        device.device,
        command.id,
        name,
        JSON.stringify(command.args),
        command.by ?? null,
        now,
        command.expiresAt ?? null,
        this.#online.has(deviceKey(device)) ? now : null,
      ],
    );
    if (rows[0]) this.#changed(rows[0]);
  }

  /**
   * The device's answer. `accepted` moves a command on only while no final
   * answer is recorded; a final answer replaces whatever the cloud inferred
   * (timeout, or expired by the sweep), but never an earlier final answer.
   * An answer to a command the cloud never saw (it was down) gets a row too.
   */
  async #onResult(device: DeviceAddress, r: CommandResult): Promise<void> {
    const now = this.#o.now();
    const final = r.status !== "accepted";
    const { rows } = await this.#o.db.query<Row>(
      `INSERT INTO device_commands AS c (site_id, device_id, id, name, requested_at, status, result, reason,
                                         delivered_at, answered_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $5, $9, $5)
       ON CONFLICT (site_id, device_id, id) DO UPDATE SET
         status = excluded.status, result = excluded.result, reason = excluded.reason,
         answered_at = excluded.answered_at, updated_at = excluded.updated_at,
         delivered_at = coalesce(c.delivered_at, excluded.delivered_at)
       WHERE c.answered_at IS NULL AND ($10 OR c.status <> 'accepted')
       RETURNING ${COLUMNS}`,
      [
        device.site,
        device.device,
        r.id,
        r.command ?? "unknown",
        now,
        r.status,
        r.status === "done" && r.result !== undefined ? JSON.stringify(r.result) : null,
        r.status === "failed" || r.status === "expired" ? r.reason : null,
        final ? r.at : null,
        final,
      ],
    );
    const row = rows[0];
    if (row && final) this.#settled(row);
    else if (row) this.#changed(row);
    else if (final) {
      // Another cloud instance hearing the same result wrote it first (its row lock made this upsert
      // wait for that commit): a request waiting here reads it now instead of at its deadline.
      for (const wake of this.#waiters.get(`${deviceKey(device)}/${r.id}`) ?? []) wake();
    }
  }

  #changed(r: Row): void {
    if (this.changes.listenerCount("change") > 0) this.changes.emit("change", record(r));
  }

  #settled(r: Row): void {
    this.#settledTotal?.inc({ status: r.status });
    this.#changed(r);
    const set = this.#waiters.get(`${r.site_id}/${r.device_id}/${r.id}`);
    for (const wake of set ?? []) wake();
  }
}

/** One command row as the API shows it, by its key: the live feed reads a command whose status changed. */
export async function readCommand(db: Queryable, device: DeviceAddress, id: string): Promise<CommandRecord | null> {
  const { rows } = await db.query<Row>(
    `SELECT ${COLUMNS} FROM device_commands WHERE site_id = $1 AND device_id = $2 AND id = $3`,
    [device.site, device.device, id],
  );
  return rows[0] ? record(rows[0]) : null;
}
