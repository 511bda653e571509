/**
 * The audit log (`audit_log`, migration 015): one row per state-changing
 * operator call, login and logout, newest first. Rows are only ever added.
 * What goes in `detail` is small and never a password, token or secret:
 * `scrub` drops any key that looks like one before a row is written.
 */
import { randomUUID } from "node:crypto";
import type { AuditEntry } from "@paylane/protocol";
import type { Queryable } from "../db/database.ts";

export interface AuditRecord {
  at: Date;
  actor: string;
  action: string;
  target?: string | null;
  site?: string | null;
  address?: string | null;
  status: number;
  detail?: Record<string, unknown>;
}

export interface AuditQuery {
  actor?: string;
  action?: string;
  site?: string;
  /** Only rows of these sites (a site-scoped admin); undefined: all. */
  sites?: string[];
  /** Rows strictly older than this (at, id) position. */
  before?: [string, string] | null;
  limit: number;
}

/** Keys never kept in `detail`, at any depth. */
const SECRET_KEY = /pass|secret|token|key|authorization|cookie|pan|card.?number|code/i;

/** `detail` without secrets and bounded: strings cut at 200 characters, at most 3 levels deep. */
export function scrub(v: unknown, depth = 0): unknown {
  if (typeof v === "string") return v.length > 200 ? `${v.slice(0, 200)}…` : v;
  if (v === null || typeof v !== "object") return v;
  if (depth >= 3) return "…";
  if (Array.isArray(v)) return v.slice(0, 20).map((x) => scrub(x, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    // A yes/no (passwordChanged: true) tells nothing secret; any other value under such a key is dropped.
    out[k] = SECRET_KEY.test(k) && typeof x !== "boolean" ? "[redacted]" : scrub(x, depth + 1);
  }
  return out;
}

export class AuditLog {
  readonly #db: Queryable;

  constructor(db: Queryable) {
    this.#db = db;
  }

  async write(r: AuditRecord): Promise<void> {
    await this.#db.query(
      `INSERT INTO audit_log (id, at, actor, action, target, site, address, status, detail)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
      [
        randomUUID(),
        r.at,
        r.actor,
        r.action,
        r.target ?? null,
        r.site ?? null,
        r.address ?? null,
        r.status,
        JSON.stringify(scrub(r.detail ?? {})),
      ],
    );
  }

  /** Newest first, `limit` rows after the `before` position. */
  async list(q: AuditQuery): Promise<AuditEntry[]> {
    const { rows } = await this.#db.query<{
      id: string;
      at: Date;
      actor: string;
      action: string;
      target: string | null;
      site: string | null;
      address: string | null;
      status: number;
      detail: Record<string, unknown>;
    }>(
      `SELECT id, at, actor, action, target, site, address, status, detail FROM audit_log
       WHERE ($1::text IS NULL OR actor = $1) AND ($2::text IS NULL OR action = $2)
         AND ($3::text IS NULL OR site = $3) AND ($4::text[] IS NULL OR site = ANY($4))
         AND ($5::timestamptz IS NULL OR (at, id) < ($5::timestamptz, $6::uuid))
       ORDER BY at DESC, id DESC LIMIT $7`,
      [
        q.actor ?? null,
        q.action ?? null,
        q.site ?? null,
        q.sites ?? null,
        q.before?.[0] ?? null,
        q.before?.[1] ?? null,
        q.limit,
      ],
    );
    return rows.map((r) => ({
      id: r.id,
      at: r.at.toISOString(),
      actor: r.actor,
      action: r.action,
      target: r.target,
      site: r.site,
      address: r.address,
      status: r.status,
      detail: r.detail,
    }));
  }
}
