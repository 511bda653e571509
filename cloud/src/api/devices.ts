/**
 * The fleet's devices (docs/enrolment.md):
 *
 *   GET  /api/v1/devices?site&online&search&sort&limit&before   (fleet:read)  the fleet overview: presence,
 *        backlog, ack latency, reader, paper, mode, drift, version, enrolment (docs/fleet-console.md)
 *   GET  /api/v1/devices/{site}/{device}            (fleet:read)  the device page: the same row, status
 *        history, recent check-ins/alerts/commands, peripherals, telemetry summary
 *   POST /api/v1/devices/{site}/{device}/revoke     (admin)   out of the registry (its session is closed), revoked
 *   POST /api/v1/devices/{site}/{device}/rotate     (admin)   sends cmd/rotate-credentials; 202 with the command
 */
import { type DeviceAddress, problemResponse, type Registry, ROTATE_CREDENTIALS } from "@paylane/protocol";
import { type Context, Hono } from "hono";
import type { Database } from "../db/database.ts";
import { type Enrolment, RegistryUnavailable } from "../enrolment/enrolment.ts";
import type { CommandDesk } from "../fleet/commands.ts";
import type { PresenceStore } from "../presence/presence-store.ts";
import { FleetQuerySchema, FleetReadModel, SORT_KEY_LENGTH } from "../read-models/fleet.ts";
import { listingSite, type OperatorEnv, type OperatorTokenConfig, operatorAuth, siteDenied } from "./auth.ts";
import { notFound, pageAfter, queryError } from "./http.ts";
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
  now?: () => Date;
}

export function deviceRoutes(o: DeviceRoutesOptions): Hono<OperatorEnv> {
  const app = new Hono<OperatorEnv>();
  const admin = operatorAuth(o.tokens, "admin");
  const viewer = operatorAuth(o.tokens, "fleet:read");
  const caller = (c: Context<OperatorEnv>) => ({
    actor: c.var.operator.sub,
    address: clientAddress(c, o.trustProxy ?? false),
  });
  const pathAddress = (c: Context<OperatorEnv>): DeviceAddress | Response => {
    const device = { site: c.req.param("site") ?? "", device: c.req.param("device") ?? "" };
    return siteDenied(c, device.site) ?? device;
  };

  const fleet = new FleetReadModel({
    db: o.db,
    presence: o.presence,
    inRegistry: (d) => o.registry().hasDevice(d),
    now: o.now,
  });

  /** The fleet overview (cloud/src/read-models/fleet.ts): filter, search, sort, cursor pages. */
  app.get("/api/v1/devices", viewer, async (c) => {
    const q = FleetQuerySchema.safeParse(c.req.query());
    if (!q.success) return queryError(q.error);
    const site = listingSite(c, q.data.site);
    if (site instanceof Response) return site;
    const after = pageAfter(q.data.before, Array(SORT_KEY_LENGTH[q.data.sort]).fill("text"));
    if (after instanceof Response) return after;
    const page = await fleet.overview({
      site,
      search: q.data.search,
      online: q.data.online === undefined ? undefined : q.data.online === "true",
      sort: q.data.sort,
      limit: q.data.limit,
      after: after as string[] | null,
    });
    return c.json(page);
  });

  /** One device's page: the overview row, status history, recent events, peripherals, telemetry summary. */
  app.get("/api/v1/devices/:site/:device", viewer, async (c) => {
    const device = pathAddress(c);
    if (device instanceof Response) return device;
    const page = await fleet.device(device);
    if (!page) return notFound(`no device ${device.device} at site ${device.site}`);
    return c.json(page);
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
