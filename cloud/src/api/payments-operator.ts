/**
 * The operators' money routes (JWT, see auth.ts), thin handlers over the
 * PaymentService: wallets, the ledger, payments and their refunds, offline
 * exposure (money:read: finance); top-ups, refunds and adjustments
 * (money:write: finance); the price list and offline limits (admin). Writes take an `Idempotency-Key` header.
 */
import type { OpenAPIHono, RouteConfig } from "@hono/zod-openapi";
import {
  CurrencySchema,
  ExposureSchema,
  OfflineLimitsSchema,
  PriceListItemSchema,
  problemResponse,
} from "@paylane/protocol";
import { z } from "zod";
import { LEDGER_KINDS } from "../ledger/ledger.ts";
import type { PaymentService, WalletCredit } from "../ledger/payment-service.ts";
import { type OperatorEnv, type OperatorTokenConfig, siteDenied } from "./auth.ts";
import { cursor, notFound, pageAfter } from "./http.ts";
import {
  apiApp,
  defineRoute,
  json,
  jsonRequest,
  listOf,
  orNull,
  pageOf,
  problems,
  type RouteContext,
  register,
  SitePath,
  secured,
} from "./openapi.ts";
import {
  AdjustmentSchema,
  answer,
  IdempotencyHeader,
  ItemSchema,
  PageQuery,
  RefundSchema,
  TopupSchema,
} from "./payments-http.ts";

export interface OperatorPaymentRoutesOptions {
  now: () => Date;
  tokens: OperatorTokenConfig;
}

const PaymentIdPath = z.object({
  id: z.uuid({ error: "expected a payment id (UUID)" }).meta({ param: { name: "id", in: "path" } }),
});
const WalletPath = z.object({
  site: z.string().meta({ param: { name: "site", in: "path" } }),
  member: z.string().meta({ param: { name: "member", in: "path" } }),
});
const ItemPath = z.object({
  site: z.string().meta({ param: { name: "site", in: "path" } }),
  item: PriceListItemSchema.shape.id.meta({ param: { name: "item", in: "path" } }),
});
const SiteQuery = z.object({ site: z.string().meta({ description: "the site" }) });

export const WalletSchema = z
  .object({
    site: z.string(),
    memberId: z.string(),
    memberName: orNull(z.string()),
    currency: z.string(),
    balance: z.number().int(),
    entries: z.number().int(),
    offlineBlocked: z.boolean(),
    updatedAt: z.string(),
  })
  .meta({ id: "Wallet" });
export const LedgerEntrySchema = z
  .object({
    id: z.uuid(),
    site: z.string(),
    memberId: z.string(),
    n: z.number().int().meta({ description: "position in the wallet: 1, 2, 3, …" }),
    kind: z.enum(LEDGER_KINDS),
    amount: z.number().int(),
    currency: z.string(),
    balanceAfter: z.number().int(),
    origin: z.union([
      z.object({ device: z.string(), seq: orNull(z.number().int()) }),
      z.object({ operator: z.string() }),
    ]),
    authorization: orNull(z.enum(["online", "offline"])),
    itemId: orNull(z.string()),
    refundOf: orNull(z.string()),
    note: orNull(z.string()),
    at: z.string(),
    recordedAt: z.string(),
  })
  .meta({ id: "LedgerEntry" });
const PaymentWithRefundsSchema = z
  .object({
    payment: LedgerEntrySchema,
    refunds: z.array(LedgerEntrySchema),
    refunded: z.number().int(),
    refundable: z.number().int().meta({ description: "what is left to refund, minor units" }),
  })
  .meta({ id: "PaymentWithRefunds" });
const SiteExposureSchema = z
  .object({
    site: z.string(),
    kiosks: z.array(
      z.object({
        device: z.string(),
        state: z.enum(["online", "offline", "unknown"]),
        payments: orNull(ExposureSchema.extend({ at: z.string() })),
      }),
    ),
    totals: z.array(
      z.object({ currency: CurrencySchema, offlineExposure: z.number().int(), offlinePayments: z.number().int() }),
    ),
  })
  .meta({ id: "SiteExposure" });
const ItemAnswer = z
  .object({ id: z.string(), name: z.string(), price: z.number().int(), active: z.boolean() })
  .meta({ id: "Item" });
const money = ["money"];

export function operatorPaymentRoutes(
  service: PaymentService,
  o: OperatorPaymentRoutesOptions,
): OpenAPIHono<OperatorEnv> {
  const app = apiApp();
  const moneyRead = () => secured(o.tokens, "money:read", "get");
  const moneyWrite = () => secured(o.tokens, "money:write", "post");

  // ---- reads ---------------------------------------------------------------

  const wallets = defineRoute(moneyRead(), {
    method: "get",
    path: "/api/v1/wallets",
    tags: money,
    summary: "A site's wallets, by member id",
    request: { query: PageQuery.extend(SiteQuery.shape) },
    responses: { 200: json(pageOf(WalletSchema, "Wallet"), "A page of wallets") },
  });
  register(app, wallets, async (c) => {
    const q = { data: c.req.valid("query") };
    const denied = siteDenied(c, q.data.site);
    if (denied) return denied;
    const after = pageAfter(q.data.before, ["text"]);
    if (after instanceof Response) return after;
    const items = await service.wallets(q.data.site, (after?.[0] as string | undefined) ?? null, q.data.limit);
    const last = items.at(-1);
    return c.json({ items, next: items.length === q.data.limit && last ? cursor.encode(last.memberId) : null });
  });

  const wallet = defineRoute(moneyRead(), {
    method: "get",
    path: "/api/v1/wallets/{site}/{member}",
    tags: money,
    summary: "One member's wallet",
    request: { params: WalletPath },
    responses: { 200: json(WalletSchema, "The wallet"), 404: problems[404] },
  });
  register(app, wallet, async (c) => {
    const { site, member } = c.req.valid("param");
    const denied = siteDenied(c, site);
    if (denied) return denied;
    const wallet = await service.wallet(site, member);
    return wallet ? c.json(wallet) : notFound(`no wallet for member ${member} at site ${site}`);
  });

  /** A wallet's entries, newest first, by their position in the wallet. */
  const entries = defineRoute(moneyRead(), {
    method: "get",
    path: "/api/v1/wallets/{site}/{member}/entries",
    tags: money,
    summary: "A wallet's entries, newest first",
    request: { params: WalletPath, query: PageQuery },
    responses: { 200: json(pageOf(LedgerEntrySchema, "LedgerEntry"), "A page of entries") },
  });
  register(app, entries, async (c) => {
    const { site, member } = c.req.valid("param");
    const denied = siteDenied(c, site);
    if (denied) return denied;
    const q = { data: c.req.valid("query") };
    const after = pageAfter(q.data.before, ["int"]);
    if (after instanceof Response) return after;
    const items = await service.walletEntries(site, member, (after?.[0] as number | undefined) ?? null, q.data.limit);
    const last = items.at(-1);
    return c.json({ items, next: items.length === q.data.limit && last ? cursor.encode(last.n) : null });
  });

  /** A site's ledger entries, newest first (all kinds, or `kind`), by an opaque cursor. */
  const LedgerQuery = PageQuery.extend({
    ...SiteQuery.shape,
    kind: z.enum(LEDGER_KINDS).optional().meta({ description: "only entries of this kind" }),
  });
  const ledgerRoute = (path: string, summary: string) =>
    defineRoute(moneyRead(), {
      method: "get",
      path,
      tags: money,
      summary,
      request: { query: LedgerQuery },
      responses: { 200: json(pageOf(LedgerEntrySchema, "LedgerEntry"), "A page of entries") },
    });
  const ledger = ledgerRoute("/api/v1/ledger", "A site's ledger entries, newest first (all kinds, or `kind`)");
  const payments = ledgerRoute("/api/v1/payments", "A site's payments (purchases), newest first");
  const ledgerPage = (fixedKind?: "purchase") => async (c: RouteContext<typeof ledger>) => {
    const q = { data: c.req.valid("query") };
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
  register(app, ledger, ledgerPage());
  /** Payments (purchases) of a site, newest first; `GET /api/v1/payments/{id}` shows one with its refunds. */
  register(app, payments, ledgerPage("purchase"));

  const payment = defineRoute(moneyRead(), {
    method: "get",
    path: "/api/v1/payments/{id}",
    tags: money,
    summary: "One payment with its refunds",
    request: { params: PaymentIdPath },
    responses: { 200: json(PaymentWithRefundsSchema, "The payment"), 404: problems[404] },
  });
  register(app, payment, async (c) => {
    const { id } = c.req.valid("param");
    const found = await service.payment(id);
    if (!found) return notFound(`no payment ${id}`);
    const denied = siteDenied(c, found.payment.site);
    return denied ?? c.json(found);
  });

  /** Offline exposure per kiosk (from its latest telemetry) and per site, by currency. */
  const exposure = defineRoute(moneyRead(), {
    method: "get",
    path: "/api/v1/exposure",
    tags: money,
    summary: "Offline exposure per kiosk (from its latest telemetry) and per site, by currency",
    request: { query: SiteQuery },
    responses: { 200: json(SiteExposureSchema, "The exposure") },
  });
  register(app, exposure, async (c) => {
    const q = { data: c.req.valid("query") };
    const denied = siteDenied(c, q.data.site);
    if (denied) return denied;
    return c.json(await service.exposure(q.data.site));
  });

  /** The price list (a venue admin's): kiosks get it with their next wallet sync. */
  const items = defineRoute(moneyRead(), {
    method: "get",
    path: "/api/v1/sites/{site}/items",
    tags: money,
    summary: "The site's price list",
    request: { params: SitePath },
    responses: { 200: json(listOf(ItemAnswer, "Item"), "The items") },
  });
  register(app, items, async (c) => {
    const { site } = c.req.valid("param");
    const denied = siteDenied(c, site);
    if (denied) return denied;
    return c.json({ items: await service.items(site) });
  });

  // ---- writes --------------------------------------------------------------

  const putItem = defineRoute(secured(o.tokens, "admin", "put"), {
    method: "put",
    path: "/api/v1/sites/{site}/items/{item}",
    tags: money,
    summary: "Add or change an item of the price list (kiosks get it with their next wallet sync)",
    request: { params: ItemPath, body: jsonRequest(ItemSchema) },
    responses: { 200: json(ItemAnswer, "The item as stored"), 404: problems[404] },
  });
  register(app, putItem, async (c) => {
    const { site, item } = c.req.valid("param");
    const denied = siteDenied(c, site);
    if (denied) return denied;
    const body = c.req.valid("json");
    const stored = await service.putItem(site, { id: item, ...body });
    return stored ? c.json(stored) : notFound(`no site ${site}`);
  });

  /** The site's offline limits (minor units of its currency); kiosks get them with their next wallet sync. */
  const limits = defineRoute(secured(o.tokens, "admin", "put"), {
    method: "put",
    path: "/api/v1/sites/{site}/offline-limits",
    tags: money,
    summary: "The site's offline limits, minor units (kiosks get them with their next wallet sync)",
    request: { params: SitePath, body: jsonRequest(OfflineLimitsSchema.strict()) },
    responses: { 200: json(OfflineLimitsSchema.required(), "The limits as stored"), 404: problems[404] },
  });
  register(app, limits, async (c) => {
    const { site } = c.req.valid("param");
    const denied = siteDenied(c, site);
    if (denied) return denied;
    const body = c.req.valid("json");
    const stored = await service.putOfflineLimits(site, body);
    return stored ? c.json(stored) : notFound(`no site ${site}`);
  });

  /** An operator's credit or correction to one wallet: a top-up or an adjustment (money:write). */
  const written = {
    201: json(LedgerEntrySchema, "The entry written (or the first answer again: Idempotent-Replayed: true)"),
    404: problems[404],
    409: problems[409],
    422: problems[422],
  } satisfies RouteConfig["responses"];
  const walletWrite = (kind: WalletCredit["kind"], schema: typeof TopupSchema | typeof AdjustmentSchema) => {
    const route = defineRoute(moneyWrite(), {
      method: "post",
      path: `/api/v1/wallets/{site}/{member}/${kind}s`,
      tags: money,
      summary:
        kind === "topup" ? "Credit a wallet (an operator's top-up)" : "Correct a wallet (signed amount, a reason)",
      request: { params: WalletPath, headers: IdempotencyHeader, body: jsonRequest(schema) },
      responses: written,
    });
    register(app, route, async (c) => {
      const { site, member } = c.req.valid("param");
      const denied = siteDenied(c, site);
      if (denied) return denied;
      const key = c.req.valid("header")["idempotency-key"];
      const body = c.req.valid("json");
      const request = { operator: c.var.operator.sub, key, now: o.now() };
      return answer(await service.credit({ kind, site, member, ...body }, request), key);
    });
  };
  walletWrite("topup", TopupSchema);
  walletWrite("adjustment", AdjustmentSchema);

  const refund = defineRoute(moneyWrite(), {
    method: "post",
    path: "/api/v1/payments/{id}/refunds",
    tags: money,
    summary: "Refund a payment, wholly or in part",
    request: { params: PaymentIdPath, headers: IdempotencyHeader, body: jsonRequest(RefundSchema) },
    responses: written,
  });
  register(app, refund, async (c) => {
    const { id } = c.req.valid("param");
    const key = c.req.valid("header")["idempotency-key"];
    const body = c.req.valid("json");
    const found = await service.payment(id);
    if (!found) return notFound(`no payment ${id}`);
    const denied = siteDenied(c, found.payment.site);
    if (denied) return denied;
    // The route names no site: the audit row takes the payment's, so that site's admin sees the refund.
    c.set("audit", { site: found.payment.site });
    const amount = body.amount ?? found.refundable;
    if (amount <= 0) {
      return problemResponse({ title: "Nothing to refund", status: 409, detail: `payment ${id} is fully refunded` });
    }
    const request = { operator: c.var.operator.sub, key, now: o.now() };
    return answer(await service.refund(found, { id, amount, reason: body.reason }, request), key);
  });

  return app;
}
