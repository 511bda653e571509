/**
 * Admin: operator accounts (add, change role, disable) and the audit log of
 * every state-changing call (who, what, when, from where).
 */
import type { ConsoleRole, OperatorAccount } from "@paylane/protocol";
import { useState } from "preact/hooks";
import { api, currentOperator, qs } from "../api.ts";
import { DataTable } from "../components/data-table.tsx";
import { when } from "../format.ts";
import { useApi } from "../hooks.ts";
import { Badge, Problem } from "../ui.tsx";

const ROLES: ConsoleRole[] = ["viewer", "operator", "finance", "admin"];

export function UsersPage() {
  const users = useApi<{ items: OperatorAccount[] }>("/api/v1/users");
  const [error, setError] = useState<unknown>();
  const me = currentOperator();
  const patch = async (username: string, change: Record<string, unknown>) => {
    setError(undefined);
    try {
      await api(`/api/v1/users/${encodeURIComponent(username)}`, { method: "PATCH", body: change });
      users.reload();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <section class="page" aria-labelledby="users-title">
      <h1 id="users-title">Users</h1>
      <Problem error={error} what="change the user" />
      <DataTable
        columns={["User", "Role", "Sites", "Last sign-in", "State"]}
        rows={users.data?.items}
        error={users.error}
        what="load the users"
        empty="No operator accounts."
        row={(u) => (
          <tr key={u.username}>
            <th scope="row">{u.username}</th>
            <td>
              <label>
                <span class="sr-only">Role of {u.username}</span>
                <select
                  value={u.role}
                  disabled={u.username === me?.username}
                  onChange={(e) => void patch(u.username, { role: (e.target as HTMLSelectElement).value })}
                >
                  {ROLES.map((r) => (
                    <option key={r} value={r}>
                      {r}
                    </option>
                  ))}
                </select>
              </label>
            </td>
            <td>{u.sites === null ? "all" : u.sites.join(", ")}</td>
            <td>{when(u.lastLoginAt)}</td>
            <td>
              {u.disabled ? <Badge tone="bad">disabled</Badge> : <Badge tone="ok">active</Badge>}{" "}
              {u.username === me?.username ? null : (
                <button type="button" onClick={() => void patch(u.username, { disabled: !u.disabled })}>
                  {u.disabled ? "Enable" : "Disable"}
                </button>
              )}
            </td>
          </tr>
        )}
      />
      <AddUser onAdded={users.reload} />
    </section>
  );
}

function AddUser({ onAdded }: { onAdded: () => void }) {
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [role, setRole] = useState<ConsoleRole>("viewer");
  const [sites, setSites] = useState("");
  const [error, setError] = useState<unknown>();
  const [added, setAdded] = useState<string | undefined>();
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    setAdded(undefined);
    try {
      // Empty: every site; else the comma-separated site ids.
      const list = sites
        .split(",")
        .map((x) => x.trim())
        .filter(Boolean);
      await api("/api/v1/users", {
        method: "POST",
        body: { username, password, role, sites: list.length ? list : null },
      });
      setAdded(`Added ${username} (${role}).`);
      setUsername("");
      setPassword("");
      setSites("");
      onAdded();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form class="card inline" onSubmit={submit} aria-labelledby="add-user-title">
      <h2 id="add-user-title">Add a user</h2>
      <label>
        <span>Username</span>
        <input required value={username} onInput={(e) => setUsername((e.target as HTMLInputElement).value)} />
      </label>
      <label>
        <span>Password (12+ characters)</span>
        <input
          type="password"
          autoComplete="new-password"
          required
          minLength={12}
          value={password}
          onInput={(e) => setPassword((e.target as HTMLInputElement).value)}
        />
      </label>
      <label>
        <span>Role</span>
        <select value={role} onChange={(e) => setRole((e.target as HTMLSelectElement).value as ConsoleRole)}>
          {ROLES.map((r) => (
            <option key={r} value={r}>
              {r}
            </option>
          ))}
        </select>
      </label>
      <label>
        <span>Sites (comma-separated; empty: all)</span>
        <input value={sites} onInput={(e) => setSites((e.target as HTMLInputElement).value)} />
      </label>
      <button type="submit">Add</button>
      <span aria-live="polite">{added}</span>
      <Problem error={error} what="add the user" />
    </form>
  );
}

interface AuditEntry {
  id: string;
  at: string;
  actor: string;
  action: string;
  target: string | null;
  site: string | null;
  address: string | null;
  status: number;
}

export function AuditPage() {
  const [actor, setActor] = useState("");
  const [before, setBefore] = useState<string | undefined>();
  const audit = useApi<{ items: AuditEntry[]; next: string | null }>(
    `/api/v1/audit${qs({ actor: actor.trim() || undefined, before, limit: 50 })}`,
  );
  return (
    <section class="page" aria-labelledby="audit-title">
      <h1 id="audit-title">Audit log</h1>
      <div class="filters">
        <label>
          <span>Actor</span>
          <input
            type="search"
            value={actor}
            onChange={(e) => {
              setBefore(undefined);
              setActor((e.target as HTMLInputElement).value);
            }}
          />
        </label>
      </div>
      <DataTable
        class="compact"
        columns={["When", "Who", "What", "Target", "From", { label: "Status", num: true }]}
        rows={audit.data?.items}
        error={audit.error}
        what="load the audit log"
        empty="Nothing recorded."
        row={(a) => (
          <tr key={a.id}>
            <td>{when(a.at)}</td>
            <td>{a.actor}</td>
            <td>{a.action}</td>
            <td>{a.target ?? "—"}</td>
            <td>{a.address ?? "—"}</td>
            <td class="num">{a.status}</td>
          </tr>
        )}
      />
      <p>
        {before ? (
          <button type="button" onClick={() => setBefore(undefined)}>
            Newest
          </button>
        ) : null}{" "}
        {audit.data?.next ? (
          <button type="button" onClick={() => setBefore(audit.data?.next ?? undefined)}>
            Older
          </button>
        ) : null}
      </p>
    </section>
  );
}
