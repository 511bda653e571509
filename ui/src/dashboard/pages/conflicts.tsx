/**
 * Conflicts and ledger exceptions: what the cloud found across kiosks
 * (duplicate check-ins, revoked members, clock skew, overdrafts, unapplied
 * payments), each with the rule that decided it, and seq collisions (two
 * entries at one seq) that an operator resolves by saying which was the kiosk's.
 */
import { useState } from "preact/hooks";
import { api, can, qs } from "../api.ts";
import { DataTable } from "../components/data-table.tsx";
import { when } from "../format.ts";
import { useApi } from "../hooks.ts";
import { Badge, Empty, Problem } from "../ui.tsx";

interface Conflict {
  kind: string;
  site: string;
  device: string;
  seq: number;
  entryId: string;
  memberId: string;
  at: string;
  detail: Record<string, unknown>;
}

interface Collision {
  id: string;
  site: string;
  device: string;
  seq: number;
  held: { kind: string; at: string | null; body: unknown };
  arrived: { kind: string; at: string | null; body: unknown };
  resolved: { at: string; kept: string; note: string; by: string } | null;
}

/** The rule behind each kind, as docs/conflicts.md states it. */
const RULES: Record<string, string> = {
  "duplicate-checkin": "the earliest check-in of the site-local day wins; this one is a duplicate of it",
  "revoked-member": "decided offline on a member replica older than the member's revocation",
  "clock-skew": "device time further from the cloud's receive time than the skew bound",
  "wallet-overdraft": "offline payments took the wallet below zero; offline spending is blocked until it is settled",
  "payment-unapplied": "the ledger could not post it (unknown member, other currency, or a reused payment key)",
};

export function ConflictsPage({ site }: { site: string }) {
  const conflicts = useApi<{ items: Conflict[]; since: string; until: string }>(
    `/api/v1/conflicts${qs({ site, limit: 100 })}`,
  );
  const collisions = useApi<{ items: Collision[] }>(`/api/v1/collisions${qs({ site, limit: 50 })}`);
  return (
    <section class="page" aria-labelledby="conflicts-title">
      <h1 id="conflicts-title">Conflicts and ledger exceptions</h1>
      <Problem error={conflicts.error} what="load the conflicts" />
      {conflicts.data ? (
        <p class="summary">
          From {when(conflicts.data.since)} to {when(conflicts.data.until)}
        </p>
      ) : null}
      <DataTable
        columns={["Kind", "Kiosk · seq", "Member", "At", "Rule that decided it"]}
        rows={conflicts.data?.items}
        empty="No conflicts in the last 7 days."
        row={(c) => (
          <tr key={`${c.kind}-${c.entryId}`}>
            <td>
              <Badge tone="warn">{c.kind}</Badge>
            </td>
            <td>
              {c.device} · {c.seq}
            </td>
            <td>{c.memberId}</td>
            <td>{when(c.at)}</td>
            <td class="wrap">
              {typeof c.detail.rule === "string" ? c.detail.rule : (RULES[c.kind] ?? c.kind)}
              {Object.keys(c.detail).length ? <code> {JSON.stringify(c.detail)}</code> : null}
            </td>
          </tr>
        )}
      />
      <h2>Seq collisions</h2>
      <Problem error={collisions.error} what="load the collisions" />
      {collisions.data?.items.length === 0 ? <Empty>No collisions.</Empty> : null}
      <ul class="inbox">
        {collisions.data?.items.map((c) => (
          <CollisionItem key={c.id} c={c} onResolved={collisions.reload} />
        ))}
      </ul>
    </section>
  );
}

function CollisionItem({ c, onResolved }: { c: Collision; onResolved: () => void }) {
  const [kept, setKept] = useState<"held" | "arrived">("held");
  const [note, setNote] = useState("");
  const [error, setError] = useState<unknown>();
  const resolve = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    try {
      await api(`/api/v1/collisions/${c.id}/resolve`, { method: "POST", body: { kept, note } });
      onResolved();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <li class="inbox-item block">
      <p>
        <strong>
          {c.device} seq {c.seq}
        </strong>
        : held {c.held.kind} ({when(c.held.at)}), arrived {c.arrived.kind} ({when(c.arrived.at)})
      </p>
      {c.resolved ? (
        <p>
          Resolved by {c.resolved.by}: kept the {c.resolved.kept} entry — {c.resolved.note}
        </p>
      ) : can("fleet:operate") ? (
        <form class="inline" onSubmit={resolve}>
          <label>
            <span>The kiosk's own</span>
            <select value={kept} onChange={(e) => setKept((e.target as HTMLSelectElement).value as "held" | "arrived")}>
              <option value="held">the held entry</option>
              <option value="arrived">the arrived entry</option>
            </select>
          </label>
          <label>
            <span>Why</span>
            <input required value={note} onInput={(e) => setNote((e.target as HTMLInputElement).value)} />
          </label>
          <button type="submit">Resolve</button>
        </form>
      ) : (
        <p>Open</p>
      )}
      <Problem error={error} what="resolve" />
    </li>
  );
}
