/**
 * Fleet overview: every kiosk of the chosen site (or all) with its state and
 * since when, backlog, paper, reader, mode, config drift and version. Filter
 * by state, search by id or name. Device status events from the live feed
 * reload it at once; a slow poll covers a feed that is down. Rows have a
 * fixed height and a stable order, so updates never move what you look at.
 */
import type { LiveEvent } from "@paylane/protocol";
import { useMemo, useRef, useState } from "preact/hooks";
import { qs } from "../api.ts";
import { DataTable } from "../components/data-table.tsx";
import { type FleetRow, fleetRow } from "../fleet-row.ts";
import { ago, when } from "../format.ts";
import { href, useApi, useLiveEvents } from "../hooks.ts";
import { Badge } from "../ui.tsx";

const POLL_MS = 5000;

export function FleetPage({ site }: { site: string }) {
  const fleet = useApi<{ items: Array<Record<string, unknown>> }>(
    `/api/v1/devices${qs({ site, limit: 1000 })}`,
    POLL_MS,
  );
  const [state, setState] = useState<"all" | "online" | "offline">("all");
  const [search, setSearch] = useState("");
  const pending = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);

  useLiveEvents((e: LiveEvent) => {
    if (e.type !== "device-status" || (site && e.site !== site)) return;
    // Several kiosks change at once after a broker restart: one reload for the burst.
    clearTimeout(pending.current);
    pending.current = setTimeout(fleet.reload, 150);
  });

  const rows = useMemo(() => (fleet.data?.items ?? []).map(fleetRow), [fleet.data]);
  const needle = search.trim().toLowerCase();
  const shown = rows.filter(
    (r) =>
      (state === "all" || r.state === state) &&
      (!needle || r.device.toLowerCase().includes(needle) || (r.name ?? "").toLowerCase().includes(needle)),
  );
  const online = rows.filter((r) => r.state === "online").length;

  return (
    <section class="page" aria-labelledby="fleet-title">
      <div class="page-head">
        <h1 id="fleet-title">Fleet</h1>
        <p class="summary" aria-live="polite">
          {fleet.data ? `${online} of ${rows.length} kiosks online` : " "}
        </p>
      </div>
      <div class="filters">
        <label>
          <span>State</span>
          <select value={state} onChange={(e) => setState((e.target as HTMLSelectElement).value as typeof state)}>
            <option value="all">All</option>
            <option value="online">Online</option>
            <option value="offline">Offline</option>
          </select>
        </label>
        <label>
          <span>Search</span>
          <input
            type="search"
            placeholder="kiosk id or name"
            value={search}
            onInput={(e) => setSearch((e.target as HTMLInputElement).value)}
          />
        </label>
      </div>
      <DataTable
        class="fleet"
        steady
        columns={["Kiosk", "State", "Backlog", "Paper", "Reader", "Mode", "Config", "Version"]}
        rows={fleet.data ? shown : undefined}
        error={fleet.error}
        what="load the fleet"
        empty="No kiosk matches."
        row={(r) => <Row key={`${r.site}/${r.device}`} r={r} showSite={!site} />}
      />
    </section>
  );
}

function Row({ r, showSite }: { r: FleetRow; showSite: boolean }) {
  const tone = r.state === "online" ? "ok" : r.state === "offline" ? "bad" : "muted";
  return (
    <tr data-device={r.device} data-state={r.state}>
      <th scope="row">
        <a href={href("devices", r.site, r.device)}>
          {showSite ? `${r.site}/` : ""}
          {r.device}
        </a>
        {r.name ? <small> {r.name}</small> : null}
        {r.revoked ? <Badge tone="bad">revoked</Badge> : null}
      </th>
      <td title={r.statusAt ? `since ${when(r.statusAt)}` : undefined}>
        <Badge tone={tone}>{r.state}</Badge> <small>{r.statusAt ? `for ${ago(r.statusAt)}` : ""}</small>
      </td>
      <td class="num">
        {r.backlog ?? "—"}
        {r.ackLatency ? <small> ({Math.round(r.ackLatency)} s)</small> : null}
      </td>
      <td>
        {r.paper ? (
          <Badge tone={r.paper === "ok" ? "ok" : r.paper === "no printer" ? "muted" : "warn"}>{r.paper}</Badge>
        ) : (
          "—"
        )}
      </td>
      <td>{r.reader ? <Badge tone={r.reader === "ok" ? "ok" : "warn"}>{r.reader}</Badge> : "—"}</td>
      <td>{r.mode ?? "—"}</td>
      <td>{r.drift === null ? "—" : r.drift ? <Badge tone="warn">drift</Badge> : "in sync"}</td>
      <td>{r.version ?? "—"}</td>
    </tr>
  );
}
