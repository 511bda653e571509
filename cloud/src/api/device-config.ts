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
import type { OpenAPIHono } from "@hono/zod-openapi";
import {
  CONFIG_SETTING_NAMES,
  checkSettings,
  DesiredConfigSchema,
  problemResponse,
  type Registry,
  ReportedStateSchema,
} from "@paylane/protocol";
import { z } from "zod";
import type { ConfigDesk } from "../fleet/device-config.ts";
import { listingSite, type OperatorEnv, type OperatorTokenConfig, pathDevice } from "./auth.ts";
import { badRequest } from "./http.ts";
import {
  apiApp,
  DevicePath,
  defineRoute,
  json,
  jsonRequest,
  listOf,
  orNull,
  problems,
  register,
  SiteFilter,
  secured,
} from "./openapi.ts";

const PutBody = z.strictObject({
  settings: z
    .record(z.string(), z.unknown())
    .meta({ description: `the whole desired configuration; settings: ${CONFIG_SETTING_NAMES.join(", ")}` }),
});
const DriftQuery = z.object({ site: SiteFilter });

export const DeviceConfigSchema = z
  .object({
    site: z.string(),
    device: z.string(),
    desired: orNull(DesiredConfigSchema),
    reported: orNull(ReportedStateSchema),
    drift: z.array(z.string()).meta({ description: "desired fields not in force on the device" }),
    neverReported: z.boolean(),
  })
  .meta({ id: "DeviceConfig" });

export interface DeviceConfigRoutesOptions {
  configs: ConfigDesk;
  registry: () => Registry;
  tokens: OperatorTokenConfig;
  connected: () => boolean;
}

export function deviceConfigRoutes(o: DeviceConfigRoutesOptions): OpenAPIHono<OperatorEnv> {
  const app = apiApp();
  const path = "/api/v1/devices/{site}/{device}/config";

  const put = defineRoute(secured(o.tokens, "fleet:operate", "put"), {
    method: "put",
    path,
    tags: ["config"],
    summary: "Set a kiosk's whole desired configuration (the next version)",
    description:
      "Each setting is checked with the kiosk's own rules; a bad one is refused before anything is published.",
    request: { params: DevicePath, body: jsonRequest(PutBody) },
    responses: { 200: json(DeviceConfigSchema, "Desired, reported and drift"), 404: problems[404], 503: problems[503] },
  });
  register(app, put, async (c) => {
    const device = pathDevice(c, o.registry());
    if (device instanceof Response) return device;
    const body = c.req.valid("json");
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

  const get = defineRoute(secured(o.tokens, "fleet:read", "get"), {
    method: "get",
    path,
    tags: ["config"],
    summary: "A kiosk's desired and reported configuration, and the drift between them",
    request: { params: DevicePath },
    responses: { 200: json(DeviceConfigSchema, "Desired, reported and drift"), 404: problems[404] },
  });
  register(app, get, async (c) => {
    const device = pathDevice(c, o.registry());
    if (device instanceof Response) return device;
    return c.json(await o.configs.get(device));
  });

  const drift = defineRoute(secured(o.tokens, "fleet:read", "get"), {
    method: "get",
    path: "/api/v1/config/drift",
    tags: ["config"],
    summary: "Every kiosk with drift, or that never reported",
    request: { query: DriftQuery },
    responses: { 200: json(listOf(DeviceConfigSchema, "DeviceConfig"), "The drifting kiosks") },
  });
  register(app, drift, async (c) => {
    const site = listingSite(c, c.req.valid("query").site);
    if (site instanceof Response) return site;
    return c.json({ items: await o.configs.drifting(site) });
  });

  return app;
}
