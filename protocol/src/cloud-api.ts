/**
 * The device→cloud HTTP contract: every call a kiosk makes to the cloud's
 * API with its own credentials, in one table both sides import. The
 * device's CloudClient builds requests and validates answers from it; the
 * cloud mounts its handlers on the same paths (Hono's `:param` templates)
 * and validates with the same schemas.
 *
 * Payment bodies are the ones in payments.ts, member sync in replica.ts,
 * stream ranges in messages.ts: this file only says which call uses which.
 */
import { z } from "zod";
import { StreamEntriesQuerySchema, StreamEntriesSchema } from "./messages.ts";
import {
  PaymentRequestSchema,
  PaymentResponseSchema,
  TopupIntentRequestSchema,
  TopupIntentResponseSchema,
  WalletSyncSchema,
} from "./payments.ts";
import { MemberSyncSchema } from "./replica.ts";

export interface CloudRoute<
  Path extends string = string,
  Query extends z.ZodType | undefined = z.ZodType | undefined,
  Body extends z.ZodType | undefined = z.ZodType | undefined,
  Answer extends z.ZodType = z.ZodType,
> {
  method: "GET" | "POST";
  /** A Hono path template: `:name` segments are filled from the call's params. */
  path: Path;
  query: Query;
  body: Body;
  /** What a 2xx answer carries. */
  answer: Answer;
}

function route<
  Path extends string,
  Query extends z.ZodType | undefined,
  Body extends z.ZodType | undefined,
  Answer extends z.ZodType,
>(r: CloudRoute<Path, Query, Body, Answer>): CloudRoute<Path, Query, Body, Answer> {
  return r;
}

/** `?since=V`: the replica version the kiosk holds; absent for a full snapshot. */
export const SinceQuerySchema = z.object({
  since: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
});

/** `GET …/devices/{device}/stream`: the cloud's contiguous acked seq for the device (its mark). */
export const StreamMarkSchema = z.object({
  site: z.string(),
  device: z.string(),
  ackedSeq: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
});
export type StreamMark = z.infer<typeof StreamMarkSchema>;

export const cloudApi = {
  /** The site's members: a full snapshot, or a delta on top of `since`. */
  members: route({
    method: "GET",
    path: "/api/v1/sites/:site/members",
    query: SinceQuerySchema,
    body: undefined,
    answer: MemberSyncSchema,
  }),
  /** The site's wallets, price list and offline limits (kiosks that take payments). */
  wallets: route({
    method: "GET",
    path: "/api/v1/sites/:site/wallets",
    query: SinceQuerySchema,
    body: undefined,
    answer: WalletSyncSchema,
  }),
  /** The device's stream as the cloud holds it: its acked seq. */
  streamMark: route({
    method: "GET",
    path: "/api/v1/sites/:site/devices/:device/stream",
    query: undefined,
    body: undefined,
    answer: StreamMarkSchema,
  }),
  /** The entry ids the cloud holds at a range of the device's seqs. */
  streamEntries: route({
    method: "GET",
    path: "/api/v1/sites/:site/devices/:device/stream/entries",
    query: StreamEntriesQuerySchema,
    body: undefined,
    answer: StreamEntriesSchema,
  }),
  /** Authorise a purchase under its idempotency key (the same key again: the same answer). */
  authorizePayment: route({
    method: "POST",
    path: "/api/v1/payments",
    query: undefined,
    body: PaymentRequestSchema,
    answer: PaymentResponseSchema,
  }),
  /** Settle a payment a crash left unresolved: its answer if it has one, else a void under its key. */
  voidPayment: route({
    method: "POST",
    path: "/api/v1/payments/void",
    query: undefined,
    body: PaymentRequestSchema,
    answer: PaymentResponseSchema,
  }),
  /** The intent a top-up needs before any card is charged. */
  topupIntent: route({
    method: "POST",
    path: "/api/v1/topups/intents",
    query: undefined,
    body: TopupIntentRequestSchema,
    answer: TopupIntentResponseSchema,
  }),
} as const;

export type CloudApi = typeof cloudApi;
export type CloudRouteName = keyof CloudApi;

/** The `:name` segments of a path template, as an object type. */
export type PathParams<P extends string> = P extends `${string}:${infer Name}/${infer Rest}`
  ? { [K in Name]: string } & PathParams<`/${Rest}`>
  : P extends `${string}:${infer Name}`
    ? { [K in Name]: string }
    : Record<never, never>;

/** Fills a path template's `:name` segments, each URI-encoded; a missing one throws (a bug, not bad input). */
export function cloudPath<P extends string>(template: P, params: PathParams<P>): string {
  const values = params as Record<string, string>;
  return template.replace(/:([A-Za-z]+)/g, (_, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`${template}: no value for :${name}`);
    return encodeURIComponent(value);
  });
}
