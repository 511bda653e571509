/**
 * `paylane_ledger_exceptions{kind}`: what the money side holds open for ops,
 * counted in the database at each scrape (every cloud instance reads the same
 * rows). Kinds, from the tables that record them:
 *
 * - `wallet-overdraft`: wallets driven below zero by offline payments, not yet
 *   settled by a credit (wallet_overdrafts, settled_at null).
 * - `seq-collision`: a second, different entry at a seq the inbox holds,
 *   not yet resolved by ops (seq_collisions, resolved_at null).
 * - `payment-unapplied`: journaled payments and top-ups the ledger could not
 *   post (ledger_exceptions). These have no resolved state: the count only
 *   grows, so alert on its increase.
 * - `offline-topup-rejected`: offline top-ups the terminal's settlement did
 *   not cover (offline_topups, status rejected); also never resolved.
 */
import type { Logger } from "pino";
import type { Registry as MetricsRegistry } from "prom-client";
import type { Queryable } from "../db/database.ts";
import { registeredGauge } from "./registered.ts";

export const LEDGER_EXCEPTION_KINDS = [
  "wallet-overdraft",
  "seq-collision",
  "payment-unapplied",
  "offline-topup-rejected",
] as const;

const COUNTS = `
  SELECT 'wallet-overdraft' AS kind, count(*)::int AS n FROM wallet_overdrafts WHERE settled_at IS NULL
  UNION ALL SELECT 'seq-collision', count(*)::int FROM seq_collisions WHERE resolved_at IS NULL
  UNION ALL SELECT 'payment-unapplied', count(*)::int FROM ledger_exceptions
  UNION ALL SELECT 'offline-topup-rejected', count(*)::int FROM offline_topups WHERE status = 'rejected'`;

export function registerLedgerMetrics(o: { db: Queryable; metrics: MetricsRegistry; logger: Logger }): void {
  registeredGauge(o.metrics, {
    name: "paylane_ledger_exceptions",
    help: "Ledger exceptions ops must look at, by kind: open overdrafts, unresolved seq collisions, unapplied payments, rejected offline top-ups",
    labelNames: ["kind"],
    async collect() {
      try {
        const { rows } = await o.db.query<{ kind: string; n: number }>(COUNTS);
        for (const r of rows) this.set({ kind: r.kind }, r.n);
      } catch (err) {
        // The rest of the scrape still answers; the series go absent rather than stale.
        this.reset();
        o.logger.warn({ err: (err as Error).message }, "ledger exception counts could not be read");
      }
    },
  });
}
