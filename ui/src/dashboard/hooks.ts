/** The dashboard's small hooks: the hash route, a loaded API resource, the live feed. */
import type { LiveEvent } from "@paylane/protocol";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { ApiError, api } from "./api.ts";
import { type LiveState, liveState, onLiveEvent, onLiveState } from "./live.ts";

/** `#/devices/demo/kiosk-1?x=1` → ["devices", "demo", "kiosk-1"] and its query. */
export interface Route {
  parts: string[];
  query: URLSearchParams;
}

function parseHash(): Route {
  const hash = location.hash.replace(/^#\/?/, "");
  const [path = "", query = ""] = hash.split("?");
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(query) };
}

export function useRoute(): Route {
  const [route, setRoute] = useState(parseHash);
  useEffect(() => {
    const changed = () => setRoute(parseHash());
    addEventListener("hashchange", changed);
    return () => removeEventListener("hashchange", changed);
  }, []);
  return route;
}

export function href(...parts: string[]): string {
  return `#/${parts.map(encodeURIComponent).join("/")}`;
}

export interface Resource<T> {
  data: T | undefined;
  error: ApiError | undefined;
  loading: boolean;
  reload: () => void;
}

/**
 * GETs `path` (null: nothing yet) and keeps the last answer while reloading,
 * so a refresh never blanks the page. `everyMs`: reload on a timer too.
 */
export function useApi<T>(path: string | null, everyMs?: number): Resource<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const [loading, setLoading] = useState(path !== null);
  const [tick, setTick] = useState(0);
  const current = useRef(path);
  current.current = path;
  const reload = useCallback(() => setTick((t) => t + 1), []);

  // A new path forgets the old answer (another device's data must not show under this one's title).
  useEffect(() => {
    setData(undefined);
    setError(undefined);
  }, [path]);

  // `tick` is the reload trigger.
  useEffect(() => {
    if (path === null) return;
    let live = true;
    setLoading(true);
    api<T>(path).then(
      (d) => {
        if (!live || current.current !== path) return;
        setData(d);
        setError(undefined);
        setLoading(false);
      },
      (e: unknown) => {
        if (!live || current.current !== path) return;
        setError(e instanceof ApiError ? e : new ApiError(0, "Network error", String(e)));
        setLoading(false);
      },
    );
    return () => {
      live = false;
    };
  }, [path, tick]);

  useEffect(() => {
    if (!everyMs || path === null) return;
    const timer = setInterval(reload, everyMs);
    return () => clearInterval(timer);
  }, [everyMs, path, reload]);

  return { data, error, loading, reload };
}

export function useLiveState(): LiveState {
  const [s, setS] = useState(liveState);
  useEffect(() => onLiveState(setS), []);
  return s;
}

/** Calls `fn` for each live event (the latest `fn`, without resubscribing). */
export function useLiveEvents(fn: (e: LiveEvent) => void): void {
  const ref = useRef(fn);
  ref.current = fn;
  useEffect(() => onLiveEvent((e) => ref.current(e)), []);
}
