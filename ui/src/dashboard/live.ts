/**
 * The live feed (`/api/v1/live`, a same-origin WebSocket the session cookie
 * authenticates): one connection for the whole dashboard, reconnecting with
 * a growing pause, fanned out to the pages that listen. The last events are
 * kept so a page opened later shows what already came.
 */
import type { LiveEvent } from "@paylane/protocol";
import { refresh } from "./api.ts";

export type LiveState = "connecting" | "live" | "offline";

const KEEP = 200;
let socket: WebSocket | null = null;
let state: LiveState = "offline";
let wanted = false;
let pause = 1000;
let retry: ReturnType<typeof setTimeout> | undefined;
const recent: LiveEvent[] = [];
const eventListeners = new Set<(e: LiveEvent) => void>();
const stateListeners = new Set<(s: LiveState) => void>();

function setState(s: LiveState): void {
  state = s;
  for (const fn of stateListeners) fn(s);
}

function open(): void {
  if (!wanted) return;
  const url = new URL("/api/v1/live", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  setState("connecting");
  const ws = new WebSocket(url);
  socket = ws;
  let opened = false;
  ws.onopen = () => {
    opened = true;
    pause = 1000;
    setState("live");
  };
  ws.onmessage = (m) => {
    let event: LiveEvent | { type: "hello" };
    try {
      event = JSON.parse(String(m.data)) as LiveEvent | { type: "hello" };
    } catch {
      return;
    }
    if (event.type === "hello") return;
    recent.unshift(event);
    if (recent.length > KEEP) recent.length = KEEP;
    for (const fn of eventListeners) fn(event);
  };
  ws.onclose = () => {
    if (socket !== ws) return;
    socket = null;
    setState("offline");
    if (!wanted) return;
    // Refused before it opened: most likely the access cookie expired; a refresh renews it.
    const before = opened ? Promise.resolve(true) : refresh();
    void before.then((signedIn) => {
      if (!signedIn) return;
      retry = setTimeout(open, pause);
      pause = Math.min(pause * 2, 30_000);
    });
  };
}

export function startLive(): void {
  if (wanted) return;
  wanted = true;
  open();
}

export function stopLive(): void {
  wanted = false;
  clearTimeout(retry);
  const ws = socket;
  socket = null;
  ws?.close();
  recent.length = 0;
  setState("offline");
}

export function liveState(): LiveState {
  return state;
}

export function recentEvents(): readonly LiveEvent[] {
  return recent;
}

export function onLiveEvent(fn: (e: LiveEvent) => void): () => void {
  eventListeners.add(fn);
  return () => eventListeners.delete(fn);
}

export function onLiveState(fn: (s: LiveState) => void): () => void {
  stateListeners.add(fn);
  return () => stateListeners.delete(fn);
}
