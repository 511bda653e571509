/**
 * Operator accounts in Postgres (`operators`, migration 015): create, list,
 * change role, sites, password, disable and enable. A change that alters
 * what a login may do (password, role, sites, disabled) revokes that
 * operator's sessions in the same transaction, so no token minted under the
 * old terms survives it. The last enabled admin of every site cannot be
 * demoted, scoped or disabled: nobody would be left to manage accounts.
 */
import type { ConsoleRole, OperatorAccount } from "@paylane/protocol";
import type { Database, Queryable } from "../db/database.ts";
import { hashPassword } from "./password.ts";
import { notifySessionsEnded } from "./session-endings.ts";

export type AccountErrorCode = "exists" | "not-found" | "last-admin";

/** A refused account change; `message` says what and how to fix it. */
export class AccountError extends Error {
  constructor(
    readonly code: AccountErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "AccountError";
  }
}

export interface NewOperator {
  username: string;
  password: string;
  role: ConsoleRole;
  sites?: string[] | null;
}

export interface OperatorChange {
  role?: ConsoleRole;
  sites?: string[] | null;
  disabled?: boolean;
  password?: string;
}

/** An account with its hash: what login reads, never what an API answers. */
export interface OperatorRecord extends OperatorAccount {
  passwordHash: string;
}

interface Row {
  username: string;
  password_hash: string;
  role: ConsoleRole;
  sites: string[] | null;
  disabled: boolean;
  created_at: Date;
  last_login_at: Date | null;
}

const COLUMNS = "username, password_hash, role, sites, disabled, created_at, last_login_at";

function record(r: Row): OperatorRecord {
  return {
    username: r.username,
    role: r.role,
    sites: r.sites,
    disabled: r.disabled,
    createdAt: r.created_at.toISOString(),
    lastLoginAt: r.last_login_at?.toISOString() ?? null,
    passwordHash: r.password_hash,
  };
}

/** The account as the API and the CLI show it (no hash). */
export function publicAccount(r: OperatorRecord): OperatorAccount {
  const { passwordHash: _, ...account } = r;
  return account;
}

/**
 * Ends every live session of `username` (the access tokens naming them are
 * refused from then on, by every API instance: `tx` is a transaction, and
 * its commit announces the ending).
 */
export async function revokeSessionsOf(tx: Queryable, username: string, reason: string, at: Date): Promise<number> {
  const { rows } = await tx.query<{ id: string }>(
    `UPDATE operator_sessions SET revoked_at = $2, reason = $3
     WHERE username = $1 AND revoked_at IS NULL RETURNING id`,
    [username, at, reason],
  );
  await notifySessionsEnded(
    tx,
    rows.map((r) => r.id),
  );
  return rows.length;
}

export class OperatorStore {
  readonly #db: Database;
  readonly #now: () => Date;

  constructor(o: { db: Database; now?: () => Date }) {
    this.#db = o.db;
    this.#now = o.now ?? (() => new Date());
  }

  async count(): Promise<number> {
    const { rows } = await this.#db.query<{ n: number }>("SELECT count(*)::int AS n FROM operators");
    return rows[0]?.n ?? 0;
  }

  /** The account with its hash; `q`: a transaction of the caller's (PGlite has one connection). */
  async get(username: string, q: Queryable = this.#db): Promise<OperatorRecord | null> {
    const { rows } = await q.query<Row>(`SELECT ${COLUMNS} FROM operators WHERE username = $1`, [username]);
    return rows[0] ? record(rows[0]) : null;
  }

  async list(): Promise<OperatorAccount[]> {
    const { rows } = await this.#db.query<Row>(`SELECT ${COLUMNS} FROM operators ORDER BY username`);
    return rows.map((r) => publicAccount(record(r)));
  }

  async create(o: NewOperator): Promise<OperatorAccount> {
    const hash = await hashPassword(o.password);
    const at = this.#now();
    const { rows } = await this.#db.query<Row>(
      `INSERT INTO operators (username, password_hash, role, sites, created_at, password_changed_at)
       VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (username) DO NOTHING RETURNING ${COLUMNS}`,
      [o.username, hash, o.role, o.sites ?? null, at],
    );
    if (!rows[0]) throw new AccountError("exists", `an operator named ${o.username} already exists`);
    return publicAccount(record(rows[0]));
  }

  /**
   * Applies `change`; returns the account and how many sessions it revoked.
   * Enabling an account or setting what it already has revokes nothing.
   */
  async update(username: string, change: OperatorChange): Promise<{ account: OperatorAccount; revoked: number }> {
    // Hashed before the transaction: argon2 takes tens of milliseconds that no lock should wait for.
    const hash = change.password === undefined ? undefined : await hashPassword(change.password);
    const at = this.#now();
    return this.#db.transaction(async (tx) => {
      const { rows } = await tx.query<Row>(`SELECT ${COLUMNS} FROM operators WHERE username = $1 FOR UPDATE`, [
        username,
      ]);
      const before = rows[0];
      if (!before) throw new AccountError("not-found", `no operator named ${username} (paylane-admin user list)`);
      const role = change.role ?? before.role;
      const sites = change.sites === undefined ? before.sites : change.sites;
      const disabled = change.disabled ?? before.disabled;
      const wasFullAdmin = before.role === "admin" && before.sites === null && !before.disabled;
      const staysFullAdmin = role === "admin" && sites === null && !disabled;
      if (wasFullAdmin && !staysFullAdmin) {
        // Locks every other full admin's row too, so two admins demoting each other at once cannot both succeed.
        const others = await tx.query<{ username: string }>(
          `SELECT username FROM operators
           WHERE role = 'admin' AND sites IS NULL AND NOT disabled AND username <> $1 FOR UPDATE`,
          [username],
        );
        if (others.rows.length === 0) {
          throw new AccountError(
            "last-admin",
            `${username} is the last enabled admin of every site; add another (paylane-admin user add <name> --role admin) first`,
          );
        }
      }
      const updated = await tx.query<Row>(
        `UPDATE operators SET role = $2, sites = $3, disabled = $4,
           password_hash = COALESCE($5, password_hash),
           password_changed_at = CASE WHEN $5::text IS NULL THEN password_changed_at ELSE $6 END
         WHERE username = $1 RETURNING ${COLUMNS}`,
        [username, role, sites, disabled, hash ?? null, at],
      );
      const sameSites = JSON.stringify(sites) === JSON.stringify(before.sites);
      const reasons = [
        hash !== undefined ? "password changed" : null,
        role !== before.role ? "role changed" : null,
        sameSites ? null : "sites changed",
        disabled && !before.disabled ? "account disabled" : null,
      ].filter((r): r is string => r !== null);
      const revoked = reasons.length > 0 ? await revokeSessionsOf(tx, username, reasons.join(", "), at) : 0;
      return { account: publicAccount(record(updated.rows[0]!)), revoked };
    });
  }

  async recordLogin(username: string, at: Date): Promise<void> {
    await this.#db.query("UPDATE operators SET last_login_at = $2 WHERE username = $1", [username, at]);
  }
}
