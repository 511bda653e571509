/**
 * Payments and wallets: the journal entries that carry money, the online
 * authorization API a kiosk calls, and the wallet replica it authorizes
 * against while offline. Amounts are integer minor units with a currency.
 *
 * A payment's identity is its `key` (a UUID the kiosk wrote to its journal
 * before the first attempt). The cloud's ledger holds at most one entry per
 * (kiosk, key), whichever way it arrives: online authorization, its retries,
 * or the journal entry that follows it (or replaces it when the kiosk
 * authorized offline).
 */
import { z } from "zod";
import { AmountSchema, CurrencySchema, SignedAmountSchema } from "./money.ts";

const isoTime = z.iso.datetime({ offset: true });
const memberId = z.string().min(1).max(128);
const itemId = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, { error: "expected an item id like coffee or day-pass" });

export const AUTHORIZATIONS = ["online", "offline"] as const;
export type Authorization = (typeof AUTHORIZATIONS)[number];

/** Journal entry `payment`: a purchase the kiosk approved (online or offline) and told the user about. */
export const PaymentBodySchema = z.object({
  key: z.uuid(),
  memberId,
  amount: AmountSchema,
  currency: CurrencySchema,
  itemId: itemId.nullable(),
  authorization: z.enum(AUTHORIZATIONS),
  /** The wallet replica version an offline decision rested on. */
  walletVersion: z.number().int().min(0),
});
export type PaymentBody = z.infer<typeof PaymentBodySchema>;

/**
 * Journal entry `topup`: money a payment terminal took from an open-loop card
 * and that goes onto a member's wallet. The terminal's reference identifies
 * the card transaction; no card number ever reaches PayLane.
 */
export const TopupBodySchema = z.object({
  key: z.uuid(),
  memberId,
  amount: AmountSchema,
  currency: CurrencySchema,
  terminal: z.object({
    reference: z.string().min(1).max(64),
    approvalCode: z.string().max(16).optional(),
    /** e.g. "VISA •••• 4242": what a receipt may show of the card, never more. */
    cardLabel: z.string().max(32).optional(),
  }),
  /**
   * "online" (or absent): charged against an intent the cloud issued. "offline":
   * charged while the kiosk could not get one, within the site's offline top-up
   * cap; the cloud holds it pending and credits it only once the terminal's
   * end-of-day settlement (`terminal-settlement`) accounts for it.
   */
  authorization: z.enum(AUTHORIZATIONS).optional(),
});
export type TopupBody = z.infer<typeof TopupBodySchema>;

/**
 * Journal entry `terminal-settlement`: the payment terminal's end-of-day
 * (ZVT 06 50) totals, and the terminal references of the top-ups this kiosk
 * journaled in the period it closes. The cloud credits the period's pending
 * offline top-ups only when these totals equal what the kiosk's journaled
 * top-ups add up to.
 */
export const TerminalSettlementBodySchema = z.object({
  /** The site-local day the settlement was run on (YYYY-MM-DD). */
  day: z.string().regex(/^\d{4}-\d{2}-\d{2}$/, { error: "expected a site-local day like 2026-12-04" }),
  /** The journal seqs the period covers: top-ups journaled after `fromSeq` up to `toSeq`. */
  period: z.object({ fromSeq: z.number().int().min(0), toSeq: z.number().int().min(0) }),
  /** What the terminal reports it took in the period, minor units. */
  total: z.number().int().min(0).max(10_000_000_000),
  /** How many card payments the terminal reports in the period. */
  count: z.number().int().min(0).max(100_000),
  currency: CurrencySchema,
  /** The terminal references of the top-ups this kiosk journaled in the period. */
  references: z.array(z.string().min(1).max(64)).max(10_000),
  /** The terminal's own identification of the batch, for ops comparing it with the acquirer's statement. */
  terminal: z
    .object({
      traceNumber: z.string().max(16).optional(),
      receiptFrom: z.string().max(8).optional(),
      receiptTo: z.string().max(8).optional(),
    })
    .optional(),
});
export type TerminalSettlementBody = z.infer<typeof TerminalSettlementBodySchema>;

/**
 * `POST /api/v1/topups/intents` (device credentials): before it charges a
 * bank card for a top-up, the kiosk asks the cloud for an intent under the
 * top-up's key. A journaled `topup` credits the wallet only against an open
 * intent of the same kiosk, member, amount and currency, once; anything else
 * (e.g. a top-up published with stolen kiosk credentials) credits nothing
 * and is held as a ledger exception for ops.
 */
export const TopupIntentRequestSchema = z.strictObject({
  key: z.uuid({ error: "key: expected the top-up's idempotency key, a UUID" }),
  memberId,
  amount: AmountSchema,
  currency: CurrencySchema,
});
export type TopupIntentRequest = z.infer<typeof TopupIntentRequestSchema>;

export const TopupIntentResponseSchema = z.discriminatedUnion("status", [
  z.object({ status: z.literal("open"), key: z.uuid(), memberId, amount: AmountSchema, currency: CurrencySchema }),
  z.object({
    status: z.literal("refused"),
    key: z.uuid(),
    reason: z.enum(["unknown-member", "member-revoked", "currency-mismatch"]),
    message: z.string(),
  }),
]);
export type TopupIntentResponse = z.infer<typeof TopupIntentResponseSchema>;

/** `POST /api/v1/payments` (device credentials): authorize a purchase online. */
export const PaymentRequestSchema = z.strictObject({
  key: z.uuid({ error: "key: expected the payment's idempotency key, a UUID" }),
  memberId,
  amount: AmountSchema,
  currency: CurrencySchema,
  itemId: itemId.nullable().default(null),
  /** Device time of the attempt (the ledger's business time). */
  at: isoTime,
});
export type PaymentRequest = z.infer<typeof PaymentRequestSchema>;

export const DECLINE_REASONS = [
  "insufficient-funds",
  "unknown-member",
  "member-revoked",
  "currency-mismatch",
  "unknown-item",
  "price-mismatch",
  /** The kiosk gave the payment up (it crashed before any answer) before the cloud decided it. */
  "voided",
] as const;
export type DeclineReason = (typeof DECLINE_REASONS)[number];

/** The answer to an authorization: stored for its key, and given again for every retry of it. */
export const PaymentResponseSchema = z.discriminatedUnion("status", [
  z.object({
    status: z.literal("approved"),
    key: z.uuid(),
    /** The ledger entry. */
    paymentId: z.uuid(),
    memberId,
    amount: AmountSchema,
    currency: CurrencySchema,
    /** The wallet's balance right after this payment. */
    balance: SignedAmountSchema,
    at: isoTime,
  }),
  z.object({
    status: z.literal("declined"),
    key: z.uuid(),
    reason: z.enum(DECLINE_REASONS),
    message: z.string(),
    memberId,
    amount: AmountSchema,
    currency: CurrencySchema,
    balance: SignedAmountSchema.nullable(),
  }),
]);
export type PaymentResponse = z.infer<typeof PaymentResponseSchema>;

/** The site's offline authorization limits, minor units of the site currency. */
export const OfflineLimitsSchema = z.object({
  /** The largest single payment a kiosk may approve offline. */
  perPayment: z.number().int().min(0),
  /** What one card may spend offline at one kiosk per site-local day. */
  perCardDaily: z.number().int().min(0),
  /** What one kiosk may have approved offline and not yet reconciled, in total. */
  kioskExposure: z.number().int().min(0),
  /**
   * What one kiosk may take in card top-ups while it cannot get an intent from
   * the cloud, per site-local day; 0 (the default) turns offline top-ups off.
   */
  topupDaily: z.number().int().min(0).optional(),
});
export type OfflineLimits = z.infer<typeof OfflineLimitsSchema>;

export const PriceListItemSchema = z.object({ id: itemId, name: z.string().min(1).max(80), price: AmountSchema });
export type PriceListItem = z.infer<typeof PriceListItemSchema>;

export const ReplicaWalletSchema = z.object({
  memberId,
  balance: SignedAmountSchema,
  /** An offline payment overdrew this wallet: no more offline spending until it is settled. */
  offlineBlocked: z.boolean(),
});
export type ReplicaWallet = z.infer<typeof ReplicaWalletSchema>;

/**
 * `GET /api/v1/sites/{site}/wallets?since=V` (device credentials): the site's
 * currency, offline limits and price list (always whole: they are small) and
 * its wallets, whole (`full: true`) or those changed after V.
 */
export const WalletSyncSchema = z.object({
  site: z.string(),
  full: z.boolean(),
  /** Opaque to the kiosk: it sends it back as `since`. */
  version: z.number().int().min(0),
  currency: CurrencySchema,
  limits: OfflineLimitsSchema,
  items: z.array(PriceListItemSchema),
  wallets: z.array(ReplicaWalletSchema),
  /**
   * The asking kiosk's acked seq when the balances were read: its payments up
   * to this seq are in them; later ones are its "unsynced spend".
   */
  appliedUpTo: z.number().int().min(0),
});
export type WalletSync = z.infer<typeof WalletSyncSchema>;

/** Telemetry `payments`: what the kiosk approved offline and the cloud has not yet reconciled. */
export const ExposureSchema = z.object({
  currency: CurrencySchema,
  /** Sum of unreconciled offline payments, minor units. */
  offlineExposure: z.number().int().min(0),
  offlinePayments: z.number().int().min(0),
  /** The site's per-kiosk cap it counts against. */
  cap: z.number().int().min(0),
});
export type Exposure = z.infer<typeof ExposureSchema>;
