/**
 * The live feed: what kiosks and operators do, newest on top, as it is
 * committed — check-ins (with the recent ones loaded first), payments
 * (finance), device status changes, alerts, command results. Rows have one
 * fixed height; when you have scrolled down, a new row on top does not push
 * what you are reading. While the feed is down, check-ins are polled instead.
 */
import type { LiveEvent, LiveEventType } from "@paylane/protocol";
import { useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import { can, qs } from "../api.ts";
import { formatMoney, when } from "../format.ts";
import { useApi, useLiveEvents, useLiveState } from "../hooks.ts";
import { recentEvents } from "../live.ts";
import { Badge, Empty, Problem } from "../ui.tsx";

const ROW_PX = 36;
const KEEP = 200;

interface Item {
  key: string;
  type: LiveEventType;
  site: string;
  device: string | null;
  at: string;
  data: Record<string, unknown>;
}

const TYPES: LiveEventType[] = ["checkin", "payment", "device-status", "alert", "command-result"];

function fromEvent(e: LiveEvent): Item {
  const id = e.data.id ?? e.data.key ?? `${e.at}-${e.device}`;
  return { key: `${e.type}:${String(id)}:${e.type === "device-status" ? e.at : ""}`, ...e };
}

export function LivePage({ site }: { site: string }) {
  const live = useLiveState();
  const [shown, setShown] = useState<Set<LiveEventType>>(
    () => new Set(TYPES.filter((t) => t !== "payment" || can("money:read"))),
  );
  const [events, setEvents] = useState<Item[]>(() => recentEvents().map(fromEvent));
  // Recent check-ins first (and every few seconds while the feed is down).
  const checkins = useApi<{ items: Array<Record<string, unknown> & { id: string; at: string; device: string }> }>(
    `/api/v1/checkins${qs({ site, limit: 30 })}`,
    live === "live" ? undefined : 3000,
  );
  useLiveEvents((e) => setEvents((old) => [fromEvent(e), ...old].slice(0, KEEP)));

  const items = useMemo(() => {
    const seen = new Set<string>();
    const all: Item[] = [];
    const add = (i: Item) => {
      if (seen.has(i.key)) return;
      seen.add(i.key);
      all.push(i);
    };
    for (const e of events) add(e);
    for (const c of checkins.data?.items ?? [])
      add({ key: `checkin:${c.id}:`, type: "checkin", site: String(c.site), device: c.device, at: c.at, data: c });
    return all
      .filter((i) => shown.has(i.type) && (!site || i.site === site))
      .sort((a, b) => b.at.localeCompare(a.at))
      .slice(0, KEEP);
  }, [events, checkins.data, shown, site]);

  // Keep what the reader looks at in place: rows added above a scrolled list push the scroll down by as much.
  const list = useRef<HTMLDivElement>(null);
  const firstKey = useRef<string | undefined>(undefined);
  useLayoutEffect(() => {
    const el = list.current;
    const prev = firstKey.current;
    firstKey.current = items[0]?.key;
    if (!el || !prev || el.scrollTop === 0) return;
    const added = items.findIndex((i) => i.key === prev);
    if (added > 0) el.scrollTop += added * ROW_PX;
  }, [items]);

  const toggle = (t: LiveEventType) =>
    setShown((s) => {
      const next = new Set(s);
      if (next.has(t)) next.delete(t);
      else next.add(t);
      return next;
    });

  return (
    <section class="page" aria-labelledby="live-title">
      <div class="page-head">
        <h1 id="live-title">Live feed</h1>
        <p class="summary">
          {live === "live"
            ? "Connected: events appear as they are committed."
            : "Feed not connected: polling check-ins."}
        </p>
      </div>
      <fieldset class="filters">
        <legend>Show</legend>
        {TYPES.filter((t) => t !== "payment" || can("money:read")).map((t) => (
          <label key={t} class="check">
            <input type="checkbox" checked={shown.has(t)} onChange={() => toggle(t)} /> {t}
          </label>
        ))}
      </fieldset>
      <Problem error={checkins.error} what="load recent check-ins" />
      <div class="feed" ref={list} role="log" aria-label="Live events" aria-live="polite">
        {items.map((i) => (
          <FeedRow key={i.key} i={i} />
        ))}
        {items.length === 0 && checkins.data ? <Empty>Nothing yet.</Empty> : null}
      </div>
    </section>
  );
}

function FeedRow({ i }: { i: Item }) {
  const d = i.data;
  let text: string;
  let tone: "ok" | "warn" | "bad" | "muted" = "muted";
  if (i.type === "checkin") {
    text = `${String(d.memberName ?? d.memberId ?? "member")} checked in`;
    tone = "ok";
  } else if (i.type === "payment") {
    const amount = typeof d.amount === "number" ? formatMoney(d.amount, String(d.currency ?? "EUR")) : "";
    text = `${String(d.kind ?? "payment")} ${amount} ${String(d.memberId ?? "")}`;
  } else if (i.type === "device-status") {
    text = `went ${String(d.state ?? d.status ?? "?")}`;
    tone = d.state === "online" ? "ok" : "bad";
  } else if (i.type === "alert") {
    text = String(d.summary ?? d.rule ?? d.kind ?? "alert");
    tone = "warn";
  } else {
    text = `${String(d.command ?? "command")}: ${String(d.status ?? "")}`;
  }
  return (
    <div class="feed-row" data-type={i.type}>
      <time dateTime={i.at}>{when(i.at)}</time>
      <Badge tone={tone}>{i.type}</Badge>
      <span class="where">{i.device ?? i.site}</span>
      <span class="what">{text}</span>
    </div>
  );
}
