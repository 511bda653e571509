/**
 * `POST /api/v1/topups/intents` (device credentials): the intent a kiosk
 * must hold before it charges a bank card for a wallet top-up (see
 * ledger/topup-intent.ts). Idempotent by key: the same request again gets the
 * same answer; the key with another member, amount or currency is a 422.
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import { cloudApi, problemResponse, type Registry } from "@paylane/protocol";
import { registeredCounter } from "@paylane/protocol/service";
import type { Logger } from "pino";
import type { Registry as MetricsRegistry } from "prom-client";
import type { Database } from "../db/database.ts";
import { issueTopupIntent } from "../ledger/topup-intent.ts";
import type { OperatorEnv } from "./auth.ts";
import { apiApp, callerDevice, defineRoute, deviceRoute, json, jsonRequest, problems, register } from "./openapi.ts";

export interface TopupRoutesOptions {
  db: Database;
  registry: () => Registry;
  now: () => Date;
  metrics: MetricsRegistry;
  logger?: Logger;
}

export function topupRoutes(o: TopupRoutesOptions): OpenAPIHono<OperatorEnv> {
  const app = apiApp();
  const intents = registeredCounter({
    name: "paylane_cloud_topup_intents_total",
    help: "Top-up intents asked for by kiosks, by answer (open, refused, key-mismatch)",
    labelNames: ["answer"],
    registers: [o.metrics],
  });

  const Answer = cloudApi.topupIntent.answer.meta({ id: "TopupIntentResponse" });
  const intent = defineRoute(deviceRoute(o.registry, "any"), {
    method: "post",
    path: cloudApi.topupIntent.path,
    tags: ["kiosk"],
    summary: "The intent a kiosk must hold before it charges a bank card for a wallet top-up",
    description: "Idempotent by key: the same request again gets the same answer.",
    request: { body: jsonRequest(cloudApi.topupIntent.body) },
    responses: {
      200: json(Answer, "Refused (or an earlier answer again)"),
      201: json(Answer, "A new open intent"),
      422: problems[422],
    },
  });
  register(app, intent, async (c) => {
    const caller = callerDevice(c);
    const request = c.req.valid("json");
    const outcome = await issueTopupIntent(o.db, { ...caller, request, now: o.now() });
    if (outcome.kind === "mismatch") {
      intents.inc({ answer: "key-mismatch" });
      return problemResponse({
        title: "Idempotency key reused",
        status: 422,
        detail: `key ${request.key} was first used for another member, amount or currency; a new top-up needs a new key`,
      });
    }
    intents.inc({ answer: outcome.response.status });
    if (outcome.velocityAlert) {
      o.logger?.warn({ site: caller.site, device: caller.device }, "top-up velocity above the site's threshold");
    }
    return c.json(outcome.response, outcome.response.status === "open" ? 201 : 200);
  });

  return app;
}
