/**
 * Console sessions. A login answers a short-lived access JWT (default 15
 * min; `sid` names the session) and an opaque refresh token (32 random
 * bytes, stored only as its sha256). Each refresh spends its token and
 * answers a new pair: a refresh token presented a second time means a copy
 * is in someone else's hands, so the whole session (every token of its
 * family, and the access tokens naming it) is revoked and the caller gets 401.
 *
 * Access tokens are checked against their session on every request through
 * `isLive`, cached for a few seconds. Every write that ends a session (a
 * logout, a reused refresh token, an account changed or disabled, by any API
 * instance or by paylane-admin) also sends a Postgres notification on
 * SESSIONS_CHANNEL in its transaction; each instance hears it through its
 * `revocations` and forgets what it cached, so an ended session is refused
 * at once by every instance behind a load balancer, not after the cache's
 * lifetime. While an instance cannot hear them (its LISTEN connection is
 * away), it caches nothing and asks the database at every request.
 */
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { type OperatorProfile, ROLE_PERMISSIONS } from "@paylane/protocol";
import { mintOperatorToken, type OperatorTokenConfig, verifyOperatorToken } from "../api/auth.ts";
import type { Database, Queryable } from "../db/database.ts";
import { verifyNobody, verifyPassword } from "./password.ts";
import { notifySessionsEnded, type SessionRevocations } from "./session-endings.ts";
import { type OperatorRecord, type OperatorStore, revokeSessionsOf } from "./store.ts";

export const DEFAULT_ACCESS_TTL_S = 15 * 60;
export const DEFAULT_REFRESH_TTL_S = 7 * 86_400;
/** How long a session found live is believed without asking the database again. */
export const DEFAULT_SESSION_CACHE_MS = 2_000;

export interface SessionsOptions {
  db: Database;
  store: OperatorStore;
  /** The operator tokens' secret, issuer and audience (the API's). */
  tokens: OperatorTokenConfig & { secret: string };
  now?: () => Date;
  accessTtlSeconds?: number;
  /** A refresh token unused this long expires (each refresh starts a new one). */
  refreshTtlSeconds?: number;
  cacheMs?: number;
  /** Endings announced by other instances (and this one); unset: another instance's logout counts after `cacheMs`. */
  revocations?: SessionRevocations;
}

export interface IssuedSession {
  accessToken: string;
  expiresIn: number;
  refreshToken: string;
  sessionId: string;
  operator: OperatorProfile;
}

/** Why a refresh was refused: the words of the 401, never naming the token. */
export type RefreshRefusal = "unknown" | "expired" | "revoked" | "reused" | "account";

const digest = (token: string) => createHash("sha256").update(token).digest("hex");

export function profile(r: Pick<OperatorRecord, "username" | "role" | "sites">): OperatorProfile {
  return { username: r.username, role: r.role, sites: r.sites, permissions: [...ROLE_PERMISSIONS[r.role]] };
}

export class Sessions {
  readonly #o: SessionsOptions;
  readonly #now: () => Date;
  readonly #accessTtl: number;
  readonly #refreshTtl: number;
  readonly #cacheMs: number;
  /** sid → until when it is believed live (ms); a revoked session is revoked for good (Infinity, false). */
  readonly #known = new Map<string, { live: boolean; until: number }>();
  /** Counts the endings heard: a lookup that raced one is not cached. */
  #generation = 0;
  #unsubscribe: (() => void) | undefined;

  constructor(o: SessionsOptions) {
    this.#o = o;
    this.#now = o.now ?? (() => new Date());
    this.#accessTtl = o.accessTtlSeconds ?? DEFAULT_ACCESS_TTL_S;
    this.#refreshTtl = o.refreshTtlSeconds ?? DEFAULT_REFRESH_TTL_S;
    this.#cacheMs = o.cacheMs ?? DEFAULT_SESSION_CACHE_MS;
  }

  get accessTtlSeconds(): number {
    return this.#accessTtl;
  }

  /**
   * The account `username` names when `password` is its password and it is
   * enabled; null otherwise, after the same work either way.
   */
  async authenticate(username: string, password: string): Promise<OperatorRecord | null> {
    const account = await this.#o.store.get(username);
    if (!account || account.disabled) {
      await verifyNobody(password);
      return null;
    }
    return (await verifyPassword(account.passwordHash, password)) ? account : null;
  }

  /** A new session for an authenticated account. */
  async start(account: OperatorRecord): Promise<IssuedSession> {
    const at = this.#now();
    const sid = randomUUID();
    const refreshToken = randomBytes(32).toString("base64url");
    await this.#o.db.transaction(async (tx) => {
      await tx.query("INSERT INTO operator_sessions (id, username, created_at) VALUES ($1, $2, $3)", [
        sid,
        account.username,
        at,
      ]);
      await this.#insertRefresh(tx, refreshToken, sid, at);
    });
    await this.#o.store.recordLogin(account.username, at);
    return this.#issue(account, sid, refreshToken, at);
  }

  /** Spends `refreshToken` for a new pair; reuse revokes its session. */
  async refresh(
    refreshToken: string,
  ): Promise<IssuedSession | { refused: RefreshRefusal; username?: string; session?: string }> {
    const at = this.#now();
    const hash = digest(refreshToken);
    type Outcome =
      | { refused: RefreshRefusal; username?: string; session?: string }
      | { refused?: undefined; account: OperatorRecord; sid: string; next: string };
    const outcome = await this.#o.db.transaction(async (tx): Promise<Outcome> => {
      // Locks the token's row: of two refreshes with the same token at once, the second sees it used.
      const { rows } = await tx.query<{
        family: string;
        used_at: Date | null;
        expires_at: Date;
        revoked_at: Date | null;
        username: string;
      }>(
        `SELECT t.family, t.used_at, t.expires_at, s.revoked_at, s.username
         FROM operator_refresh_tokens t JOIN operator_sessions s ON s.id = t.family
         WHERE t.token_hash = $1 FOR UPDATE OF t, s`,
        [hash],
      );
      const t = rows[0];
      if (!t) return { refused: "unknown" as const };
      if (t.revoked_at) return { refused: "revoked" as const };
      if (t.used_at) {
        await tx.query("UPDATE operator_sessions SET revoked_at = $2, reason = $3 WHERE id = $1", [
          t.family,
          at,
          "refresh token reused",
        ]);
        await notifySessionsEnded(tx, [t.family]);
        return { refused: "reused" as const, session: t.family, username: t.username };
      }
      if (t.expires_at <= at) return { refused: "expired" as const };
      const account = await this.#o.store.get(t.username, tx);
      if (!account || account.disabled) {
        await revokeSessionsOf(tx, t.username, "account disabled", at);
        return { refused: "account" as const };
      }
      await tx.query("UPDATE operator_refresh_tokens SET used_at = $2 WHERE token_hash = $1", [hash, at]);
      const next = randomBytes(32).toString("base64url");
      await this.#insertRefresh(tx, next, t.family, at);
      return { account, sid: t.family, next };
    });
    if (outcome.refused !== undefined) {
      if (outcome.refused === "reused" || outcome.refused === "account") this.invalidate();
      return outcome;
    }
    return this.#issue(outcome.account, outcome.sid, outcome.next, at);
  }

  /** Ends the session `refreshToken` (or `sid`) belongs to; null when there was none live. */
  async logout(by: { refreshToken: string } | { sid: string }): Promise<{ username: string; session: string } | null> {
    const at = this.#now();
    const ended = await this.#o.db.transaction(async (tx) => {
      const { rows } =
        "sid" in by
          ? await tx.query<{ username: string; session: string }>(
              `UPDATE operator_sessions SET revoked_at = $2, reason = 'logout'
               WHERE id = $1 AND revoked_at IS NULL RETURNING username, id AS session`,
              [by.sid, at],
            )
          : await tx.query<{ username: string; session: string }>(
              `UPDATE operator_sessions SET revoked_at = $2, reason = 'logout'
               WHERE id = (SELECT family FROM operator_refresh_tokens WHERE token_hash = $1)
                 AND revoked_at IS NULL RETURNING username, id AS session`,
              [digest(by.refreshToken), at],
            );
      await notifySessionsEnded(
        tx,
        rows.map((r) => r.session),
      );
      return rows[0] ?? null;
    });
    this.invalidate();
    return ended;
  }

  /** The session a valid console access token names, if any. */
  async sidOf(accessToken: string): Promise<string | undefined> {
    // Its session may have ended already: logging out again is harmless, so it is not asked here.
    const operator = await verifyOperatorToken(accessToken, { ...this.#o.tokens, sessionLive: async () => true });
    return "refused" in operator ? undefined : operator.sid;
  }

  /** Whether the session `sid` is still live (cached a few seconds; an ending heard clears the cache). */
  async isLive(sid: string): Promise<boolean> {
    this.#hear();
    const now = this.#now().getTime();
    const known = this.#known.get(sid);
    if (known && known.until > now) return known.live;
    const generation = this.#generation;
    const { rows } = await this.#o.db.query<{ live: boolean }>(
      "SELECT revoked_at IS NULL AS live FROM operator_sessions WHERE id = $1",
      [sid],
    );
    const live = rows[0]?.live === true;
    // An ending heard meanwhile may be this one's: the answer is not believed beyond this request.
    const revocations = this.#o.revocations;
    const cacheable = generation === this.#generation && (!revocations || revocations.hearing);
    if (!live || cacheable) {
      if (this.#known.size > 10_000) this.#known.clear();
      this.#known.set(sid, { live, until: live ? now + this.#cacheMs : Number.POSITIVE_INFINITY });
    }
    return live;
  }

  /** Forgets every cached session: a revocation made here counts from the next request. */
  invalidate(): void {
    this.#generation++;
    this.#known.clear();
  }

  /** Listens for endings, once: at the first check, not in the constructor (the feed outlives no cloud). */
  #hear(): void {
    if (this.#unsubscribe || !this.#o.revocations) return;
    this.#unsubscribe = this.#o.revocations.onSessionsEnded((sids) => {
      this.#generation++;
      if (sids === null) {
        this.#known.clear();
        return;
      }
      if (this.#known.size > 10_000) this.#known.clear();
      for (const sid of sids) this.#known.set(sid, { live: false, until: Number.POSITIVE_INFINITY });
    });
  }

  async #insertRefresh(tx: Queryable, token: string, family: string, at: Date): Promise<void> {
    await tx.query(
      "INSERT INTO operator_refresh_tokens (token_hash, family, issued_at, expires_at) VALUES ($1, $2, $3, $4)",
      [digest(token), family, at, new Date(at.getTime() + this.#refreshTtl * 1000)],
    );
  }

  async #issue(account: OperatorRecord, sid: string, refreshToken: string, at: Date): Promise<IssuedSession> {
    const { secret, issuer, audience } = this.#o.tokens;
    const accessToken = await mintOperatorToken(secret, {
      sub: account.username,
      role: account.role,
      sites: account.sites ?? undefined,
      sid,
      ttlSeconds: this.#accessTtl,
      now: at,
      issuer,
      audience,
    });
    return { accessToken, expiresIn: this.#accessTtl, refreshToken, sessionId: sid, operator: profile(account) };
  }
}
