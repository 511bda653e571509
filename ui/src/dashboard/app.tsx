/**
 * The shell: sign-in gate, navigation (only what the operator's permissions
 * allow), the site switcher, the live-feed indicator, and the page of the
 * hash route. A page the role may not open says so ("Not allowed").
 */
import type { Permission } from "@paylane/protocol";
import { useEffect, useState } from "preact/hooks";
import { can, currentOperator, logout, onSessionChange, refresh } from "./api.ts";
import { href, useApi, useLiveState, useRoute } from "./hooks.ts";
import { startLive, stopLive } from "./live.ts";
import { AuditPage, UsersPage } from "./pages/admin.tsx";
import { AlertsPage } from "./pages/alerts.tsx";
import { ConflictsPage } from "./pages/conflicts.tsx";
import { DevicePage } from "./pages/device.tsx";
import { FleetPage } from "./pages/fleet.tsx";
import { LivePage } from "./pages/live.tsx";
import { LoginPage } from "./pages/login.tsx";
import { MoneyPage } from "./pages/money.tsx";
import { NotAllowed } from "./ui.tsx";

interface NavEntry {
  route: string;
  label: string;
  permission: Permission;
}

export const NAV: NavEntry[] = [
  { route: "fleet", label: "Fleet", permission: "fleet:read" },
  { route: "live", label: "Live feed", permission: "fleet:read" },
  { route: "alerts", label: "Alerts", permission: "fleet:read" },
  { route: "conflicts", label: "Conflicts", permission: "fleet:read" },
  { route: "money", label: "Wallets & ledger", permission: "money:read" },
  { route: "users", label: "Users", permission: "admin" },
  { route: "audit", label: "Audit log", permission: "admin" },
];

export function App() {
  const [, setVersion] = useState(0);
  const [booting, setBooting] = useState(true);
  useEffect(() => {
    const off = onSessionChange(() => setVersion((v) => v + 1));
    // A reload keeps the session: the refresh cookie gets a new access token.
    void refresh().finally(() => setBooting(false));
    return off;
  }, []);
  const me = currentOperator();
  useEffect(() => {
    if (me) startLive();
    else stopLive();
  }, [me]);

  if (booting) return <p class="boot">Loading the PayLane ops console…</p>;
  if (!me) return <LoginPage />;
  return <Shell />;
}

function Shell() {
  const me = currentOperator()!;
  const route = useRoute();
  const live = useLiveState();
  const [site, setSite] = useState<string>(me.sites?.length ? me.sites[0]! : "");
  // The sites to switch between: the operator's own, or every site the fleet shows.
  const fleet = useApi<{ items: Array<{ site: string }> }>(me.sites === null ? "/api/v1/devices?limit=1000" : null);
  const sites = me.sites ?? [...new Set(fleet.data?.items.map((d) => d.site) ?? [])].sort();

  const page = route.parts[0] ?? "fleet";
  const entry = NAV.find((n) => n.route === page) ?? (page === "devices" ? NAV[0] : undefined);
  const allowed = NAV.filter((n) => can(n.permission));

  let content = null;
  if (!entry) content = <NotFound />;
  else if (!can(entry.permission)) content = <NotAllowed permission={entry.permission} />;
  else if (page === "devices" && route.parts[1] && route.parts[2])
    content = <DevicePage site={route.parts[1]} device={route.parts[2]} />;
  else if (page === "fleet" || page === "devices") content = <FleetPage site={site} />;
  else if (page === "live") content = <LivePage site={site} />;
  else if (page === "alerts") content = <AlertsPage site={site} />;
  else if (page === "conflicts") content = <ConflictsPage site={site} />;
  else if (page === "money") content = <MoneyPage site={site || sites[0] || ""} sites={sites} />;
  else if (page === "users") content = <UsersPage />;
  else if (page === "audit") content = <AuditPage />;

  return (
    <div class="shell">
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <span class="brand">PayLane ops</span>
        <nav aria-label="Sections">
          <ul>
            {allowed.map((n) => (
              <li key={n.route}>
                <a
                  href={href(n.route)}
                  aria-current={n.route === page || (n.route === "fleet" && page === "devices") ? "page" : undefined}
                >
                  {n.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <div class="who">
          <label>
            <span>Site</span>
            <select value={site} onChange={(e) => setSite((e.target as HTMLSelectElement).value)}>
              {me.sites === null || me.sites.length !== 1 ? (
                <option value="" disabled={me.sites !== null}>
                  All sites
                </option>
              ) : null}
              {sites.map((s) => (
                <option key={s} value={s}>
                  {s}
                </option>
              ))}
            </select>
          </label>
          <span class={`live-dot ${live}`} title="Live feed" role="status">
            {live === "live" ? "Live" : live === "connecting" ? "Connecting…" : "Live feed off"}
          </span>
          <span class="me">
            {me.username} <small class="me-role">({me.role})</small>
          </span>
          <button type="button" onClick={() => void logout()}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        {content}
      </main>
    </div>
  );
}

function NotFound() {
  return (
    <section class="page">
      <h1>Not found</h1>
      <p>
        There is no such page. <a href="#/fleet">Back to the fleet</a>
      </p>
    </section>
  );
}
