/**
 * The live feed's notifications on Postgres (migrations/016_live_notify.sql):
 * the channel, what a notification names, and the one the cloud sends itself
 * (a kiosk going online or offline is heard on MQTT, not written to a table).
 */
import { type DeviceAddress, LIVE_EVENT_TYPES, type Status } from "@paylane/protocol";
import type { Logger } from "pino";
import { z } from "zod";
import type { Queryable } from "../db/database.ts";
import type { FleetLink } from "../fleet/link.ts";

export const LIVE_CHANNEL = "paylane_live";

/** A device status as the feed shows it: the presence fields of `GET /api/v1/devices`. */
export const DeviceStatusDataSchema = z.object({
  state: z.enum(["online", "offline"]),
  statusAt: z.string(),
  version: z.string().nullable(),
  bootedAt: z.string().nullable(),
  /** The device's connection counter (docs/status.md), null for an older kiosk. */
  session: z.number().nullable(),
});
export type DeviceStatusData = z.infer<typeof DeviceStatusDataSchema>;

/** What one notification names: the row's schema, type, site, device and key (seq, id or key). */
export const LiveNotificationSchema = z.object({
  s: z.string(),
  t: z.enum(LIVE_EVENT_TYPES),
  site: z.string(),
  device: z.string().nullable().optional(),
  seq: z.number().int().optional(),
  id: z.string().optional(),
  key: z.string().optional(),
  status: DeviceStatusDataSchema.optional(),
});
export type LiveNotification = z.infer<typeof LiveNotificationSchema>;

/**
 * Announces a status the bridge applied to presence. Every instance whose
 * bridge heard it announces it; the feed drops the repeats (LiveFeed).
 */
export async function notifyDeviceStatus(db: Queryable, device: DeviceAddress, status: Status, at: Date) {
  const data: DeviceStatusData = {
    state: status.state,
    statusAt: at.toISOString(),
    version: status.state === "online" ? status.version : null,
    bootedAt: status.state === "online" ? status.bootedAt : null,
    session: status.session ?? null,
  };
  const payload = { t: "device-status", site: device.site, device: device.device, status: data };
  await db.query("SELECT pg_notify($1, jsonb_set($2::jsonb, '{s}', to_jsonb(current_schema()))::text)", [
    LIVE_CHANNEL,
    JSON.stringify(payload),
  ]);
}

/** Announces every status the bridge applies, until the returned function is called. */
export function announceDeviceStatuses(
  link: Pick<FleetLink, "fleet">,
  db: Queryable,
  o: { logger: Logger; now: () => Date },
): () => void {
  const onStatus = (device: DeviceAddress, status: Status) => {
    notifyDeviceStatus(db, device, status, o.now()).catch((err: Error) =>
      o.logger.warn({ err: err.message, ...device }, "live feed: a device status could not be announced"),
    );
  };
  link.fleet.on("status", onStatus);
  return () => {
    link.fleet.off("status", onStatus);
  };
}
