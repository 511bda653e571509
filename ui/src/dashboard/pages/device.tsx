/**
 * One kiosk: its state, status history, telemetry charts (backlog, memory,
 * disk, temperature, ack latency), peripherals, recent events, commands
 * (send one and see its result), desired configuration, and revoke/rotate
 * for admins. Every section loads on its own: one that fails says why and
 * the rest still shows.
 */
import type { CommandName } from "@paylane/protocol";
import { useEffect, useMemo, useState } from "preact/hooks";
import { ApiError, api, can, qs } from "../api.ts";
import { Chart, type ChartSeries } from "../chart.tsx";
import { DataTable } from "../components/data-table.tsx";
import { fleetRow } from "../fleet-row.ts";
import { ago, when } from "../format.ts";
import { href, type Resource, useApi, useLiveEvents } from "../hooks.ts";
import { Badge, Empty, Problem } from "../ui.tsx";

interface Bucket {
  at: string;
  count: number;
  values: Record<string, { avg: number; max: number } | null>;
}

interface CommandRecord {
  id: string;
  command: string;
  args: Record<string, unknown>;
  requestedBy: string | null;
  requestedAt: string;
  status: string;
  result: unknown;
  reason: string | null;
  answeredAt: string | null;
}

const RANGES = [
  { label: "1 hour", ms: 3_600_000 },
  { label: "6 hours", ms: 6 * 3_600_000 },
  { label: "24 hours", ms: 86_400_000 },
  { label: "7 days", ms: 7 * 86_400_000 },
];

/** The commands an operator may send from here (the protocol's names; replay-from is the cloud's own). */
const COMMANDS = [
  "self-test",
  "print-test",
  "unlock",
  "set-mode",
  "reboot",
  "rotate-logs",
] as const satisfies readonly CommandName[];

export function DevicePage({ site, device }: { site: string; device: string }) {
  const base = `/api/v1/devices/${encodeURIComponent(site)}/${encodeURIComponent(device)}`;
  const fleet = useApi<{ items: Array<Record<string, unknown>> }>(`/api/v1/devices${qs({ site, limit: 1000 })}`, 5000);
  const row = useMemo(() => fleet.data?.items.map(fleetRow).find((r) => r.device === device), [fleet.data, device]);
  // The device page read model (status history, peripherals): shown when this cloud has it.
  const page = useApi<Record<string, unknown>>(base, 10_000);
  // The newest telemetry: peripherals show it, and each new report redraws the charts.
  const latest = useApi<Latest>(`${base}/telemetry/latest`, 5000);
  useLiveEvents((e) => {
    if (e.site !== site || e.device !== device) return;
    if (e.type === "device-status") {
      fleet.reload();
      page.reload();
    }
  });

  return (
    <section class="page device" aria-labelledby="device-title">
      <p class="crumbs">
        <a href={href("fleet")}>Fleet</a> / {site}
      </p>
      <div class="page-head">
        <h1 id="device-title">{device}</h1>
        <p class="summary">
          {row ? (
            <>
              <Badge tone={row.state === "online" ? "ok" : row.state === "offline" ? "bad" : "muted"}>
                {row.state}
              </Badge>{" "}
              {row.statusAt ? `since ${when(row.statusAt)} (${ago(row.statusAt)})` : ""}
              {row.version ? ` · version ${row.version}` : ""}
              {row.revoked ? " · revoked" : ""}
            </>
          ) : fleet.data ? (
            "not in this site's fleet"
          ) : (
            " "
          )}
        </p>
      </div>
      <Problem error={fleet.error} what="load the kiosk" />
      <div class="cols">
        <Peripherals latest={latest} />
        <StatusHistory page={page.data} error={page.error} />
      </div>
      <Telemetry base={base} reportedAt={latest.data?.receivedAt} />
      {can("fleet:operate") ? <SendCommand base={base} /> : null}
      <Commands base={base} />
      <RecentEvents site={site} device={device} />
      <DesiredConfig base={base} />
      {can("admin") ? <Enrolment base={base} /> : null}
    </section>
  );
}

function StatusHistory({ page, error }: { page: Record<string, unknown> | undefined; error: ApiError | undefined }) {
  const raw = page?.statusHistory ?? page?.history;
  const history = Array.isArray(raw) ? (raw as Array<Record<string, unknown>>) : [];
  return (
    <section class="card" aria-labelledby="history-title">
      <h2 id="history-title">Status history</h2>
      {error && error.status !== 404 ? <Problem error={error} what="load the status history" /> : null}
      {history.length === 0 ? (
        <Empty>{error ? "This cloud keeps no status history yet." : "No changes recorded."}</Empty>
      ) : (
        <ol class="history">
          {history.slice(0, 12).map((h) => (
            <li key={`${h.at}-${h.state}`}>
              <Badge tone={h.state === "online" ? "ok" : "bad"}>{String(h.state)}</Badge> {when(String(h.at))}
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}

interface Latest {
  receivedAt: string;
  telemetry: Record<string, unknown>;
}

function Peripherals({ latest }: { latest: Resource<Latest> }) {
  const t = latest.data?.telemetry;
  const printer = t?.printer as { state: string; paper: string; lastError?: string } | null | undefined;
  const tone = (s: unknown) => (s === "ok" || s === "online" || s === "in-service" ? "ok" : "warn");
  return (
    <section class="card" aria-labelledby="peripherals-title">
      <h2 id="peripherals-title">Peripherals</h2>
      {latest.error?.status === 404 ? <Empty>No telemetry from this kiosk yet.</Empty> : null}
      {latest.error && latest.error.status !== 404 ? <Problem error={latest.error} what="load telemetry" /> : null}
      {t ? (
        <dl class="facts">
          <dt>Reader</dt>
          <dd>
            <Badge tone={tone(t.reader)}>{String(t.reader)}</Badge>
          </dd>
          <dt>Printer</dt>
          <dd>
            {printer ? (
              <>
                <Badge tone={tone(printer.state)}>{printer.state}</Badge> paper{" "}
                <Badge tone={tone(printer.paper)}>{printer.paper}</Badge>
              </>
            ) : (
              "none"
            )}
          </dd>
          <dt>Mode</dt>
          <dd>{t.mode ? <Badge tone={tone(t.mode)}>{String(t.mode)}</Badge> : "—"}</dd>
          <dt>Cloud link</dt>
          <dd>{String(t.cloudLink ?? "—")}</dd>
          <dt>Storage</dt>
          <dd>{String(t.storage ?? "—")}</dd>
          <dt>Backlog</dt>
          <dd>{String(t.backlog)}</dd>
          <dt>Reported</dt>
          <dd>{ago(latest.data?.receivedAt)} ago</dd>
        </dl>
      ) : null}
    </section>
  );
}

function Telemetry({ base, reportedAt }: { base: string; reportedAt: string | undefined }) {
  const [range, setRange] = useState(RANGES[0]!.ms);
  // Rounded to the minute, so the path (and the charts) change once a minute, not every render.
  const to = Math.ceil(Date.now() / 60_000) * 60_000;
  const path = `${base}/telemetry${qs({ from: new Date(to - range).toISOString(), to: new Date(to).toISOString() })}`;
  const series = useApi<{ buckets: Bucket[]; stepSeconds: number }>(path, 60_000);
  const { reload } = series;
  useEffect(() => {
    if (reportedAt) reload();
  }, [reportedAt, reload]);
  const charts = useMemo(() => {
    const buckets = series.data?.buckets ?? [];
    const times = buckets.map((b) => Date.parse(b.at) / 1000);
    const pick = (field: string, how: "avg" | "max", scale = 1) =>
      buckets.map((b) => {
        const v = b.values[field];
        return v ? v[how] / scale : null;
      });
    const mb = 1024 * 1024;
    const c = (label: string, values: Array<number | null>, color: string): ChartSeries => ({ label, values, color });
    return {
      times,
      backlog: [c("backlog (max)", pick("backlog", "max"), "#2563eb")],
      latency: [c("oldest unacked, s (max)", pick("oldestUnackedAgeSeconds", "max"), "#b45309")],
      memory: [
        c("RSS MB", pick("rssBytes", "avg", mb), "#7c3aed"),
        c("free MB", pick("memoryFreeBytes", "avg", mb), "#059669"),
      ],
      disk: [c("disk free MB", pick("diskFreeBytes", "avg", mb), "#0891b2")],
      temperature: [c("CPU °C (max)", pick("cpuTemperatureC", "max"), "#dc2626")],
    };
  }, [series.data]);
  return (
    <section class="card wide" aria-labelledby="telemetry-title">
      <div class="card-head">
        <h2 id="telemetry-title">Telemetry</h2>
        <label>
          <span>Range</span>
          <select value={range} onChange={(e) => setRange(Number((e.target as HTMLSelectElement).value))}>
            {RANGES.map((r) => (
              <option key={r.ms} value={r.ms}>
                {r.label}
              </option>
            ))}
          </select>
        </label>
      </div>
      <Problem error={series.error} what="load telemetry" />
      <div class="charts">
        <Chart title="Backlog" times={charts.times} series={charts.backlog} />
        <Chart title="Ack latency (oldest unacked entry)" times={charts.times} series={charts.latency} unit="s" />
        <Chart title="Memory" times={charts.times} series={charts.memory} />
        <Chart title="Disk" times={charts.times} series={charts.disk} />
        <Chart title="Temperature" times={charts.times} series={charts.temperature} />
      </div>
    </section>
  );
}

function SendCommand({ base }: { base: string }) {
  const [command, setCommand] = useState<(typeof COMMANDS)[number]>("self-test");
  const [seconds, setSeconds] = useState("5");
  const [mode, setMode] = useState("in-service");
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<CommandRecord | undefined>();
  const [error, setError] = useState<unknown>();
  // A command still pending when the wait ended (the kiosk was offline) settles later: its result arrives live.
  useLiveEvents((e) => {
    if (e.type === "command-result" && result && e.data.id === result.id) {
      setResult({ ...result, ...(e.data as Partial<CommandRecord>) });
    }
  });

  const send = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    setResult(undefined);
    const args = command === "unlock" ? { seconds: Number(seconds) } : command === "set-mode" ? { mode } : {};
    try {
      setResult(
        await api<CommandRecord>(`${base}/commands`, { method: "POST", body: { command, args, waitSeconds: 15 } }),
      );
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="card" aria-labelledby="send-title">
      <h2 id="send-title">Send a command</h2>
      <form class="inline" onSubmit={send}>
        <label>
          <span>Command</span>
          <select
            value={command}
            onChange={(e) => setCommand((e.target as HTMLSelectElement).value as (typeof COMMANDS)[number])}
          >
            {COMMANDS.map((c) => (
              <option key={c} value={c}>
                {c}
              </option>
            ))}
          </select>
        </label>
        {command === "unlock" ? (
          <label>
            <span>Seconds</span>
            <input
              type="number"
              min={1}
              max={300}
              value={seconds}
              onInput={(e) => setSeconds((e.target as HTMLInputElement).value)}
            />
          </label>
        ) : null}
        {command === "set-mode" ? (
          <label>
            <span>Mode</span>
            <select value={mode} onChange={(e) => setMode((e.target as HTMLSelectElement).value)}>
              <option value="in-service">in-service</option>
              <option value="maintenance">maintenance</option>
              <option value="out-of-service">out-of-service</option>
            </select>
          </label>
        ) : null}
        <button type="submit" disabled={busy}>
          {busy ? "Waiting for the kiosk…" : "Send"}
        </button>
      </form>
      <div class="result" aria-live="polite">
        <Problem error={error} what="send the command" />
        {result ? <CommandOutcome c={result} /> : null}
      </div>
    </section>
  );
}

function CommandOutcome({ c }: { c: CommandRecord }) {
  const tone = c.status === "done" ? "ok" : c.status === "failed" || c.status === "expired" ? "bad" : "warn";
  return (
    <div class="outcome" data-command={c.command} data-status={c.status}>
      <p>
        <strong>{c.command}</strong>: <Badge tone={tone}>{c.status}</Badge>
        {c.status === "pending" || c.status === "sent" || c.status === "accepted"
          ? " — not answered yet; it runs when the kiosk gets it (see Commands below)"
          : ""}
        {c.reason ? ` — ${c.reason}` : ""}
      </p>
      {c.result !== null && c.result !== undefined ? <pre>{JSON.stringify(c.result, null, 2)}</pre> : null}
    </div>
  );
}

function Commands({ base }: { base: string }) {
  const list = useApi<{ items: CommandRecord[] }>(`${base}/commands?limit=10`, 10_000);
  useLiveEvents((e) => {
    if (e.type === "command-result") list.reload();
  });
  return (
    <section class="card" aria-labelledby="commands-title">
      <h2 id="commands-title">Commands</h2>
      <DataTable
        class="compact"
        columns={["Command", "Status", "By", "Asked"]}
        rows={list.data?.items}
        error={list.error}
        what="load the commands"
        empty="No commands sent to this kiosk."
        row={(c) => (
          <tr key={c.id}>
            <td>{c.command}</td>
            <td>
              {c.status}
              {c.reason ? ` (${c.reason})` : ""}
            </td>
            <td>{c.requestedBy ?? "—"}</td>
            <td>{ago(c.requestedAt)} ago</td>
          </tr>
        )}
      />
    </section>
  );
}

function RecentEvents({ site, device }: { site: string; device: string }) {
  const checkins = useApi<{ items: Array<{ id: string; memberId: string; memberName: string | null; at: string }> }>(
    `/api/v1/checkins${qs({ site, device, limit: 10 })}`,
  );
  const alerts = useApi<{ items: Array<{ id: string; kind: string; at: string }> }>(
    `/api/v1/alerts${qs({ site, device, limit: 10 })}`,
  );
  useLiveEvents((e) => {
    if (e.site === site && e.device === device && e.type === "checkin") checkins.reload();
    if (e.site === site && e.device === device && e.type === "alert") alerts.reload();
  });
  const events = [
    ...(checkins.data?.items ?? []).map((c) => ({
      key: `c${c.id}`,
      at: c.at,
      text: `check-in ${c.memberName ?? c.memberId}`,
    })),
    ...(alerts.data?.items ?? []).map((a) => ({ key: `a${a.id}`, at: a.at, text: `alert ${a.kind}` })),
  ].sort((a, b) => b.at.localeCompare(a.at));
  return (
    <section class="card" aria-labelledby="events-title">
      <h2 id="events-title">Recent events</h2>
      <Problem error={checkins.error ?? alerts.error} what="load recent events" />
      {events.length === 0 && checkins.data ? <Empty>Nothing recent.</Empty> : null}
      <ul class="events">
        {events.slice(0, 12).map((e) => (
          <li key={e.key}>
            <time dateTime={e.at}>{when(e.at)}</time> {e.text}
          </li>
        ))}
      </ul>
    </section>
  );
}

function DesiredConfig({ base }: { base: string }) {
  // Polled: the kiosk reports the new version after the save's answer, so drift clears (or appears) on its own time.
  const config = useApi<{
    desired: { version: number; settings: Record<string, unknown> } | null;
    reported: Record<string, unknown> | null;
    drift: unknown;
  }>(`${base}/config`, 3000);
  const [text, setText] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const [saved, setSaved] = useState(false);
  const current = JSON.stringify(config.data?.desired?.settings ?? {}, null, 2);
  const editable = can("fleet:operate");

  const save = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    setSaved(false);
    let settings: unknown;
    try {
      settings = JSON.parse(text ?? current);
    } catch {
      setError(new ApiError(400, "Not JSON", 'the settings must be a JSON object, e.g. {"volume": 5}'));
      return;
    }
    setBusy(true);
    try {
      await api(`${base}/config`, { method: "PUT", body: { settings } });
      setText(undefined);
      setSaved(true);
      config.reload();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const drift = config.data?.drift;
  const drifting = Array.isArray(drift) ? drift.length > 0 : Boolean(drift && Object.keys(drift).length);
  return (
    <section class="card" aria-labelledby="config-title">
      <h2 id="config-title">Desired configuration</h2>
      <Problem error={config.error} what="load the configuration" />
      {config.data ? (
        <p>
          Version {config.data.desired?.version ?? 0}
          {drifting ? (
            <>
              {" "}
              · <Badge tone="warn">drift</Badge> <code>{JSON.stringify(drift)}</code>
            </>
          ) : (
            " · in sync"
          )}
        </p>
      ) : null}
      <form onSubmit={save}>
        <label class="block">
          <span>Settings (JSON)</span>
          <textarea
            rows={6}
            readOnly={!editable}
            value={text ?? current}
            onInput={(e) => setText((e.target as HTMLTextAreaElement).value)}
          />
        </label>
        {editable ? (
          <button type="submit" disabled={busy}>
            {busy ? "Saving…" : "Save desired configuration"}
          </button>
        ) : null}
        <span aria-live="polite">{saved ? " Saved; the kiosk gets it now or when it comes back." : ""}</span>
      </form>
      <Problem error={error} what="save the configuration" />
    </section>
  );
}

function Enrolment({ base }: { base: string }) {
  const [confirm, setConfirm] = useState<"revoke" | "rotate" | null>(null);
  const [message, setMessage] = useState<string | undefined>();
  const [error, setError] = useState<unknown>();
  const act = async (what: "revoke" | "rotate") => {
    setError(undefined);
    setMessage(undefined);
    try {
      await api(`${base}/${what}`, { method: "POST", body: {} });
      setMessage(
        what === "revoke"
          ? "Revoked: the kiosk is out of the registry and its session closed."
          : "Rotation asked: the kiosk makes a new secret when it gets the command.",
      );
    } catch (err) {
      setError(err);
    } finally {
      setConfirm(null);
    }
  };
  return (
    <section class="card" aria-labelledby="enrol-title">
      <h2 id="enrol-title">Credentials</h2>
      {confirm ? (
        <p role="alert">
          {confirm === "revoke"
            ? "Revoke this kiosk? It stops working until it is enrolled again."
            : "Rotate this kiosk's credentials?"}{" "}
          <button type="button" class="danger" onClick={() => void act(confirm)}>
            Yes, {confirm}
          </button>{" "}
          <button type="button" onClick={() => setConfirm(null)}>
            Cancel
          </button>
        </p>
      ) : (
        <p>
          <button type="button" onClick={() => setConfirm("rotate")}>
            Rotate credentials
          </button>{" "}
          <button type="button" class="danger" onClick={() => setConfirm("revoke")}>
            Revoke
          </button>
        </p>
      )}
      <p aria-live="polite">{message}</p>
      <Problem error={error} />
    </section>
  );
}
