/**
 * Money routes, thin handlers over the PaymentService (ledger/payment-service.ts):
 * each authenticates, validates, asks the service, and answers. Here the
 * kiosks' (device credentials): online authorization, its void, and the
 * wallet replica; the operators' (JWT, see auth.ts) are in payments-operator.ts.
 *
 * Every write takes an idempotency key (the kiosk's payment key, or the
 * operator's `Idempotency-Key` header): a retry gets the first answer again,
 * marked `Idempotent-Replayed: true`, and changes nothing.
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import { cloudApi, PaymentRequestSchema, type PaymentResponse, type Registry } from "@paylane/protocol";
import { Counter, type Registry as MetricsRegistry } from "prom-client";
import type { Database } from "../db/database.ts";
import type { IdempotentOutcome } from "../ledger/idempotency.ts";
import { PaymentService } from "../ledger/payment-service.ts";
import type { PresenceStore } from "../presence/presence-store.ts";
import type { OperatorEnv, OperatorTokenConfig } from "./auth.ts";
import { notFound, sinceParam } from "./http.ts";
import {
  apiApp,
  callerDevice,
  defineRoute,
  deviceRoute,
  json,
  jsonRequest,
  openApiPath,
  problems,
  register,
  SitePath,
  sinceQuery,
} from "./openapi.ts";
import { answer } from "./payments-http.ts";
import { operatorPaymentRoutes } from "./payments-operator.ts";

export interface PaymentRoutesOptions {
  db: Database;
  presence: PresenceStore;
  registry: () => Registry;
  now: () => Date;
  /** Verifies operator tokens; no secret: the operator routes answer 503. */
  tokens: OperatorTokenConfig;
  metrics: MetricsRegistry;
}

export function paymentRoutes(o: PaymentRoutesOptions): OpenAPIHono<OperatorEnv> {
  const service = new PaymentService({ db: o.db, presence: o.presence });
  const app = apiApp();
  app.route("/", kioskPaymentRoutes(service, o));
  app.route("/", operatorPaymentRoutes(service, o));
  return app;
}

const PaymentAnswer = cloudApi.authorizePayment.answer.meta({ id: "PaymentResponse" });
const PaymentRequest = PaymentRequestSchema.meta({ id: "PaymentRequest" });

function kioskPaymentRoutes(service: PaymentService, o: PaymentRoutesOptions): OpenAPIHono<OperatorEnv> {
  const app = apiApp();
  const authorizations = new Counter({
    name: "paylane_cloud_payment_authorizations_total",
    help: "Online authorizations by answer: approved, declined (with reason), replayed, key-mismatch",
    labelNames: ["answer", "reason"],
    registers: [o.metrics],
  });
  const count = (outcome: IdempotentOutcome<PaymentResponse>) => {
    if (outcome.kind === "mismatch") authorizations.inc({ answer: "key-mismatch", reason: "" });
    else if (outcome.kind === "replayed") authorizations.inc({ answer: "replayed", reason: "" });
    else {
      const { body } = outcome;
      authorizations.inc({ answer: body.status, reason: body.status === "declined" ? body.reason : "" });
    }
  };

  const authorize = defineRoute(deviceRoute(o.registry, "any"), {
    method: "post",
    path: "/api/v1/payments",
    tags: ["kiosk"],
    summary: "Authorise a purchase online under its idempotency key",
    description:
      "The same key again answers the first answer again (Idempotent-Replayed: true) and changes nothing; " +
      "the key with other parameters is a 422.",
    request: { body: jsonRequest(PaymentRequest) },
    responses: { 200: json(PaymentAnswer, "Approved or declined (with its reason)"), 422: problems[422] },
  });
  register(app, authorize, async (c) => {
    const caller = callerDevice(c);
    const request = c.req.valid("json");
    const outcome = await service.authorize(caller, request, o.now());
    count(outcome);
    return answer(outcome, request.key);
  });

  /** A kiosk that lost track of a payment (a crash before any answer): its answer, or a void that stands for it. */
  const voidRoute = defineRoute(deviceRoute(o.registry, "any"), {
    method: "post",
    path: "/api/v1/payments/void",
    tags: ["kiosk"],
    summary: "Settle a payment a crash left unresolved: its answer if it has one, else a void under its key",
    request: { body: jsonRequest(PaymentRequest) },
    responses: { 200: json(PaymentAnswer, "The payment's answer, or the void"), 422: problems[422] },
  });
  register(app, voidRoute, async (c) => {
    const caller = callerDevice(c);
    const request = c.req.valid("json");
    return answer(await service.void(caller, request, o.now()), request.key);
  });

  const wallets = defineRoute(deviceRoute(o.registry, "site"), {
    method: "get",
    path: openApiPath(cloudApi.wallets.path),
    tags: ["kiosk"],
    summary: "The site's wallets, price list and offline limits (kiosks that take payments)",
    request: { params: SitePath, query: sinceQuery("wallet") },
    responses: {
      200: json(cloudApi.wallets.answer.meta({ id: "WalletSync" }), "A snapshot or a delta"),
      404: problems[404],
    },
  });
  register(app, wallets, async (c) => {
    const caller = callerDevice(c);
    const site = caller.site;
    const since = sinceParam(c.req.valid("query").since, "wallet");
    if (since instanceof Response) return since;
    const sync = await service.walletSync({ site, device: caller.device }, since);
    return sync ? c.json(sync) : notFound(`no site ${site}`);
  });

  return app;
}
