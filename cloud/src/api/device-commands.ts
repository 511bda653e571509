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
import {
  COMMAND_ARGS,
  COMMAND_NAMES,
  describeIssues,
  isCommandName,
  problemResponse,
  type Registry,
} from "@paylane/protocol";
import { Hono } from "hono";
import { z } from "zod";
import { type CommandDesk, isSettled } from "../fleet/commands.ts";
import { type OperatorEnv, type OperatorTokenConfig, operatorAuth, pathDevice } from "./auth.ts";
import { badRequest, cursor, jsonBody, pageAfter, queryError } from "./http.ts";

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

const ListQuery = z.object({
  limit: z.coerce.number().int().min(1).max(500).default(50),
  before: z.string().optional(),
});

export interface DeviceCommandRoutesOptions {
  commands: CommandDesk;
  registry: () => Registry;
  tokens: OperatorTokenConfig;
  /** Whether the cloud is on the broker now: a command cannot be sent otherwise. */
  connected: () => boolean;
}

export function deviceCommandRoutes(o: DeviceCommandRoutesOptions): Hono<OperatorEnv> {
  const app = new Hono<OperatorEnv>();
  const path = "/api/v1/devices/:site/:device/commands";

  app.post(path, operatorAuth(o.tokens, "fleet:operate"), async (c) => {
    const device = pathDevice(c, o.registry());
    if (device instanceof Response) return device;
    const body = await jsonBody(c.req.raw, SendBody);
    if (body instanceof Response) return body;
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

  app.get(path, operatorAuth(o.tokens, "fleet:read"), async (c) => {
    const device = pathDevice(c, o.registry());
    if (device instanceof Response) return device;
    const q = ListQuery.safeParse(c.req.query());
    if (!q.success) return queryError(q.error);
    const after = pageAfter(q.data.before, ["timestamp", "text"]);
    if (after instanceof Response) return after;
    const items = await o.commands.list(device, {
      limit: q.data.limit,
      before: after ? { requestedAt: String(after[0]), id: String(after[1]) } : undefined,
    });
    const last = items[items.length - 1];
    return c.json({
      items,
      next: items.length === q.data.limit && last ? cursor.encode(last.requestedAt, last.id) : null,
    });
  });

  return app;
}
