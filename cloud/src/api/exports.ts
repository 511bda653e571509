/**
 * CSV exports for ops and finance (docs/fleet-console.md):
 *
 *   GET /api/v1/exports/checkins.csv?site&since&until   (fleet:read)  check-ins, oldest first
 *   GET /api/v1/exports/ledger.csv?site&since&until     (money:read)  ledger entries, oldest first
 *
 * Streamed: the table is walked in keyset batches (time, id) as the client
 * reads, so an export of millions of rows holds one batch in memory, never
 * the whole answer. `since` is inclusive, `until` exclusive; both optional.
 *
 * Spreadsheet-safe: a text cell starting with = + - @ (or a tab or CR) is
 * prefixed with ' so a member named "=HYPERLINK(…)" is shown, not run
 * (OWASP "CSV injection"). Amounts are integers in minor units with their
 * currency in its own column: no float, no locale.
 */
import { stringify } from "csv-stringify/sync";
import { Hono } from "hono";
import { z } from "zod";
import type { Queryable } from "../db/database.ts";
import { listingSite, type OperatorEnv, type OperatorTokenConfig, operatorAuth } from "./auth.ts";
import { badRequest, queryError } from "./http.ts";

/** Rows read from the database per step of the stream. */
export const EXPORT_BATCH_ROWS = 1000;

const IsoTime = z.iso.datetime({
  offset: true,
  error: "expected an ISO 8601 time with an offset, e.g. 2026-12-01T00:00:00Z",
});

export const ExportQuerySchema = z.object({
  site: z.string().optional().describe("only this site (required for a token scoped to several sites)"),
  since: IsoTime.optional().describe("from this time (inclusive)"),
  until: IsoTime.optional().describe("up to this time (exclusive)"),
});

export interface ExportRoutesOptions {
  db: Queryable;
  tokens: OperatorTokenConfig;
  /** Rows per database read (tests use a small one to cross batch edges). */
  batchRows?: number;
}

/** A cell as a spreadsheet will not evaluate it: text starting with a formula character gets a leading '. */
export function spreadsheetSafe(v: unknown): string | number | boolean | null {
  if (v === null || v === undefined) return null;
  if (typeof v === "number" || typeof v === "boolean") return v;
  const s = v instanceof Date ? v.toISOString() : String(v);
  return /^[=+\-@\t\r]/.test(s) ? `'${s}` : s;
}

interface Walk<R> {
  columns: readonly string[];
  /** One batch after `after` (null: from the start): $1 site, $2 since, $3 until, $4/$5 the cursor, $6 limit. */
  sql: string;
  row: (r: R) => unknown[];
  /** The keyset position of a row: its time as the database's text (full precision) and its id. */
  key: (r: R) => [string, string];
}

/**
 * The CSV as a stream: the header, then one database batch per pull, so the
 * client's reading paces the queries (constant memory whatever the range).
 */
function csvStream<R>(db: Queryable, walk: Walk<R>, params: unknown[], batchRows: number): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  let after: [string, string] | null = null;
  let header = true;
  let done = false;
  // csv-stringify writes false as an empty cell by default; a spreadsheet and a script both want the word.
  const options = { cast: { boolean: (v: boolean) => (v ? "true" : "false") } };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (header) {
        header = false;
        controller.enqueue(encoder.encode(stringify([walk.columns])));
        return;
      }
      if (done) {
        controller.close();
        return;
      }
      const { rows } = await db.query<R>(walk.sql, [...params, after?.[0] ?? null, after?.[1] ?? null, batchRows]);
      if (rows.length > 0) {
        controller.enqueue(
          encoder.encode(
            stringify(
              rows.map((r) => walk.row(r).map(spreadsheetSafe)),
              options,
            ),
          ),
        );
        after = walk.key(rows[rows.length - 1]!);
      }
      if (rows.length < batchRows) done = true;
    },
  });
}

interface CheckinRow {
  entry_id: string;
  site_id: string;
  device_id: string;
  seq: string | number;
  at: Date;
  at_key: string;
  received_at: Date;
  member_id: string | null;
  member_name: string | null;
  credential: string | null;
  offline: boolean | null;
  replica_version: string | number | null;
}

const CHECKINS: Walk<CheckinRow> = {
  columns: [
    "id",
    "site",
    "device",
    "seq",
    "at",
    "received_at",
    "member_id",
    "member_name",
    "credential",
    "offline",
    "replica_version",
  ],
  sql: `SELECT i.entry_id, i.site_id, i.device_id, i.seq, i.at, i.at::text AS at_key, i.received_at,
               i.body ->> 'memberId' AS member_id, m.name AS member_name,
               i.body -> 'credential' ->> 'type' AS credential, (i.body ->> 'offline')::boolean AS offline,
               (i.body ->> 'replicaVersion')::bigint AS replica_version
        FROM inbox i LEFT JOIN members m ON m.site_id = i.site_id AND m.id = i.body ->> 'memberId'
        WHERE i.kind = 'checkin' AND i.outcome = 'applied'
          AND ($1::text IS NULL OR i.site_id = $1)
          AND ($2::timestamptz IS NULL OR i.at >= $2) AND ($3::timestamptz IS NULL OR i.at < $3)
          AND ($4::timestamptz IS NULL OR (i.at, i.entry_id) > ($4::timestamptz, $5::text))
        ORDER BY i.at, i.entry_id LIMIT $6`,
  row: (r) => [
    r.entry_id,
    r.site_id,
    r.device_id,
    Number(r.seq),
    r.at,
    r.received_at,
    r.member_id,
    r.member_name,
    r.credential,
    r.offline ?? false,
    r.replica_version === null ? null : Number(r.replica_version),
  ],
  key: (r) => [r.at_key, r.entry_id],
};

interface LedgerRow {
  id: string;
  site_id: string;
  recorded_at: Date;
  at_key: string;
  at: Date;
  member_id: string;
  kind: string;
  amount: string | number;
  currency: string;
  balance_after: string | number;
  origin_device: string | null;
  origin_seq: string | number | null;
  operator: string | null;
  authorization: string | null;
  item_id: string | null;
  refund_of: string | null;
  note: string | null;
}

const LEDGER: Walk<LedgerRow> = {
  columns: [
    "id",
    "site",
    "recorded_at",
    "at",
    "member_id",
    "kind",
    "amount_minor",
    "currency",
    "balance_after_minor",
    "origin_device",
    "origin_seq",
    "operator",
    "authorization",
    "item_id",
    "refund_of",
    "note",
  ],
  sql: `SELECT id::text AS id, site_id, recorded_at, recorded_at::text AS at_key, at, member_id, kind, amount, currency,
               balance_after, origin_device, origin_seq, operator, "authorization", item_id, refund_of::text AS refund_of, note
        FROM ledger_entries
        WHERE ($1::text IS NULL OR site_id = $1)
          AND ($2::timestamptz IS NULL OR recorded_at >= $2) AND ($3::timestamptz IS NULL OR recorded_at < $3)
          AND ($4::timestamptz IS NULL OR (recorded_at, id) > ($4::timestamptz, $5::uuid))
        ORDER BY recorded_at, id LIMIT $6`,
  // Minor units as the database's integer text: a bigint never passes through a float.
  row: (r) => [
    r.id,
    r.site_id,
    r.recorded_at,
    r.at,
    r.member_id,
    r.kind,
    integer(r.amount),
    r.currency,
    integer(r.balance_after),
    r.origin_device,
    r.origin_seq === null ? null : integer(r.origin_seq),
    r.operator,
    r.authorization,
    r.item_id,
    r.refund_of,
    r.note,
  ],
  key: (r) => [r.at_key, r.id],
};

/** An integer column as a number when it is exact, else its digits (the cell reads the same). */
function integer(v: string | number): number | string {
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : String(v);
}

export function exportRoutes(o: ExportRoutesOptions): Hono<OperatorEnv> {
  const app = new Hono<OperatorEnv>();
  const batch = o.batchRows ?? EXPORT_BATCH_ROWS;

  const route = <R>(path: string, name: string, permission: "fleet:read" | "money:read", walk: Walk<R>) =>
    app.get(path, operatorAuth(o.tokens, permission), async (c) => {
      const q = ExportQuerySchema.safeParse(c.req.query());
      if (!q.success) return queryError(q.error);
      const site = listingSite(c, q.data.site);
      if (site instanceof Response) return site;
      const { since, until } = q.data;
      if (since && until && Date.parse(since) >= Date.parse(until)) return badRequest("since: must be before until");
      // Only safe characters in the header's file name, whatever the site parameter held.
      const file = [name, site, since?.slice(0, 10), until?.slice(0, 10)]
        .filter(Boolean)
        .join("-")
        .replace(/[^A-Za-z0-9_-]/g, "_");
      const body = csvStream(o.db, walk, [site ?? null, since ?? null, until ?? null], batch);
      return new Response(body, {
        status: 200,
        headers: {
          "content-type": "text/csv; charset=utf-8",
          "content-disposition": `attachment; filename="${file}.csv"`,
          "cache-control": "no-store",
          "x-content-type-options": "nosniff",
        },
      });
    });

  route("/api/v1/exports/checkins.csv", "checkins", "fleet:read", CHECKINS);
  route("/api/v1/exports/ledger.csv", "ledger", "money:read", LEDGER);
  return app;
}
