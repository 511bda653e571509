/**
 * Desired and reported configuration per device (issue 14), AWS-shadow
 * style. The desired config lives on the broker, retained on the device's
 * `config`: whoever sets it (this cloud, or an operator's tool directly),
 * the cloud keeps what the broker holds. The device answers on its retained
 * `state` with the version it applied and every field it refused. Drift is
 * the desired fields the device does not have in force (protocol's
 * `configDrift`).
 */
import { EventEmitter } from "node:events";
import {
  type ConfigSettings,
  configDrift,
  type DesiredConfig,
  DesiredConfigSchema,
  type DeviceAddress,
  encode,
  type ReportedState,
  topics,
} from "@paylane/protocol";
import type { Logger } from "pino";
import type { Database } from "../db/database.ts";
import { deviceKey, type FleetLink, PerDeviceQueue } from "./link.ts";

export interface DeviceConfigView {
  site: string;
  device: string;
  desired: DesiredConfig | null;
  reported: ReportedState | null;
  /** Desired fields not in force on the device (refused, or a newer version not applied yet). */
  drift: string[];
  /** The device never reported a state (an older kiosk, or one never online since). */
  neverReported: boolean;
}

interface Row {
  site_id: string;
  device_id: string;
  desired: DesiredConfig | null;
  reported: ReportedState | null;
}

function view(site: string, device: string, desired: DesiredConfig | null, reported: ReportedState | null) {
  return { site, device, desired, reported, drift: configDrift(desired, reported), neverReported: reported === null };
}

export interface ConfigDeskOptions {
  db: Database;
  link: FleetLink;
  logger: Logger;
  now: () => Date;
}

export class ConfigDesk {
  /** A device's desired or reported config changed (written). */
  readonly changes = new EventEmitter<{ change: [device: DeviceAddress] }>();
  readonly #o: ConfigDeskOptions;
  readonly #queue: PerDeviceQueue;
  readonly #listeners: Array<() => void> = [];
  /**
   * What was last written per device: the broker hands every retained config
   * and state again at each reconnect of the cloud (the whole fleet at once),
   * and an unchanged one is not written again.
   */
  readonly #written = new Map<string, { desired?: string; reported?: string }>();

  constructor(o: ConfigDeskOptions) {
    this.#o = o;
    this.#queue = new PerDeviceQueue((err) => o.logger.error({ err: err.message }, "device config write failed"));
  }

  /** Listens to the fleet; call before the bridge connects, so the retained configs and states are heard. */
  attach(): void {
    const { fleet } = this.#o.link;
    const onConfig = (device: DeviceAddress, config: DesiredConfig | null) =>
      void this.#queue.run(device, () => this.#storeDesired(device, config));
    const onState = (device: DeviceAddress, state: ReportedState) =>
      void this.#queue.run(device, () => this.#storeReported(device, state));
    fleet.on("config", onConfig);
    fleet.on("state", onState);
    this.#listeners.push(
      () => fleet.off("config", onConfig),
      () => fleet.off("state", onState),
    );
  }

  async detach(): Promise<void> {
    for (const off of this.#listeners.splice(0)) off();
    await this.#queue.idle();
  }

  /**
   * Sets the whole desired config (what is not in `settings` is no longer
   * desired): the version above every one seen for this device, published
   * retained on `config`. Resolves once the broker holds it.
   */
  async set(device: DeviceAddress, settings: ConfigSettings, by: string): Promise<DesiredConfig> {
    let config: DesiredConfig | undefined;
    let failure: Error | undefined;
    // In the device's queue: two changes at once get two versions, published in version order.
    await this.#queue.run(device, async () => {
      try {
        config = await this.#publishNext(device, settings, by);
      } catch (err) {
        failure = err as Error;
      }
    });
    if (!config) throw failure ?? new Error(`the desired config of ${device.site}/${device.device} was not published`);
    return config;
  }

  async #publishNext(device: DeviceAddress, settings: ConfigSettings, by: string): Promise<DesiredConfig> {
    const now = this.#o.now();
    const { rows } = await this.#o.db.query<{ desired_version: string }>(
      `INSERT INTO device_config AS c (site_id, device_id, desired_version, updated_at) VALUES ($1, $2, 1, $3)
         ON CONFLICT (site_id, device_id) DO UPDATE SET desired_version = c.desired_version + 1, updated_at = $3
         RETURNING desired_version`,
      [device.site, device.device, now],
    );
    const next: DesiredConfig = { version: Number(rows[0]!.desired_version), settings, by, at: now.toISOString() };
    await this.#o.link.publish(topics.config(device), encode(DesiredConfigSchema, next), { qos: 1, retain: true });
    // Stored now too (the broker echoes it back; the same value again changes nothing).
    await this.#storeDesired(device, next);
    return next;
  }

  async get(device: DeviceAddress): Promise<DeviceConfigView> {
    const { rows } = await this.#o.db.query<Row>(
      "SELECT site_id, device_id, desired, reported FROM device_config WHERE site_id = $1 AND device_id = $2",
      [device.site, device.device],
    );
    const r = rows[0];
    return view(device.site, device.device, r?.desired ?? null, r?.reported ?? null);
  }

  /** Every enrolled device of `site` (or of every site) with drift or that never reported, by site and device. */
  async drifting(site: string | undefined): Promise<DeviceConfigView[]> {
    const { rows } = await this.#o.db.query<Row>(
      `SELECT d.site_id, d.id AS device_id, c.desired, c.reported FROM devices d
       LEFT JOIN device_config c ON c.site_id = d.site_id AND c.device_id = d.id
       WHERE $1::text IS NULL OR d.site_id = $1 ORDER BY d.site_id, d.id`,
      [site ?? null],
    );
    return rows
      .map((r) => view(r.site_id, r.device_id, r.desired, r.reported))
      .filter((v) => v.drift.length > 0 || v.neverReported);
  }

  async #storeDesired(device: DeviceAddress, config: DesiredConfig | null): Promise<void> {
    const json = JSON.stringify(config);
    const written = this.#writtenOf(device);
    if (written.desired === json) return;
    const now = this.#o.now();
    await this.#o.db.query(
      `INSERT INTO device_config AS c (site_id, device_id, desired, desired_version, desired_at, updated_at)
       VALUES ($1, $2, $3::jsonb, $4, $5, $5)
       ON CONFLICT (site_id, device_id) DO UPDATE SET desired = excluded.desired,
         desired_version = greatest(c.desired_version, excluded.desired_version),
         desired_at = excluded.desired_at, updated_at = excluded.updated_at`,
      [device.site, device.device, config ? json : null, config?.version ?? 0, now],
    );
    written.desired = json;
    this.changes.emit("change", device);
  }

  #writtenOf(device: DeviceAddress): { desired?: string; reported?: string } {
    const key = deviceKey(device);
    let written = this.#written.get(key);
    if (!written) {
      written = {};
      this.#written.set(key, written);
    }
    return written;
  }

  async #storeReported(device: DeviceAddress, state: ReportedState): Promise<void> {
    const json = JSON.stringify(state);
    const written = this.#writtenOf(device);
    if (written.reported === json) return;
    const now = this.#o.now();
    await this.#o.db.query(
      `INSERT INTO device_config (site_id, device_id, reported, reported_at, updated_at) VALUES ($1, $2, $3::jsonb, $4, $4)
       ON CONFLICT (site_id, device_id) DO UPDATE SET reported = excluded.reported,
         reported_at = excluded.reported_at, updated_at = excluded.updated_at`,
      [device.site, device.device, json, now],
    );
    written.reported = json;
    this.changes.emit("change", device);
    if (state.error || state.rejected.length > 0) {
      this.#o.logger.warn(
        { ...device, version: state.version, rejected: state.rejected.map((r) => r.field), error: state.error },
        "a device refused (part of) its desired config; its last good settings stay in force",
      );
    }
  }
}
