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
import type { OpenAPIHono } from "@hono/zod-openapi";
import { type DeviceAddress, problemResponse, type Registry, ROTATE_CREDENTIALS, roleAllows } from "@paylane/protocol";
import type { Context } from "hono";
import { z } from "zod";
import type { Database } from "../db/database.ts";
import { type Enrolment, RegistryUnavailable } from "../enrolment/enrolment.ts";
import type { CommandDesk } from "../fleet/commands.ts";
import type { PresenceStore } from "../presence/presence-store.ts";
import {
  DevicePageSchema,
  FleetPageSchema,
  FleetQuerySchema,
  FleetReadModel,
  SORT_KEY_LENGTH,
  withoutExposure,
} from "../read-models/fleet.ts";
import { listingSite, type OperatorEnv, type OperatorTokenConfig, siteDenied } from "./auth.ts";
import { CommandSchema } from "./device-commands.ts";
import { notFound, pageAfter } from "./http.ts";
import { apiApp, DevicePath, defineRoute, json, problems, register, secured } from "./openapi.ts";
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

export function deviceRoutes(o: DeviceRoutesOptions): OpenAPIHono<OperatorEnv> {
  const app = apiApp();
  const admin = (method: "post") => secured(o.tokens, "admin", method);
  const viewer = () => secured(o.tokens, "fleet:read", "get");
  const caller = (c: Context<OperatorEnv>) => ({
    actor: c.var.operator.sub,
    address: clientAddress(c, o.trustProxy ?? false),
  });
  const pathAddress = (c: Context<OperatorEnv>): DeviceAddress | Response => {
    const device = { site: c.req.param("site") ?? "", device: c.req.param("device") ?? "" };
    return siteDenied(c, device.site) ?? device;
  };
  /** The exposure is money: shown to money:read only (a viewer or an operator sees null). */
  const seesMoney = (c: Context<OperatorEnv>) => roleAllows(c.var.operator.role, "money:read");

  const fleet = new FleetReadModel({
    db: o.db,
    presence: o.presence,
    inRegistry: (d) => o.registry().hasDevice(d),
    now: o.now,
  });

  /** The fleet overview (cloud/src/read-models/fleet.ts): filter, search, sort, cursor pages. */
  const overview = defineRoute(viewer(), {
    method: "get",
    path: "/api/v1/devices",
    tags: ["devices"],
    summary: "The fleet overview: every kiosk with presence, backlog, ack latency, peripherals, drift, enrolment",
    request: { query: FleetQuerySchema },
    responses: { 200: json(FleetPageSchema.meta({ id: "FleetPage" }), "A page of kiosks") },
  });
  register(app, overview, async (c) => {
    const q = { data: c.req.valid("query") };
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
    return c.json(seesMoney(c) ? page : { ...page, items: page.items.map(withoutExposure) });
  });

  /** One device's page: the overview row, status history, recent events, peripherals, telemetry summary. */
  const devicePage = defineRoute(viewer(), {
    method: "get",
    path: "/api/v1/devices/{site}/{device}",
    tags: ["devices"],
    summary: "One kiosk's page: its overview row, status history, recent events, peripherals, telemetry summary",
    request: { params: DevicePath },
    responses: { 200: json(DevicePageSchema.meta({ id: "DevicePage" }), "The device page"), 404: problems[404] },
  });
  register(app, devicePage, async (c) => {
    const device = pathAddress(c);
    if (device instanceof Response) return device;
    const page = await fleet.device(device);
    if (!page) return notFound(`no device ${device.device} at site ${device.site}`);
    return c.json(seesMoney(c) ? page : { ...page, device: withoutExposure(page.device) });
  });

  const enrolment = o.enrolment;
  if (enrolment) {
    const revoke = defineRoute(admin("post"), {
      method: "post",
      path: "/api/v1/devices/{site}/{device}/revoke",
      tags: ["devices"],
      summary: "Revoke a device: out of the registry (its session is closed), marked revoked",
      request: { params: DevicePath },
      responses: {
        200: json(
          z.object({ site: z.string(), device: z.string() }).catchall(z.unknown()).meta({ id: "Revoked" }),
          "Revoked",
        ),
        404: problems[404],
        503: problems[503],
      },
    });
    register(app, revoke, async (c) => {
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
    const rotate = defineRoute(admin("post"), {
      method: "post",
      path: "/api/v1/devices/{site}/{device}/rotate",
      tags: ["devices"],
      summary: "Ask a kiosk to rotate its credentials (sends cmd/rotate-credentials)",
      request: { params: DevicePath },
      responses: {
        202: json(z.object({ commandId: z.string(), command: CommandSchema }), "Sent; the command shows its progress"),
        404: problems[404],
        503: problems[503],
      },
    });
    register(app, rotate, async (c) => {
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
