/**
 * Desired and reported configuration over the API (see cloud/src/fleet/device-config.ts):
 *
 *   PUT /api/v1/devices/{site}/{device}/config   (operator)  {settings}: the whole desired config, next version
 *   GET /api/v1/devices/{site}/{device}/config   (viewer)    {desired, reported, drift, neverReported}
 *   GET /api/v1/config/drift?site=               (viewer)    every device with drift, or that never reported
 *
 * Settings are checked here, each on its own, with the kiosk's own rules
 * (protocol's checkSettings): a bad one is refused with its reason before
 * anything is published. A kiosk still checks what it receives (an
 * operator's tool may publish `config` directly) and keeps its last good
 * value of a field it refuses; GET shows that as drift.
 */
import { checkSettings, problemResponse, type Registry } from "@paylane/protocol";
import { Hono } from "hono";
import { z } from "zod";
import type { ConfigDesk } from "../fleet/device-config.ts";
import { listingSite, type OperatorEnv, type OperatorTokenConfig, operatorAuth, pathDevice } from "./auth.ts";
import { badRequest, jsonBody, queryError } from "./http.ts";

const PutBody = z.strictObject({ settings: z.record(z.string(), z.unknown()) });
const DriftQuery = z.object({ site: z.string().max(64).optional() });

export interface DeviceConfigRoutesOptions {
  configs: ConfigDesk;
  registry: () => Registry;
  tokens: OperatorTokenConfig;
  connected: () => boolean;
}

export function deviceConfigRoutes(o: DeviceConfigRoutesOptions): Hono<OperatorEnv> {
  const app = new Hono<OperatorEnv>();
  const path = "/api/v1/devices/:site/:device/config";

  app.put(path, operatorAuth(o.tokens, "fleet:operate"), async (c) => {
    const device = pathDevice(c, o.registry());
    if (device instanceof Response) return device;
    const body = await jsonBody(c.req.raw, PutBody);
    if (body instanceof Response) return body;
    const { accepted, rejected } = checkSettings(body.settings);
    if (rejected.length > 0) {
      return badRequest(rejected.map((r) => `settings.${r.field}: ${r.reason}`).join("; "));
    }
    if (!o.connected()) {
      return problemResponse({
        title: "Broker unreachable",
        status: 503,
        detail: "the cloud is not connected to the MQTT broker right now, so nothing was published; try again shortly",
      });
    }
    await o.configs.set(device, accepted, c.var.operator.sub);
    return c.json(await o.configs.get(device));
  });

  app.get(path, operatorAuth(o.tokens, "fleet:read"), async (c) => {
    const device = pathDevice(c, o.registry());
    if (device instanceof Response) return device;
    return c.json(await o.configs.get(device));
  });

  app.get("/api/v1/config/drift", operatorAuth(o.tokens, "fleet:read"), async (c) => {
    const q = DriftQuery.safeParse(c.req.query());
    if (!q.success) return queryError(q.error);
    const site = listingSite(c, q.data.site);
    if (site instanceof Response) return site;
    return c.json({ items: await o.configs.drifting(site) });
  });

  return app;
}
