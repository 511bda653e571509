/**
 * Alerts inbox: what fires now (the alert service), each with its rule,
 * severity and since when; operators resolve the event-like ones (staff
 * called, journal rolled back, ledger exception) — the others resolve by
 * themselves when their condition clears. Below: what kiosks journaled.
 */
import { useState } from "preact/hooks";
import { api, can, qs } from "../api.ts";
import { ago, when } from "../format.ts";
import { useApi, useLiveEvents } from "../hooks.ts";
import { Badge, Empty, Problem } from "../ui.tsx";

interface ActiveAlert {
  key: string;
  rule: string;
  site: string;
  device: string | null;
  severity: string;
  summary: string;
  firedAt: string;
}

/** Resolved by a person; every other rule clears by itself (cloud/src/api/alerts.ts). */
const BY_HAND = new Set(["staff-called", "journal-rolled-back", "ledger-exception"]);

export function AlertsPage({ site }: { site: string }) {
  const active = useApi<{ items: ActiveAlert[] }>(`/api/v1/alerts/active${qs({ site })}`, 10_000);
  const journaled = useApi<{ items: Array<{ id: string; kind: string; device: string; at: string }> }>(
    `/api/v1/alerts${qs({ site, limit: 20 })}`,
  );
  useLiveEvents((e) => {
    if (e.type === "alert") {
      active.reload();
      journaled.reload();
    }
  });
  const [busy, setBusy] = useState<string | undefined>();
  const [error, setError] = useState<unknown>();
  const resolve = async (key: string) => {
    setBusy(key);
    setError(undefined);
    try {
      await api(`/api/v1/alerts/${encodeURIComponent(key)}/resolve`, { method: "POST", body: {} });
      active.reload();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(undefined);
    }
  };

  return (
    <section class="page" aria-labelledby="alerts-title">
      <h1 id="alerts-title">Alerts</h1>
      <Problem error={active.error} what="load the alerts" />
      <Problem error={error} what="resolve the alert" />
      <h2>Firing now</h2>
      {active.data?.items.length === 0 ? <Empty>Nothing is firing.</Empty> : null}
      <ul class="inbox">
        {active.data?.items.map((a) => (
          <li key={a.key} class="inbox-item">
            <Badge tone={a.severity === "critical" ? "bad" : "warn"}>{a.severity}</Badge>
            <div>
              <strong>{a.summary}</strong>
              <small>
                {a.rule} · {a.device ? `${a.site}/${a.device}` : a.site} · since {when(a.firedAt)} ({ago(a.firedAt)})
              </small>
            </div>
            {can("fleet:operate") && BY_HAND.has(a.rule) ? (
              <button type="button" disabled={busy === a.key} onClick={() => void resolve(a.key)}>
                {busy === a.key ? "Resolving…" : "Resolve"}
              </button>
            ) : (
              <small class="why">{BY_HAND.has(a.rule) ? "" : "clears by itself"}</small>
            )}
          </li>
        ))}
      </ul>
      <h2>Journaled by kiosks</h2>
      <Problem error={journaled.error} what="load the journaled alerts" />
      {journaled.data?.items.length === 0 ? <Empty>None.</Empty> : null}
      <ul class="events">
        {journaled.data?.items.map((a) => (
          <li key={a.id}>
            <time dateTime={a.at}>{when(a.at)}</time> {a.kind} at {a.device}
          </li>
        ))}
      </ul>
    </section>
  );
}
