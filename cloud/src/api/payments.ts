/**
 * Money routes. For kiosks (device credentials): online authorization and
 * the wallet replica. For operators (JWT, see auth.ts): wallets, the ledger,
 * payments, refunds, top-ups, adjustments and offline exposure.
 *
 * Every write takes an idempotency key (the kiosk's payment key, or the
 * operator's `Idempotency-Key` header): a retry gets the first answer again,
 * marked `Idempotent-Replayed: true`, and changes nothing.
 */
import {
  AmountSchema,
  CurrencySchema,
  OfflineLimitsSchema,
  PaymentRequestSchema,
  PriceListItemSchema,
  problemResponse,
  type Registry,
} from "@paylane/protocol";
import { type Context, Hono } from "hono";
import { Counter, type Registry as MetricsRegistry } from "prom-client";
import { z } from "zod";
import type { Database, Queryable } from "../db/database.ts";
import { authorizePayment, voidPayment } from "../ledger/authorize.ts";
import { type IdempotentOutcome, requestHash, type StoredAnswer, withIdempotency } from "../ledger/idempotency.ts";
import {
  getWallet,
  LEDGER_COLUMNS,
  LEDGER_KINDS,
  LedgerRefusal,
  type LedgerRow,
  operatorRequestKey,
  type Posted,
  post,
  toEntry,
  toWallet,
  type WalletRow,
} from "../ledger/ledger.ts";
import { walletSync } from "../ledger/wallet-sync.ts";
import type { PresenceStore } from "../presence/presence-store.ts";
import { anyDevice, deviceOnly, type OperatorEnv, type OperatorTokenConfig, operatorAuth, siteDenied } from "./auth.ts";
import { badRequest, cursor, jsonBody, notFound, pageAfter, queryError, sinceParam } from "./http.ts";

export interface PaymentRoutesOptions {
  db: Database;
  presence: PresenceStore;
  registry: () => Registry;
  now: () => Date;
  /** Verifies operator tokens; no secret: the operator routes answer 503. */
  tokens: OperatorTokenConfig;
  metrics: MetricsRegistry;
}

const IDEMPOTENCY_KEY = /^[A-Za-z0-9_-]{8,128}$/;

const PageQuery = z.object({
  limit: z.coerce.number().int().min(1).max(500).default(50),
  before: z.string().optional(),
});

const TopupSchema = z.strictObject({
  amount: AmountSchema,
  currency: CurrencySchema,
  note: z.string().max(500).optional(),
});
const AdjustmentSchema = z.strictObject({
  amount: z
    .number()
    .int({ error: "expected an integer number of minor units" })
    .refine((n) => n !== 0 && Math.abs(n) <= 10_000_000_000, { error: "expected a non-zero amount up to 10^10" }),
  currency: CurrencySchema,
  note: z.string().min(3, { error: "say why (at least 3 characters)" }).max(500),
});
const ItemSchema = z.strictObject({
  name: z.string().min(1).max(80),
  price: AmountSchema,
  active: z.boolean().default(true),
});
const RefundSchema = z.strictObject({
  /** Default: what is left to refund of the payment. */
  amount: AmountSchema.optional(),
  reason: z.string().min(3, { error: "say why (at least 3 characters)" }).max(500),
});

export function paymentRoutes(o: PaymentRoutesOptions): Hono<OperatorEnv> {
  const app = new Hono<OperatorEnv>();
  const viewer = operatorAuth(o.tokens, "viewer");
  const operator = operatorAuth(o.tokens, "operator");
  const admin = operatorAuth(o.tokens, "admin");
  const authorizations = new Counter({
    name: "paylane_cloud_payment_authorizations_total",
    help: "Online authorizations by answer: approved, declined (with reason), replayed, key-mismatch",
    labelNames: ["answer", "reason"],
    registers: [o.metrics],
  });

  // ---- kiosks --------------------------------------------------------------

  app.post("/api/v1/payments", async (c) => {
    const caller = await anyDevice(c.req.header("authorization"), o.registry());
    if (caller instanceof Response) return caller;
    const request = await jsonBody(c.req.raw, PaymentRequestSchema);
    if (request instanceof Response) return request;
    const outcome = await authorizePayment(o.db, { ...caller, request, now: o.now() });
    if (outcome.kind === "mismatch") authorizations.inc({ answer: "key-mismatch", reason: "" });
    else if (outcome.kind === "replayed") authorizations.inc({ answer: "replayed", reason: "" });
    else
      authorizations.inc({
        answer: outcome.body.status,
        reason: outcome.body.status === "declined" ? outcome.body.reason : "",
      });
    return answer(outcome, request.key);
  });

  /** A kiosk that lost track of a payment (a crash before any answer): its answer, or a void that stands for it. */
  app.post("/api/v1/payments/void", async (c) => {
    const caller = await anyDevice(c.req.header("authorization"), o.registry());
    if (caller instanceof Response) return caller;
    const request = await jsonBody(c.req.raw, PaymentRequestSchema);
    if (request instanceof Response) return request;
    return answer(await voidPayment(o.db, { ...caller, request, now: o.now() }), request.key);
  });

  app.get("/api/v1/sites/:site/wallets", async (c) => {
    const site = c.req.param("site");
    const caller = await deviceOnly(c.req.header("authorization"), o.registry(), site);
    if (caller instanceof Response) return caller;
    const since = sinceParam(c.req.query("since"), "wallet");
    if (since instanceof Response) return since;
    const sync = await walletSync(o.db, site, caller.device, since);
    return sync ? c.json(sync) : notFound(`no site ${site}`);
  });

  // ---- operators: reads ----------------------------------------------------

  app.get("/api/v1/wallets", viewer, async (c) => {
    const q = PageQuery.extend({ site: z.string() }).safeParse(c.req.query());
    if (!q.success) return queryError(q.error);
    const denied = siteDenied(c, q.data.site);
    if (denied) return denied;
    const after = pageAfter(q.data.before, ["text"]);
    if (after instanceof Response) return after;
    const { rows } = await o.db.query<WalletRow>(
      `SELECT w.site_id, w.member_id, m.name AS member_name, w.currency, w.balance, w.entries, w.offline_blocked, w.updated_at
       FROM wallets w JOIN members m ON m.site_id = w.site_id AND m.id = w.member_id
       WHERE w.site_id = $1 AND ($2::text IS NULL OR w.member_id > $2) ORDER BY w.member_id LIMIT $3`,
      [q.data.site, after?.[0] ?? null, q.data.limit],
    );
    const items = rows.map(toWallet);
    const last = items.at(-1);
    return c.json({ items, next: items.length === q.data.limit && last ? cursor.encode(last.memberId) : null });
  });

  app.get("/api/v1/wallets/:site/:member", viewer, async (c) => {
    const { site, member } = c.req.param();
    const denied = siteDenied(c, site);
    if (denied) return denied;
    const wallet = await getWallet(o.db, site, member);
    return wallet ? c.json(wallet) : notFound(`no wallet for member ${member} at site ${site}`);
  });

  /** A wallet's entries, newest first, by their position in the wallet. */
  app.get("/api/v1/wallets/:site/:member/entries", viewer, async (c) => {
    const { site, member } = c.req.param();
    const denied = siteDenied(c, site);
    if (denied) return denied;
    const q = PageQuery.safeParse(c.req.query());
    if (!q.success) return queryError(q.error);
    const after = pageAfter(q.data.before, ["int"]);
    if (after instanceof Response) return after;
    const { rows } = await o.db.query<LedgerRow>(
      `SELECT ${LEDGER_COLUMNS} FROM ledger_entries
       WHERE site_id = $1 AND member_id = $2 AND ($3::bigint IS NULL OR n < $3) ORDER BY n DESC LIMIT $4`,
      [site, member, after?.[0] ?? null, q.data.limit],
    );
    const items = rows.map(toEntry);
    const last = items.at(-1);
    return c.json({ items, next: items.length === q.data.limit && last ? cursor.encode(last.n) : null });
  });

  /** A site's ledger entries, newest first (all kinds, or `kind`), by an opaque cursor. */
  const ledgerPage = (fixedKind?: "purchase") => async (c: Context<OperatorEnv>) => {
    const q = PageQuery.extend({
      site: z.string(),
      kind: z.enum(LEDGER_KINDS).optional(),
    }).safeParse(c.req.query());
    if (!q.success) return queryError(q.error);
    const denied = siteDenied(c, q.data.site);
    if (denied) return denied;
    const after = pageAfter(q.data.before, ["timestamp", "uuid"]);
    if (after instanceof Response) return after;
    const { rows } = await o.db.query<LedgerRow>(
      `SELECT ${LEDGER_COLUMNS} FROM ledger_entries
       WHERE site_id = $1 AND ($2::text IS NULL OR kind = $2)
         AND ($3::timestamptz IS NULL OR (recorded_at, id) < ($3::timestamptz, $4::uuid))
       ORDER BY recorded_at DESC, id DESC LIMIT $5`,
      [q.data.site, fixedKind ?? q.data.kind ?? null, after?.[0] ?? null, after?.[1] ?? null, q.data.limit],
    );
    const items = rows.map(toEntry);
    const last = items.at(-1);
    return c.json({
      items,
      next: items.length === q.data.limit && last ? cursor.encode(last.recordedAt, last.id) : null,
    });
  };
  app.get("/api/v1/ledger", viewer, ledgerPage());
  /** Payments (purchases) of a site, newest first; `GET /api/v1/payments/{id}` shows one with its refunds. */
  app.get("/api/v1/payments", viewer, ledgerPage("purchase"));

  /** One payment with its refunds. */
  app.get("/api/v1/payments/:id", viewer, async (c) => {
    const id = c.req.param("id");
    if (!z.uuid().safeParse(id).success) return badRequest("id: expected a payment id (UUID)");
    const found = await paymentWithRefunds(id);
    if (!found) return notFound(`no payment ${id}`);
    const denied = siteDenied(c, found.payment.site);
    return denied ?? c.json(found);
  });

  /** Offline exposure per kiosk (from its latest telemetry) and per site, by currency. */
  app.get("/api/v1/exposure", viewer, async (c) => {
    const q = z.object({ site: z.string() }).safeParse(c.req.query());
    if (!q.success) return queryError(q.error);
    const denied = siteDenied(c, q.data.site);
    if (denied) return denied;
    const { rows } = await o.db.query<{ id: string }>("SELECT id FROM devices WHERE site_id = $1 ORDER BY id", [
      q.data.site,
    ]);
    const presence = await o.presence.get(rows.map((r) => ({ site: q.data.site, device: r.id })));
    const kiosks = presence.map((p) => ({ device: p.device, state: p.state, payments: p.payments }));
    const totals = new Map<string, { currency: string; offlineExposure: number; offlinePayments: number }>();
    for (const { payments: e } of kiosks) {
      if (!e) continue;
      const t = totals.get(e.currency) ?? { currency: e.currency, offlineExposure: 0, offlinePayments: 0 };
      t.offlineExposure += e.offlineExposure;
      t.offlinePayments += e.offlinePayments;
      totals.set(e.currency, t);
    }
    return c.json({ site: q.data.site, kiosks, totals: [...totals.values()] });
  });

  // ---- operators: writes ---------------------------------------------------

  /** The price list (a venue admin's): kiosks get it with their next wallet sync. */
  app.get("/api/v1/sites/:site/items", viewer, async (c) => {
    const site = c.req.param("site");
    const denied = siteDenied(c, site);
    if (denied) return denied;
    const { rows } = await o.db.query<{ id: string; name: string; price: number; active: boolean }>(
      "SELECT id, name, price, active FROM items WHERE site_id = $1 ORDER BY id",
      [site],
    );
    return c.json({ items: rows });
  });

  app.put("/api/v1/sites/:site/items/:item", admin, async (c) => {
    const { site, item } = c.req.param();
    const denied = siteDenied(c, site);
    if (denied) return denied;
    if (!PriceListItemSchema.shape.id.safeParse(item).success)
      return badRequest("item: expected an item id like coffee or day-pass");
    const body = await jsonBody(c.req.raw, ItemSchema);
    if (body instanceof Response) return body;
    const { rows } = await o.db.query<{ id: string; name: string; price: number; active: boolean }>(
      `INSERT INTO items (site_id, id, name, price, active) SELECT s.id, $2, $3, $4, $5 FROM sites s WHERE s.id = $1
       ON CONFLICT (site_id, id) DO UPDATE SET name = $3, price = $4, active = $5
       RETURNING id, name, price, active`,
      [site, item, body.name, body.price, body.active],
    );
    return rows[0] ? c.json(rows[0]) : notFound(`no site ${site}`);
  });

  /** The site's offline limits (minor units of its currency); kiosks get them with their next wallet sync. */
  app.put("/api/v1/sites/:site/offline-limits", admin, async (c) => {
    const site = c.req.param("site");
    const denied = siteDenied(c, site);
    if (denied) return denied;
    const body = await jsonBody(c.req.raw, OfflineLimitsSchema.strict());
    if (body instanceof Response) return body;
    // topupDaily (the offline top-up cap, 0 = off) is left as it is when the body does not name it
    const { rows } = await o.db.query<{ topup_daily: number }>(
      `UPDATE sites SET offline_per_payment = $2, offline_per_card_daily = $3, offline_kiosk_exposure = $4,
         offline_topup_daily_cap = coalesce($5, offline_topup_daily_cap)
       WHERE id = $1 RETURNING offline_topup_daily_cap AS topup_daily`,
      [site, body.perPayment, body.perCardDaily, body.kioskExposure, body.topupDaily ?? null],
    );
    return rows[0] ? c.json({ ...body, topupDaily: Number(rows[0].topup_daily) }) : notFound(`no site ${site}`);
  });

  /** An operator's credit or correction to one wallet: a top-up (operator) or an adjustment (admin). */
  const walletWrite =
    (kind: "topup" | "adjustment", schema: typeof TopupSchema | typeof AdjustmentSchema) =>
    async (c: Context<OperatorEnv>) => {
      const { site, member } = c.req.param() as { site: string; member: string };
      const denied = siteDenied(c, site);
      if (denied) return denied;
      const key = idempotencyKey(c.req.header("idempotency-key"));
      if (key instanceof Response) return key;
      const body = await jsonBody(c.req.raw, schema);
      if (body instanceof Response) return body;
      const sub = c.var.operator.sub;
      const now = o.now();
      const outcome = await operatorWrite(site, sub, key, now, { op: kind, member, ...body }, (tx) =>
        post(tx, {
          site,
          memberId: member,
          kind,
          amount: body.amount,
          currency: body.currency,
          requestKey: operatorRequestKey(sub, key),
          origin: { operator: sub },
          note: body.note,
          at: now,
          recordedAt: now,
        }),
      );
      return answer(outcome, key);
    };
  app.post("/api/v1/wallets/:site/:member/topups", operator, walletWrite("topup", TopupSchema));
  app.post("/api/v1/wallets/:site/:member/adjustments", admin, walletWrite("adjustment", AdjustmentSchema));

  app.post("/api/v1/payments/:id/refunds", operator, async (c) => {
    const id = c.req.param("id");
    if (!z.uuid().safeParse(id).success) return badRequest("id: expected a payment id (UUID)");
    const key = idempotencyKey(c.req.header("idempotency-key"));
    if (key instanceof Response) return key;
    const body = await jsonBody(c.req.raw, RefundSchema);
    if (body instanceof Response) return body;
    const found = await paymentWithRefunds(id);
    if (!found) return notFound(`no payment ${id}`);
    const { payment, refundable } = found;
    const denied = siteDenied(c, payment.site);
    if (denied) return denied;
    const sub = c.var.operator.sub;
    const amount = body.amount ?? refundable;
    if (amount <= 0) {
      return problemResponse({ title: "Nothing to refund", status: 409, detail: `payment ${id} is fully refunded` });
    }
    const now = o.now();
    const outcome = await operatorWrite(payment.site, sub, key, now, { op: "refund", id, amount }, (tx) =>
      post(tx, {
        site: payment.site,
        memberId: payment.memberId,
        kind: "refund",
        amount,
        currency: payment.currency,
        requestKey: operatorRequestKey(sub, key),
        origin: { operator: sub },
        refundOf: id,
        note: body.reason,
        at: now,
        recordedAt: now,
      }),
    );
    return answer(outcome, key);
  });

  /**
   * An operator's ledger write under its Idempotency-Key. The ledger's own
   * refusals (currency, refund too large) are answers too: stored, replayed.
   */
  async function operatorWrite(
    site: string,
    sub: string,
    key: string,
    now: Date,
    params: Record<string, unknown>,
    write: (tx: Queryable) => Promise<Posted>,
  ): Promise<IdempotentOutcome<unknown>> {
    return withIdempotency(
      o.db,
      { site, scope: `operator:${sub}`, key, requestHash: requestHash(params) },
      now,
      async (tx): Promise<StoredAnswer<unknown>> => {
        if (typeof params.member === "string") {
          const known = await tx.query("SELECT 1 FROM members WHERE site_id = $1 AND id = $2", [site, params.member]);
          if (known.rows.length === 0) return problem(404, "Not found", `no member ${params.member} at site ${site}`);
        }
        // A refusal aborts what the function did; the savepoint keeps the transaction usable to store the answer.
        await tx.query("SAVEPOINT ledger_write");
        try {
          const posted = await write(tx);
          const { rows: entry } = await tx.query<LedgerRow>(
            `SELECT ${LEDGER_COLUMNS} FROM ledger_entries WHERE id = $1`,
            [posted.entryId],
          );
          return { status: 201, body: toEntry(entry[0]!) };
        } catch (err) {
          if (!(err instanceof LedgerRefusal)) throw err;
          await tx.query("ROLLBACK TO SAVEPOINT ledger_write");
          const status = err.code === "no-site" ? 404 : err.code === "not-refundable" ? 409 : 422;
          return problem(status, "Refused by the ledger", err.message);
        }
      },
    );
  }

  async function paymentWithRefunds(id: string) {
    const { rows } = await o.db.query<LedgerRow>(
      `SELECT ${LEDGER_COLUMNS} FROM ledger_entries WHERE (id = $1 AND kind = 'purchase') OR refund_of = $1 ORDER BY n`,
      [id],
    );
    const payment = rows.find((r) => r.id === id);
    if (!payment) return undefined;
    const refunds = rows.filter((r) => r.id !== id).map(toEntry);
    const refunded = refunds.reduce((sum, r) => sum + r.amount, 0);
    return { payment: toEntry(payment), refunds, refunded, refundable: -payment.amount - refunded };
  }

  return app;
}

function problem(status: number, title: string, detail: string): StoredAnswer<unknown> {
  return { status, body: { type: "about:blank", title, status, detail } };
}

function idempotencyKey(header: string | undefined): string | Response {
  if (header && IDEMPOTENCY_KEY.test(header)) return header;
  return badRequest(
    header
      ? "Idempotency-Key: expected 8 to 128 letters, digits, - or _ (a UUID is a good choice)"
      : "Idempotency-Key: header required, so that a retry of this write cannot apply it twice",
  );
}

/** The stored (or fresh) answer as HTTP; a key reused with other parameters is refused. */
function answer(outcome: IdempotentOutcome<unknown>, key: string): Response {
  if (outcome.kind === "mismatch") {
    return problemResponse({
      title: "Idempotency key reused",
      status: 422,
      detail: `key ${key} was first used with different parameters; a new request needs a new key`,
    });
  }
  const isProblem = outcome.status >= 400;
  return new Response(JSON.stringify(outcome.body), {
    status: outcome.status,
    headers: {
      "content-type": isProblem ? "application/problem+json" : "application/json",
      ...(outcome.kind === "replayed" ? { "idempotent-replayed": "true" } : {}),
    },
  });
}
