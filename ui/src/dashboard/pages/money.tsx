/**
 * Wallets and ledger (finance): each member's balance, the site's payments
 * with a refund action, and every ledger entry. A refund is one intent with
 * one Idempotency-Key, made when the form opens and kept across retries, so
 * a double click or a retry after a timeout never refunds twice.
 */
import { useState } from "preact/hooks";
import { api, can, qs } from "../api.ts";
import { DataTable } from "../components/data-table.tsx";
import { formatMoney, parseAmount, plainAmount, when } from "../format.ts";
import { useApi, useLiveEvents } from "../hooks.ts";
import { Badge, Empty, Problem } from "../ui.tsx";

interface Wallet {
  memberId: string;
  memberName: string | null;
  currency: string;
  balance: number;
  entries: number;
  offlineBlocked: boolean;
}

interface LedgerEntry {
  id: string;
  memberId: string;
  kind: string;
  amount: number;
  currency: string;
  balanceAfter: number;
  origin: { device: string; seq: number | null } | { operator: string };
  authorization: string | null;
  itemId: string | null;
  refundOf: string | null;
  note: string | null;
  at: string;
}

export function MoneyPage({ site, sites }: { site: string; sites: string[] }) {
  const [chosen, setChosen] = useState(site);
  const current = sites.includes(chosen) ? chosen : site;
  const wallets = useApi<{ items: Wallet[] }>(current ? `/api/v1/wallets${qs({ site: current, limit: 200 })}` : null);
  const payments = useApi<{ items: LedgerEntry[] }>(
    current ? `/api/v1/payments${qs({ site: current, limit: 50 })}` : null,
  );
  const ledger = useApi<{ items: LedgerEntry[] }>(current ? `/api/v1/ledger${qs({ site: current, limit: 50 })}` : null);
  const exposure = useApi<{ totals: Array<{ currency: string; offlineExposure: number; offlinePayments: number }> }>(
    current ? `/api/v1/exposure${qs({ site: current })}` : null,
    30_000,
  );
  const [refunding, setRefunding] = useState<LedgerEntry | undefined>();
  const [done, setDone] = useState<string | undefined>();
  const reload = () => {
    wallets.reload();
    payments.reload();
    ledger.reload();
  };
  useLiveEvents((e) => {
    if (e.type === "payment" && e.site === current) reload();
  });

  return (
    <section class="page" aria-labelledby="money-title">
      <div class="page-head">
        <h1 id="money-title">Wallets and ledger</h1>
        {sites.length > 1 ? (
          <label>
            <span>Site</span>
            <select value={current} onChange={(e) => setChosen((e.target as HTMLSelectElement).value)}>
              {sites.map((s) => (
                <option key={s} value={s}>
                  {s}
                </option>
              ))}
            </select>
          </label>
        ) : null}
      </div>
      {!current ? <Empty>Choose a site.</Empty> : null}
      <p class="notice" aria-live="polite">
        {done ?? " "}
      </p>
      <p class="summary" aria-live="polite">
        {exposure.data
          ? exposure.data.totals.length === 0
            ? "Offline exposure: none reported."
            : `Offline exposure: ${exposure.data.totals
                .map((t) => `${formatMoney(t.offlineExposure, t.currency)} in ${t.offlinePayments} payments`)
                .join(", ")} not yet reconciled.`
          : " "}
      </p>
      <h2>Wallets</h2>
      <DataTable
        class="wallets"
        columns={["Member", { label: "Balance", num: true }, { label: "Entries", num: true }, "Offline"]}
        rows={wallets.data?.items}
        error={wallets.error}
        what="load the wallets"
        empty="No wallets yet."
        row={(w) => (
          <tr key={w.memberId} data-member={w.memberId}>
            <th scope="row">
              {w.memberName ?? w.memberId} <small>{w.memberId}</small>
            </th>
            <td class="num balance">{formatMoney(w.balance, w.currency)}</td>
            <td class="num">{w.entries}</td>
            <td>{w.offlineBlocked ? <Badge tone="bad">blocked</Badge> : "allowed"}</td>
          </tr>
        )}
      />
      <h2>Payments</h2>
      <DataTable
        class="payments"
        columns={["At", "Member", "Item", { label: "Amount", num: true }, "Kiosk", { label: "Actions", hidden: true }]}
        rows={payments.data?.items}
        error={payments.error}
        what="load the payments"
        empty="No payments yet."
        row={(p) => (
          <tr key={p.id} data-payment={p.id}>
            <td>{when(p.at)}</td>
            <td>{p.memberId}</td>
            <td>{p.itemId ?? "—"}</td>
            <td class="num">{formatMoney(-p.amount, p.currency)}</td>
            <td>
              {"device" in p.origin ? p.origin.device : p.origin.operator}
              {p.authorization === "offline" ? " (offline)" : ""}
            </td>
            <td>
              {can("money:write") ? (
                <button
                  type="button"
                  onClick={() => {
                    setDone(undefined);
                    setRefunding(p);
                  }}
                >
                  Refund
                </button>
              ) : null}
            </td>
          </tr>
        )}
      />
      {refunding ? (
        <RefundForm
          key={refunding.id}
          payment={refunding}
          onClose={() => setRefunding(undefined)}
          onDone={(entry) => {
            setRefunding(undefined);
            setDone(
              `Refunded ${formatMoney(entry.amount, entry.currency)} to ${entry.memberId}; balance now ${formatMoney(entry.balanceAfter, entry.currency)}.`,
            );
            reload();
          }}
        />
      ) : null}
      <h2>Ledger</h2>
      <DataTable
        class="compact"
        columns={[
          "At",
          "Kind",
          "Member",
          { label: "Amount", num: true },
          { label: "Balance after", num: true },
          "By",
          "Note",
        ]}
        rows={ledger.data?.items}
        error={ledger.error}
        what="load the ledger"
        empty="No ledger entries yet."
        row={(e) => (
          <tr key={e.id}>
            <td>{when(e.at)}</td>
            <td>{e.kind}</td>
            <td>{e.memberId}</td>
            <td class="num">{formatMoney(e.amount, e.currency)}</td>
            <td class="num">{formatMoney(e.balanceAfter, e.currency)}</td>
            <td>{"device" in e.origin ? e.origin.device : e.origin.operator}</td>
            <td>{e.note ?? ""}</td>
          </tr>
        )}
      />
    </section>
  );
}

function RefundForm({
  payment,
  onClose,
  onDone,
}: {
  payment: LedgerEntry;
  onClose: () => void;
  onDone: (entry: LedgerEntry) => void;
}) {
  // One key per refund intent: a retry of this form sends the same one.
  const [key] = useState(() => crypto.randomUUID());
  const [amount, setAmount] = useState(plainAmount(-payment.amount, payment.currency));
  const [reason, setReason] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const [invalid, setInvalid] = useState<string | undefined>();

  const submit = async (e: Event) => {
    e.preventDefault();
    const minor = parseAmount(amount, payment.currency);
    if (minor === undefined || minor <= 0) {
      setInvalid(`Enter an amount like ${plainAmount(-payment.amount, payment.currency)}.`);
      return;
    }
    setInvalid(undefined);
    setBusy(true);
    setError(undefined);
    try {
      const entry = await api<LedgerEntry>(`/api/v1/payments/${payment.id}/refunds`, {
        method: "POST",
        headers: { "idempotency-key": key },
        body: { amount: minor, reason },
      });
      onDone(entry);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="card refund" onSubmit={submit} aria-labelledby="refund-title">
      <h3 id="refund-title">
        Refund {formatMoney(-payment.amount, payment.currency)} paid by {payment.memberId} on {when(payment.at)}
      </h3>
      <label>
        <span>Amount ({payment.currency})</span>
        <input
          name="amount"
          inputMode="decimal"
          required
          value={amount}
          onInput={(e) => setAmount((e.target as HTMLInputElement).value)}
        />
      </label>
      <label>
        <span>Reason</span>
        <input
          name="reason"
          required
          minLength={3}
          value={reason}
          onInput={(e) => setReason((e.target as HTMLInputElement).value)}
        />
      </label>
      {invalid ? (
        <p class="problem" role="alert">
          {invalid}
        </p>
      ) : null}
      <Problem error={error} what="refund" />
      <button type="submit" disabled={busy}>
        {busy ? "Refunding…" : "Refund"}
      </button>{" "}
      <button type="button" onClick={onClose}>
        Cancel
      </button>
    </form>
  );
}
