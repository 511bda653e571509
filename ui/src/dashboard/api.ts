/**
 * The dashboard's one door to the cloud. The access token lives in memory
 * only (never in storage a script could read later); the refresh token is
 * the httpOnly `paylane_refresh` cookie, so a reload starts with a refresh,
 * and a timer refreshes again before the access token expires. A 401 on a
 * call tries one refresh and the call again; a failed refresh ends the session.
 */
import type { OperatorProfile, Permission, SessionAnswer } from "@paylane/protocol";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    readonly detail: string,
  ) {
    super(detail ? `${title}: ${detail}` : title);
  }
}

interface Session {
  token: string;
  expiresAt: number;
  operator: OperatorProfile;
}

let session: Session | null = null;
let refreshTimer: ReturnType<typeof setTimeout> | undefined;
let refreshing: Promise<boolean> | null = null;
const listeners = new Set<() => void>();

export function currentOperator(): OperatorProfile | null {
  return session?.operator ?? null;
}

export function can(permission: Permission): boolean {
  return session?.operator.permissions.includes(permission) ?? false;
}

/** Calls `fn` whenever the session starts or ends; returns the unsubscribe. */
export function onSessionChange(fn: () => void): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function setSession(answer: SessionAnswer | null): void {
  clearTimeout(refreshTimer);
  session = answer
    ? { token: answer.accessToken, expiresAt: Date.now() + answer.expiresIn * 1000, operator: answer.operator }
    : null;
  if (answer) {
    // A minute early (or at 80% of a short life), so no call goes out with an expired token.
    const early = Math.min(60, answer.expiresIn * 0.2);
    refreshTimer = setTimeout(() => void refresh(), Math.max(1, answer.expiresIn - early) * 1000);
  }
  for (const fn of listeners) fn();
}

async function problem(res: Response): Promise<ApiError> {
  let title = res.statusText || `HTTP ${res.status}`;
  let detail = "";
  try {
    const body = (await res.json()) as { title?: string; detail?: string };
    title = body.title ?? title;
    detail = body.detail ?? "";
  } catch {
    // not a problem+json body: the status says it
  }
  return new ApiError(res.status, title, detail);
}

export async function login(username: string, password: string): Promise<void> {
  const res = await fetch("/api/v1/auth/login", {
    method: "POST",
    headers: { "content-type": "application/json" },
    credentials: "same-origin",
    body: JSON.stringify({ username, password, session: "cookie" }),
  });
  if (!res.ok) throw await problem(res);
  setSession((await res.json()) as SessionAnswer);
}

/** A new access token from the refresh cookie; false (and signed out) when there is no valid one. */
export function refresh(): Promise<boolean> {
  refreshing ??= (async () => {
    try {
      const res = await fetch("/api/v1/auth/refresh", {
        method: "POST",
        headers: { "content-type": "application/json" },
        credentials: "same-origin",
        body: "{}",
      });
      if (!res.ok) {
        setSession(null);
        return false;
      }
      setSession((await res.json()) as SessionAnswer);
      return true;
    } catch {
      // the cloud is unreachable: keep what we have, the next call says so
      return session !== null;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

export async function logout(): Promise<void> {
  const token = session?.token;
  setSession(null);
  await fetch("/api/v1/auth/logout", {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    credentials: "same-origin",
    body: "{}",
  }).catch(() => undefined);
}

export interface CallOptions {
  method?: string;
  body?: unknown;
  headers?: Record<string, string>;
}

/** JSON in, JSON out, as the signed-in operator; a problem answer throws an ApiError. */
export async function api<T>(path: string, o: CallOptions = {}): Promise<T> {
  const send = () =>
    fetch(path, {
      method: o.method ?? "GET",
      credentials: "same-origin",
      headers: {
        accept: "application/json",
        ...(session ? { authorization: `Bearer ${session.token}` } : {}),
        ...(o.body === undefined ? {} : { "content-type": "application/json" }),
        ...o.headers,
      },
      body: o.body === undefined ? undefined : JSON.stringify(o.body),
    });
  let res = await send();
  if (res.status === 401 && session && (await refresh())) res = await send();
  if (!res.ok) throw await problem(res);
  return (await res.json()) as T;
}

/** Query string of the defined values. */
export function qs(params: Record<string, string | number | boolean | undefined | null>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") p.set(k, String(v));
  const s = p.toString();
  return s ? `?${s}` : "";
}
