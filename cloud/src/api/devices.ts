/**
 * The fleet's devices (docs/enrolment.md):
 *
 *   GET  /api/v1/devices?site=                       (viewer)  every known device: presence, acked seq,
 *                                                               whether the registry holds it, its enrolment
 *   POST /api/v1/devices/{site}/{device}/revoke     (admin)   out of the registry (its session is closed), revoked
 *   POST /api/v1/devices/{site}/{device}/rotate     (admin)   sends cmd/rotate-credentials; 202 with the command
 */
import { type DeviceAddress, problemResponse, type Registry, ROTATE_CREDENTIALS } from "@paylane/protocol";
import { type Context, Hono } from "hono";
import { z } from "zod";
import type { Database } from "../db/database.ts";
import { type Enrolment, RegistryUnavailable } from "../enrolment/enrolment.ts";
import type { CommandDesk } from "../fleet/commands.ts";
import type { PresenceStore } from "../presence/presence-store.ts";
import { listingSite, type OperatorEnv, type OperatorTokenConfig, operatorAuth, siteDenied } from "./auth.ts";
import { notFound, queryError } from "./http.ts";
import { clientAddress } from "./rate-limit.ts";

/** How long a rotate-credentials command waits for a kiosk that is offline. */
export const ROTATE_EXPIRY_SECONDS = 3600;

export interface DeviceRoutesOptions {
  db: Database;
  presence: PresenceStore;
  registry: () => Registry;
  tokens: OperatorTokenConfig;
  /** Absent: no revoke and rotate routes (the API alone, without a registry file). */
  enrolment?: Enrolment;
  /** Absent: no rotate route (the API alone, without a bridge). */
  commands?: CommandDesk;
  connected?: () => boolean;
  trustProxy?: boolean;
}

const ListQuery = z.object({ site: z.string().optional() });

export function deviceRoutes(o: DeviceRoutesOptions): Hono<OperatorEnv> {
  const app = new Hono<OperatorEnv>();
  const admin = operatorAuth(o.tokens, "admin");
  const caller = (c: Context<OperatorEnv>) => ({
    actor: c.var.operator.sub,
    address: clientAddress(c, o.trustProxy ?? false),
  });
  const pathAddress = (c: Context<OperatorEnv>): DeviceAddress | Response => {
    const device = { site: c.req.param("site") ?? "", device: c.req.param("device") ?? "" };
    return siteDenied(c, device.site) ?? device;
  };

  app.get("/api/v1/devices", operatorAuth(o.tokens, "fleet:read"), async (c) => {
    const q = ListQuery.safeParse(c.req.query());
    if (!q.success) return queryError(q.error);
    const site = listingSite(c, q.data.site);
    if (site instanceof Response) return site;
    const { rows } = await o.db.query<{
      site_id: string;
      id: string;
      acked_seq: number | null;
      key_fingerprint: string | null;
      enrolled_at: Date | null;
      rotated_at: Date | null;
      revoked_at: Date | null;
    }>(
      `SELECT d.site_id, d.id, s.acked_seq, e.key_fingerprint, e.enrolled_at, e.rotated_at, e.revoked_at
       FROM devices d
       LEFT JOIN device_streams s ON s.site_id = d.site_id AND s.device_id = d.id
       LEFT JOIN enrolled_devices e ON e.site_id = d.site_id AND e.device_id = d.id
       WHERE $1::text IS NULL OR d.site_id = $1 ORDER BY d.site_id, d.id`,
      [site ?? null],
    );
    const presence = await o.presence.get(rows.map((r) => ({ site: r.site_id, device: r.id })));
    const registry = o.registry();
    const items = rows.map((r, i) => ({
      ...presence[i]!,
      ackedSeq: r.acked_seq ?? 0,
      inRegistry: registry.hasDevice({ site: r.site_id, device: r.id }),
      // null: registered by hand, not through a claim code
      enrolment: r.enrolled_at
        ? {
            keyFingerprint: r.key_fingerprint,
            enrolledAt: r.enrolled_at.toISOString(),
            rotatedAt: r.rotated_at?.toISOString() ?? null,
            revokedAt: r.revoked_at?.toISOString() ?? null,
          }
        : null,
    }));
    return c.json({ items });
  });

  const enrolment = o.enrolment;
  if (enrolment) {
    app.post("/api/v1/devices/:site/:device/revoke", admin, async (c) => {
      const device = pathAddress(c);
      if (device instanceof Response) return device;
      try {
        const revoked = await enrolment.revoke(device, caller(c));
        if (!revoked) return notFound(`no device ${device.site}/${device.device} to revoke`);
        return c.json({ ...device, ...revoked });
      } catch (err) {
        if (err instanceof RegistryUnavailable) {
          return problemResponse({
            title: "Service unavailable",
            status: 503,
            detail: "the device registry could not be written, so the device is not revoked yet; try again",
          });
        }
        throw err;
      }
    });
  }

  const commands = o.commands;
  if (enrolment && commands) {
    app.post("/api/v1/devices/:site/:device/rotate", admin, async (c) => {
      const device = pathAddress(c);
      if (device instanceof Response) return device;
      if (!o.registry().hasDevice(device)) return notFound(`no enrolled device ${device.site}/${device.device}`);
      if (!(o.connected ?? (() => true))()) {
        return problemResponse({
          title: "Broker unreachable",
          status: 503,
          detail: "the cloud is not connected to the MQTT broker right now, so nothing was sent; try again shortly",
        });
      }
      const who = caller(c);
      const sent = await commands.send({
        ...device,
        name: ROTATE_CREDENTIALS,
        args: {},
        expiresInSeconds: ROTATE_EXPIRY_SECONDS,
        by: who.actor,
      });
      await enrolment.rotateAsked(device, who, sent.id);
      return c.json({ commandId: sent.id, command: sent }, 202);
    });
  }

  return app;
}
