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
import { PaymentRequestSchema, type PaymentResponse, type Registry } from "@paylane/protocol";
import { Hono } from "hono";
import { Counter, type Registry as MetricsRegistry } from "prom-client";
import type { Database } from "../db/database.ts";
import type { IdempotentOutcome } from "../ledger/idempotency.ts";
import { PaymentService } from "../ledger/payment-service.ts";
import type { PresenceStore } from "../presence/presence-store.ts";
import { anyDevice, deviceOnly, type OperatorEnv, type OperatorTokenConfig } from "./auth.ts";
import { jsonBody, notFound, sinceParam } from "./http.ts";
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

export function paymentRoutes(o: PaymentRoutesOptions): Hono<OperatorEnv> {
  const service = new PaymentService({ db: o.db, presence: o.presence });
  const app = new Hono<OperatorEnv>();
  app.route("/", kioskPaymentRoutes(service, o));
  app.route("/", operatorPaymentRoutes(service, o));
  return app;
}

function kioskPaymentRoutes(service: PaymentService, o: PaymentRoutesOptions): Hono<OperatorEnv> {
  const app = new Hono<OperatorEnv>();
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

  app.post("/api/v1/payments", async (c) => {
    const caller = await anyDevice(c.req.header("authorization"), o.registry());
    if (caller instanceof Response) return caller;
    const request = await jsonBody(c.req.raw, PaymentRequestSchema);
    if (request instanceof Response) return request;
    const outcome = await service.authorize(caller, request, o.now());
    count(outcome);
    return answer(outcome, request.key);
  });

  /** A kiosk that lost track of a payment (a crash before any answer): its answer, or a void that stands for it. */
  app.post("/api/v1/payments/void", async (c) => {
    const caller = await anyDevice(c.req.header("authorization"), o.registry());
    if (caller instanceof Response) return caller;
    const request = await jsonBody(c.req.raw, PaymentRequestSchema);
    if (request instanceof Response) return request;
    return answer(await service.void(caller, request, o.now()), request.key);
  });

  app.get("/api/v1/sites/:site/wallets", async (c) => {
    const site = c.req.param("site");
    const caller = await deviceOnly(c.req.header("authorization"), o.registry(), site);
    if (caller instanceof Response) return caller;
    const since = sinceParam(c.req.query("since"), "wallet");
    if (since instanceof Response) return since;
    const sync = await service.walletSync({ site, device: caller.device }, since);
    return sync ? c.json(sync) : notFound(`no site ${site}`);
  });

  return app;
}
