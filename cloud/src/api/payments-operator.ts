/**
 * The operators' money routes (JWT, see auth.ts), thin handlers over the
 * PaymentService: wallets, the ledger, payments and their refunds, offline
 * exposure (money:read: finance); top-ups, refunds and adjustments
 * (money:write: finance); the price list and offline limits (admin). Writes take an `Idempotency-Key` header.
 */
import { OfflineLimitsSchema, PriceListItemSchema, problemResponse } from "@paylane/protocol";
import { type Context, Hono } from "hono";
import { z } from "zod";
import { LEDGER_KINDS } from "../ledger/ledger.ts";
import type { PaymentService, WalletCredit } from "../ledger/payment-service.ts";
import { type OperatorEnv, type OperatorTokenConfig, operatorAuth, siteDenied } from "./auth.ts";
import { badRequest, cursor, jsonBody, notFound, pageAfter, queryError } from "./http.ts";
import {
  AdjustmentSchema,
  answer,
  ItemSchema,
  idempotencyKey,
  PageQuery,
  RefundSchema,
  TopupSchema,
} from "./payments-http.ts";

export interface OperatorPaymentRoutesOptions {
  now: () => Date;
  tokens: OperatorTokenConfig;
}

const PaymentId = z.uuid();

export function operatorPaymentRoutes(service: PaymentService, o: OperatorPaymentRoutesOptions): Hono<OperatorEnv> {
  const app = new Hono<OperatorEnv>();
  const moneyRead = operatorAuth(o.tokens, "money:read");
  const moneyWrite = operatorAuth(o.tokens, "money:write");
  const admin = operatorAuth(o.tokens, "admin");

  // ---- reads ---------------------------------------------------------------

  app.get("/api/v1/wallets", moneyRead, async (c) => {
    const q = PageQuery.extend({ site: z.string() }).safeParse(c.req.query());
    if (!q.success) return queryError(q.error);
    const denied = siteDenied(c, q.data.site);
    if (denied) return denied;
    const after = pageAfter(q.data.before, ["text"]);
    if (after instanceof Response) return after;
    const items = await service.wallets(q.data.site, (after?.[0] as string | undefined) ?? null, q.data.limit);
    const last = items.at(-1);
    return c.json({ items, next: items.length === q.data.limit && last ? cursor.encode(last.memberId) : null });
  });

  app.get("/api/v1/wallets/:site/:member", moneyRead, async (c) => {
    const { site, member } = c.req.param();
    const denied = siteDenied(c, site);
    if (denied) return denied;
    const wallet = await service.wallet(site, member);
    return wallet ? c.json(wallet) : notFound(`no wallet for member ${member} at site ${site}`);
  });

  /** A wallet's entries, newest first, by their position in the wallet. */
  app.get("/api/v1/wallets/:site/:member/entries", moneyRead, async (c) => {
    const { site, member } = c.req.param();
    const denied = siteDenied(c, site);
    if (denied) return denied;
    const q = PageQuery.safeParse(c.req.query());
    if (!q.success) return queryError(q.error);
    const after = pageAfter(q.data.before, ["int"]);
    if (after instanceof Response) return after;
    const items = await service.walletEntries(site, member, (after?.[0] as number | undefined) ?? null, q.data.limit);
    const last = items.at(-1);
    return c.json({ items, next: items.length === q.data.limit && last ? cursor.encode(last.n) : null });
  });

  /** A site's ledger entries, newest first (all kinds, or `kind`), by an opaque cursor. */
  const ledgerPage = (fixedKind?: "purchase") => async (c: Context<OperatorEnv>) => {
    const q = PageQuery.extend({ site: z.string(), kind: z.enum(LEDGER_KINDS).optional() }).safeParse(c.req.query());
    if (!q.success) return queryError(q.error);
    const denied = siteDenied(c, q.data.site);
    if (denied) return denied;
    const after = pageAfter(q.data.before, ["timestamp", "uuid"]);
    if (after instanceof Response) return after;
    const before = after ? { recordedAt: after[0] as string, id: after[1] as string } : null;
    const items = await service.ledger(q.data.site, fixedKind ?? q.data.kind ?? null, before, q.data.limit);
    const last = items.at(-1);
    return c.json({
      items,
      next: items.length === q.data.limit && last ? cursor.encode(last.recordedAt, last.id) : null,
    });
  };
  app.get("/api/v1/ledger", moneyRead, ledgerPage());
  /** Payments (purchases) of a site, newest first; `GET /api/v1/payments/{id}` shows one with its refunds. */
  app.get("/api/v1/payments", moneyRead, ledgerPage("purchase"));

  /** One payment with its refunds. */
  app.get("/api/v1/payments/:id", moneyRead, async (c) => {
    const id = c.req.param("id");
    if (!PaymentId.safeParse(id).success) return badRequest("id: expected a payment id (UUID)");
    const found = await service.payment(id);
    if (!found) return notFound(`no payment ${id}`);
    const denied = siteDenied(c, found.payment.site);
    return denied ?? c.json(found);
  });

  /** Offline exposure per kiosk (from its latest telemetry) and per site, by currency. */
  app.get("/api/v1/exposure", moneyRead, async (c) => {
    const q = z.object({ site: z.string() }).safeParse(c.req.query());
    if (!q.success) return queryError(q.error);
    const denied = siteDenied(c, q.data.site);
    if (denied) return denied;
    return c.json(await service.exposure(q.data.site));
  });

  /** The price list (a venue admin's): kiosks get it with their next wallet sync. */
  app.get("/api/v1/sites/:site/items", moneyRead, async (c) => {
    const site = c.req.param("site");
    const denied = siteDenied(c, site);
    if (denied) return denied;
    return c.json({ items: await service.items(site) });
  });

  // ---- writes --------------------------------------------------------------

  app.put("/api/v1/sites/:site/items/:item", admin, async (c) => {
    const { site, item } = c.req.param();
    const denied = siteDenied(c, site);
    if (denied) return denied;
    if (!PriceListItemSchema.shape.id.safeParse(item).success)
      return badRequest("item: expected an item id like coffee or day-pass");
    const body = await jsonBody(c.req.raw, ItemSchema);
    if (body instanceof Response) return body;
    const stored = await service.putItem(site, { id: item, ...body });
    return stored ? c.json(stored) : notFound(`no site ${site}`);
  });

  /** The site's offline limits (minor units of its currency); kiosks get them with their next wallet sync. */
  app.put("/api/v1/sites/:site/offline-limits", admin, async (c) => {
    const site = c.req.param("site");
    const denied = siteDenied(c, site);
    if (denied) return denied;
    const body = await jsonBody(c.req.raw, OfflineLimitsSchema.strict());
    if (body instanceof Response) return body;
    const stored = await service.putOfflineLimits(site, body);
    return stored ? c.json(stored) : notFound(`no site ${site}`);
  });

  /** An operator's credit or correction to one wallet: a top-up or an adjustment (money:write). */
  const walletWrite =
    (kind: WalletCredit["kind"], schema: typeof TopupSchema | typeof AdjustmentSchema) =>
    async (c: Context<OperatorEnv>) => {
      const { site, member } = c.req.param() as { site: string; member: string };
      const denied = siteDenied(c, site);
      if (denied) return denied;
      const key = idempotencyKey(c.req.header("idempotency-key"));
      if (key instanceof Response) return key;
      const body = await jsonBody(c.req.raw, schema);
      if (body instanceof Response) return body;
      const request = { operator: c.var.operator.sub, key, now: o.now() };
      return answer(await service.credit({ kind, site, member, ...body }, request), key);
    };
  app.post("/api/v1/wallets/:site/:member/topups", moneyWrite, walletWrite("topup", TopupSchema));
  app.post("/api/v1/wallets/:site/:member/adjustments", moneyWrite, walletWrite("adjustment", AdjustmentSchema));

  app.post("/api/v1/payments/:id/refunds", moneyWrite, async (c) => {
    const id = c.req.param("id");
    if (!PaymentId.safeParse(id).success) return badRequest("id: expected a payment id (UUID)");
    const key = idempotencyKey(c.req.header("idempotency-key"));
    if (key instanceof Response) return key;
    const body = await jsonBody(c.req.raw, RefundSchema);
    if (body instanceof Response) return body;
    const found = await service.payment(id);
    if (!found) return notFound(`no payment ${id}`);
    const denied = siteDenied(c, found.payment.site);
    if (denied) return denied;
    const amount = body.amount ?? found.refundable;
    if (amount <= 0) {
      return problemResponse({ title: "Nothing to refund", status: 409, detail: `payment ${id} is fully refunded` });
    }
    const request = { operator: c.var.operator.sub, key, now: o.now() };
    return answer(await service.refund(found, { id, amount, reason: body.reason }, request), key);
  });

  return app;
}
