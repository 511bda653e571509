/**
 * Idempotency keys, as Stripe has them: the first answer given for a key is
 * stored in the same transaction as the work it describes, and every retry
 * with that key gets the same answer again, without doing the work again. A
 * retry with other parameters is refused: it is a different request reusing
 * a key, and answering it either way would be a guess.
 *
 * Two concurrent requests with one key: the second one's INSERT waits on the
 * first's uncommitted row, then finds it committed and replays its answer.
 */
import { createHash } from "node:crypto";
import type { Database, Queryable } from "../db/database.ts";

export interface IdempotencyKey {
  site: string;
  /** Whose key it is: `device:{id}` or `operator:{sub}`; two origins never share a key space. */
  scope: string;
  key: string;
  /** What the request asked for (see requestHash): a retry must ask for exactly the same. */
  requestHash: string;
}

export interface StoredAnswer<T> {
  status: number;
  body: T;
}

export type IdempotentOutcome<T> =
  | ({ kind: "fresh" } & StoredAnswer<T>)
  | ({ kind: "replayed" } & StoredAnswer<T>)
  | { kind: "mismatch" };

/** A stable hash of a request's parameters (key order does not matter). */
export function requestHash(params: Record<string, unknown>): string {
  const canonical = JSON.stringify(
    Object.keys(params)
      .sort()
      .map((k) => [k, params[k] ?? null]),
  );
  return createHash("sha256").update(canonical).digest("hex");
}

/**
 * Runs `work` once per key: in one transaction with the key's row, whose
 * answer is stored before the commit. A thrown error stores nothing (the key
 * stays free, and a retry does the work).
 */
export function withIdempotency<T>(
  db: Database,
  k: IdempotencyKey,
  now: Date,
  work: (tx: Queryable) => Promise<StoredAnswer<T>>,
): Promise<IdempotentOutcome<T>> {
  return db.transaction(async (tx) => {
    const claimed = await tx.query(
      `INSERT INTO idempotency_keys (site_id, scope, key, request_hash, created_at) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT DO NOTHING RETURNING 1`,
      [k.site, k.scope, k.key, k.requestHash, now],
    );
    if (claimed.rows.length === 0) {
      const { rows } = await tx.query<{ request_hash: string; status_code: number; response: T }>(
        "SELECT request_hash, status_code, response FROM idempotency_keys WHERE site_id = $1 AND scope = $2 AND key = $3",
        [k.site, k.scope, k.key],
      );
      const stored = rows[0];
      // Purged between the two statements (older than the retention): the caller retries and it is fresh.
      if (!stored) throw new Error(`idempotency key ${k.key} vanished while being read; retry`);
      if (stored.request_hash !== k.requestHash) return { kind: "mismatch" };
      return { kind: "replayed", status: stored.status_code, body: stored.response };
    }
    const answer = await work(tx);
    await tx.query(
      "UPDATE idempotency_keys SET status_code = $4, response = $5 WHERE site_id = $1 AND scope = $2 AND key = $3",
      [k.site, k.scope, k.key, answer.status, JSON.stringify(answer.body)],
    );
    return { kind: "fresh", ...answer };
  });
}

/** Forgets answers older than `before` (retention is at least 7 days; the ledger's own key index stays forever). */
export async function purgeIdempotencyKeys(db: Queryable, before: Date): Promise<number> {
  const { rows } = await db.query("DELETE FROM idempotency_keys WHERE created_at < $1 RETURNING 1", [before]);
  return rows.length;
}
