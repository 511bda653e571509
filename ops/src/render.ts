/**
 * Fleet rows as a person reads them (a coloured table, ages as "12s ago")
 * or as a script reads them (one JSON object a line). Colours come from
 * picocolors, which turns itself off when stdout is not a terminal or
 * NO_COLOR is set.
 */
import Table from "cli-table3";
import pc from "picocolors";
import type { CloudRow, KioskRow } from "./fleet-view.ts";

const NONE = "—";

/** "4s", "3m", "2h", "5d": how long ago `iso` was, from `now`. */
export function ago(iso: string | null, now: number): string {
  if (!iso) return NONE;
  return `${duration((now - Date.parse(iso)) / 1000)} ago`;
}

export function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60 ? `${s % 60}s` : ""}`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86_400)}d${Math.floor((s % 86_400) / 3600)}h`;
}

function statusCell(r: KioskRow): string {
  if (r.status === "online") return r.stale ? pc.yellow("stale") : pc.green("online");
  if (r.status === "offline") return pc.red("offline");
  return pc.dim("unknown");
}

/** ok is quiet, anything else stands out. */
function health(value: string | null, warn: readonly string[] = ["degraded", "near-end", "unreachable"]): string {
  if (value === null) return pc.dim(NONE);
  if (value === "ok" || value === "online" || value === "in-service") return value;
  if (value === "none" || value === "unknown") return pc.dim(value);
  return warn.includes(value) || value === "maintenance" ? pc.yellow(value) : pc.red(value);
}

function configCell(r: KioskRow): string {
  if (r.desiredVersion === null) return r.reportedVersion === null ? pc.dim(NONE) : `v${r.reportedVersion}`;
  if (r.rejected.length > 0 && r.reportedVersion === r.desiredVersion) {
    return pc.red(`v${r.desiredVersion} rejected: ${r.rejected.join(",")}`);
  }
  if (r.drift.length === 0) return pc.green(`v${r.desiredVersion} in sync`);
  return pc.yellow(`v${r.desiredVersion} drift: ${r.drift.join(",")}`);
}

function num(value: number | null, warnAbove: number): string {
  if (value === null) return pc.dim(NONE);
  const text = String(Math.round(value));
  return value > warnAbove ? pc.yellow(text) : text;
}

export function cloudLine(c: CloudRow, now: number): string {
  const state =
    c.state === "online" ? pc.green("online") : c.state === "offline" ? pc.red("offline") : pc.dim("unknown");
  const beat = c.heartbeatAt ? `, heartbeat ${ago(c.heartbeatAt, now)}` : "";
  return `cloud ${state}${c.instance ? ` (${c.instance}${beat})` : ""}`;
}

/** The whole screen of `watch`: the cloud's line, then one row a kiosk. */
export function fleetTable(rows: KioskRow[], cloud: CloudRow, now: number): string {
  const table = new Table({
    head: [
      "KIOSK",
      "STATUS",
      "SINCE",
      "LAST SEEN",
      "BACKLOG",
      "OLDEST",
      "READER",
      "PRINTER",
      "MODE",
      "CLOUD",
      "CONFIG",
    ],
    style: { head: [], border: [], compact: true, "padding-left": 0, "padding-right": 2 },
    chars: {
      top: "",
      "top-mid": "",
      "top-left": "",
      "top-right": "",
      bottom: "",
      "bottom-mid": "",
      "bottom-left": "",
      "bottom-right": "",
      left: "",
      "left-mid": "",
      mid: "",
      "mid-mid": "",
      right: "",
      "right-mid": "",
      middle: "",
    },
  });
  for (const r of rows) {
    table.push([
      r.kiosk,
      statusCell(r),
      ago(r.since, now),
      ago(r.lastSeen, now),
      num(r.backlog, 100),
      r.oldestUnackedSeconds === null ? pc.dim(NONE) : `${num(r.oldestUnackedSeconds, 60)}s`,
      health(r.reader),
      r.printer === null
        ? pc.dim(NONE)
        : r.printer === "none"
          ? pc.dim("none")
          : `${health(r.printer)}/${health(r.paper)}`,
      health(r.mode),
      health(r.cloudLink),
      configCell(r),
    ]);
  }
  const count = `${rows.length} kiosk${rows.length === 1 ? "" : "s"}: ${rows.filter((r) => r.status === "online" && !r.stale).length} online, ${rows.filter((r) => r.status === "offline").length} offline, ${rows.filter((r) => r.stale).length} stale`;
  const body = rows.length > 0 ? table.toString() : pc.dim("no kiosk has reported yet");
  return `${cloudLine(cloud, now)} · ${count}\n${body}`;
}

/** One JSON line (`--json`). */
export const jsonLine = (value: unknown) => JSON.stringify(value);
