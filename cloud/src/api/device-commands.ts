/**
 * Commands to a kiosk over the API (see cloud/src/fleet/commands.ts and docs/commands.md):
 *
 *   POST /api/v1/devices/{site}/{device}/commands   (operator)  {command, args?, expiresInSeconds?, waitSeconds?}
 *   GET  /api/v1/devices/{site}/{device}/commands   (viewer)    the audit, newest first
 *
 * A POST sends the command and waits up to `waitSeconds` for it to settle:
 * 200 with the final result, or 202 with where it stands (pending while the
 * kiosk is offline: it is delivered when the kiosk comes back, unless expired).
 */

import type { OpenAPIHono } from "@hono/zod-openapi";
import {
  COMMAND_ARGS,
  COMMAND_NAMES,
  describeIssues,
  isCommandName,
  problemResponse,
  type Registry,
} from "@paylane/protocol";
import { z } from "zod";
import { COMMAND_ROW_STATUSES, type CommandDesk, isSettled } from "../fleet/commands.ts";
import { type OperatorEnv, type OperatorTokenConfig, pathDevice } from "./auth.ts";
import { badRequest, cursor, pageAfter } from "./http.ts";
import {
  apiApp,
  DevicePath,
  defineRoute,
  json,
  jsonRequest,
  orNull,
  PageParams,
  pageOf,
  problems,
  register,
  secured,
} from "./openapi.ts";

/** How long a POST waits for the result unless told otherwise. */
export const DEFAULT_WAIT_SECONDS = 10;
export const MAX_WAIT_SECONDS = 60;
/** How long a command stays valid unless told otherwise: long enough for a kiosk's short outage. */
export const DEFAULT_EXPIRY_SECONDS = 600;
export const MAX_EXPIRY_SECONDS = 7 * 86_400;

const SendBody = z.strictObject({
  command: z.string().refine(isCommandName, {
    error: (i) => `unknown command ${JSON.stringify(i.input)}; known: ${COMMAND_NAMES.join(", ")}`,
  }),
  args: z.record(z.string(), z.unknown()).default({}),
  expiresInSeconds: z.number().int().min(1).max(MAX_EXPIRY_SECONDS).default(DEFAULT_EXPIRY_SECONDS),
  waitSeconds: z.number().min(0).max(MAX_WAIT_SECONDS).default(DEFAULT_WAIT_SECONDS),
});

const ListQuery = z.object({ limit: PageParams.limit(), before: PageParams.before() });

/** One command and where it stands (cloud/src/fleet/commands.ts's CommandRecord). */
export const CommandSchema = z
  .object({
    id: z.string(),
    site: z.string(),
    device: z.string(),
    command: z.string().meta({ description: `the command's name: ${COMMAND_NAMES.join(", ")}` }),
    args: z.record(z.string(), z.unknown()),
    requestedBy: orNull(z.string()),
    requestedAt: z.string(),
    expiresAt: orNull(z.string()),
    status: z.enum(COMMAND_ROW_STATUSES),
    result: z.unknown().meta({ description: "what the kiosk answered (per command), null until it did" }),
    reason: orNull(z.string()),
    deliveredAt: orNull(z.string()),
    answeredAt: orNull(z.string()),
    updatedAt: z.string(),
  })
  .meta({ id: "Command" });

export interface DeviceCommandRoutesOptions {
  commands: CommandDesk;
  registry: () => Registry;
  tokens: OperatorTokenConfig;
  /** Whether the cloud is on the broker now: a command cannot be sent otherwise. */
  connected: () => boolean;
}

export function deviceCommandRoutes(o: DeviceCommandRoutesOptions): OpenAPIHono<OperatorEnv> {
  const app = apiApp();
  const path = "/api/v1/devices/{site}/{device}/commands";

  const send = defineRoute(secured(o.tokens, "fleet:operate", "post"), {
    method: "post",
    path,
    tags: ["commands"],
    summary: "Send a command to a kiosk and wait for its result",
    description:
      "Waits up to `waitSeconds` for the command to settle: 200 with the final result, or 202 with where it " +
      "stands (pending while the kiosk is offline: it is delivered when the kiosk comes back, unless expired).",
    request: { params: DevicePath, body: jsonRequest(SendBody) },
    responses: {
      200: json(CommandSchema, "Settled: done, failed, expired or timeout"),
      202: json(CommandSchema, "Not settled yet: pending or accepted"),
      404: problems[404],
      503: problems[503],
    },
  });
  register(app, send, async (c) => {
    const device = pathDevice(c, o.registry());
    if (device instanceof Response) return device;
    const body = c.req.valid("json");
    const name = body.command as keyof typeof COMMAND_ARGS;
    const args = COMMAND_ARGS[name].safeParse(body.args);
    if (!args.success) return badRequest(`${name} ${describeIssues(args.error, "args")}`);
    if (!o.connected()) {
      return problemResponse({
        title: "Broker unreachable",
        status: 503,
        detail: "the cloud is not connected to the MQTT broker right now, so nothing was sent; try again shortly",
      });
    }
    const sent = await o.commands.send({
      ...device,
      name,
      args: args.data as Record<string, unknown>,
      expiresInSeconds: body.expiresInSeconds,
      by: c.var.operator.sub,
    });
    const now = (await o.commands.waitSettled(device, sent.id, body.waitSeconds * 1000)) ?? sent;
    return c.json(now, isSettled(now.status) ? 200 : 202);
  });

  const history = defineRoute(secured(o.tokens, "fleet:read", "get"), {
    method: "get",
    path,
    tags: ["commands"],
    summary: "A kiosk's commands, newest first",
    request: { params: DevicePath, query: ListQuery },
    responses: { 200: json(pageOf(CommandSchema, "Command"), "A page of commands"), 404: problems[404] },
  });
  register(app, history, async (c) => {
    const device = pathDevice(c, o.registry());
    if (device instanceof Response) return device;
    const q = c.req.valid("query");
    const after = pageAfter(q.before, ["timestamp", "text"]);
    if (after instanceof Response) return after;
    const items = await o.commands.list(device, {
      limit: q.limit,
      before: after ? { requestedAt: String(after[0]), id: String(after[1]) } : undefined,
    });
    const last = items[items.length - 1];
    return c.json({
      items,
      next: items.length === q.limit && last ? cursor.encode(last.requestedAt, last.id) : null,
    });
  });

  return app;
}
