/**
 * What the payment routes share on the HTTP side: the operator bodies they
 * accept, the Idempotency-Key header, and a stored (or fresh) answer as a
 * response.
 */
import { AmountSchema, CurrencySchema, problemResponse } from "@paylane/protocol";
import { z } from "zod";
import type { IdempotentOutcome } from "../ledger/idempotency.ts";
import { PageParams } from "./openapi.ts";

const IDEMPOTENCY_KEY = /^[A-Za-z0-9_-]{8,128}$/;

export const PageQuery = z.object({ limit: PageParams.limit(), before: PageParams.before() });

/** The operator's Idempotency-Key header, documented and checked before the handler runs. */
export const IdempotencyHeader = z.object({
  "idempotency-key": z
    .string({ error: "header required, so that a retry of this write cannot apply it twice" })
    .regex(IDEMPOTENCY_KEY, "expected 8 to 128 letters, digits, - or _ (a UUID is a good choice)")
    .meta({ description: "a retry with the same key answers the first answer again and changes nothing" }),
});

export const TopupSchema = z.strictObject({
  amount: AmountSchema,
  currency: CurrencySchema,
  note: z.string().max(500).optional(),
});
export const AdjustmentSchema = z.strictObject({
  amount: z
    .number()
    .int({ error: "expected an integer number of minor units" })
    .refine((n) => n !== 0 && Math.abs(n) <= 10_000_000_000, { error: "expected a non-zero amount up to 10^10" }),
  currency: CurrencySchema,
  note: z.string().min(3, { error: "say why (at least 3 characters)" }).max(500),
});
export const ItemSchema = z.strictObject({
  name: z.string().min(1).max(80),
  price: AmountSchema,
  active: z.boolean().default(true),
});
export const RefundSchema = z.strictObject({
  /** Default: what is left to refund of the payment. */
  amount: AmountSchema.optional(),
  reason: z.string().min(3, { error: "say why (at least 3 characters)" }).max(500),
});

/** The stored (or fresh) answer as HTTP; a key reused with other parameters is refused. */
export function answer(outcome: IdempotentOutcome<unknown>, key: string): Response {
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
