/**
 * The consistency check of a restored cloud database, the project's own:
 *
 * - money: every wallet's balance is the sum of its ledger entries, its entry
 *   count their number, and every entry's balance_after the running sum in
 *   wallet order (a changed amount, a lost or an extra entry all show);
 * - the journal: every inbox row's (site, device, seq) is unique, read from
 *   the table itself (index scans off), not from the unique index that
 *   should guarantee it;
 * - against the source, when given: per table, the rows up to the restore
 *   point (those whose creation time is ≤ the point) counted on both sides,
 *   and for the append-only tables a checksum of those rows; the wallets, whose
 *   rows change in place, are compared with the source's ledger summed up to
 *   the point. Tables with no creation time are compared whole for a restore
 *   to latest, and listed side by side (not judged) for a point in time.
 */
import pg from "pg";

/** The column that says when a row came to be, per table (never an updated_at). */
export const POINT_COLUMN: Readonly<Record<string, string>> = {
  inbox: "received_at",
  quarantine: "received_at",
  seq_collisions: "received_at",
  ledger_entries: "recorded_at",
  ledger_exceptions: "recorded_at",
  offline_topups: "recorded_at",
  terminal_settlements: "recorded_at",
  wallet_overdrafts: "opened_at",
  idempotency_keys: "created_at",
  topup_intents: "created_at",
  devices: "created_at",
  device_commands: "requested_at",
  device_telemetry: "received_at",
  device_status_history: "at",
  cloud_alerts: "at",
  audit_log: "at",
  enrol_claims: "created_at",
  enrolled_devices: "enrolled_at",
  enrolment_audit: "at",
  operators: "created_at",
  operator_sessions: "created_at",
  operator_refresh_tokens: "issued_at",
  backup_runs: "finished_at",
};

/** Rows never changed once written: their contents are compared too, by checksum. */
export const APPEND_ONLY = new Set([
  "inbox",
  "quarantine",
  "ledger_entries",
  "ledger_exceptions",
  "device_telemetry",
  "device_status_history",
  "audit_log",
  "enrolment_audit",
]);

export interface TableComparison {
  table: string;
  /** The creation-time column used, or null (no such column). */
  column: string | null;
  source: number | null;
  restored: number;
  sourceChecksum?: string;
  restoredChecksum?: string;
  /** How the table was compared, in words (`received_at ≤ point`, `whole table`, `the source's ledger ≤ point`). */
  comparedBy: string;
  /** "match" | "differ" | "not judged" (no creation time and a point in time). */
  verdict: "match" | "differ" | "not judged";
}

export interface CheckReport {
  ok: boolean;
  at: string | null;
  wallets: number;
  ledgerEntries: number;
  inboxRows: number;
  /** Wallets whose balance, entry count or running balances do not add up. */
  ledgerMismatches: Array<{ site: string; member: string; balance: number; sum: number; problem: string }>;
  duplicateInboxKeys: Array<{ site: string; device: string; seq: number; count: number }>;
  /** Wallets whose restored balance is not the source's ledger summed to the point. */
  walletsVsSourceLedger: Array<{ site: string; member: string; restored: number; source: number }>;
  tables: TableComparison[];
  problems: string[];
  seconds: number;
}

export interface CheckOptions {
  /** The source cloud database; without it only the restored database's own invariants are checked. */
  source?: string | undefined;
  restored: string;
  schema: string;
  /** The restore point; absent: latest (everything). */
  at?: Date | undefined;
}

async function open(url: string, schema: string, which: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    await client.query(`SET search_path TO "${schema.replaceAll('"', '""')}"`);
    await client.query("SET default_transaction_read_only = on");
    const { rows } = await client.query<{ ok: boolean }>("SELECT to_regclass('ledger_entries') IS NOT NULL AS ok");
    if (!rows[0]!.ok)
      throw new Error(
        `the ${which} database has no schema ${schema} with the cloud's tables (--schema names the cloud's DATABASE_SCHEMA)`,
      );
  } catch (err) {
    await client.end().catch(() => {});
    throw err;
  }
  return client;
}

const ident = (name: string) => `"${name.replaceAll('"', '""')}"`;

export async function consistencyCheck(o: CheckOptions): Promise<CheckReport> {
  const started = performance.now();
  const restored = await open(o.restored, o.schema, "restored");
  const source = o.source
    ? await open(o.source, o.schema, "source").catch(async (err: unknown) => {
        await restored.end().catch(() => {});
        throw err;
      })
    : undefined;
  try {
    const problems: string[] = [];
    const ledger = await restored.query<{
      site: string;
      member: string;
      balance: string;
      sum: string;
      problem: string;
    }>(
      `WITH e AS (
         SELECT site_id, member_id, n, amount, balance_after,
                sum(amount) OVER (PARTITION BY site_id, member_id ORDER BY n) AS running,
                row_number() OVER (PARTITION BY site_id, member_id ORDER BY n) AS pos
         FROM ledger_entries),
       per AS (
         SELECT site_id, member_id, coalesce(sum(amount), 0) AS sum, count(*) AS entries,
                count(*) FILTER (WHERE balance_after <> running) AS bad_running,
                count(*) FILTER (WHERE n <> pos) AS bad_positions
         FROM e GROUP BY 1, 2)
       SELECT w.site_id AS site, w.member_id AS member, w.balance::text AS balance, coalesce(p.sum, 0)::text AS sum,
              concat_ws('; ',
                CASE WHEN w.balance <> coalesce(p.sum, 0) THEN 'balance is not the sum of its entries' END,
                CASE WHEN w.entries <> coalesce(p.entries, 0) THEN 'entry count differs from the wallet''s' END,
                CASE WHEN p.bad_running > 0 THEN p.bad_running || ' entries whose balance_after is not the running sum' END,
                CASE WHEN p.bad_positions > 0 THEN 'positions are not 1..n' END) AS problem
       FROM wallets w FULL JOIN per p ON p.site_id = w.site_id AND p.member_id = w.member_id
       WHERE w.balance IS DISTINCT FROM coalesce(p.sum, 0) OR w.entries IS DISTINCT FROM coalesce(p.entries, 0)
          OR p.bad_running > 0 OR p.bad_positions > 0
       ORDER BY 1, 2`,
    );
    const ledgerMismatches = ledger.rows.map((r) => ({
      site: r.site,
      member: r.member,
      balance: Number(r.balance),
      sum: Number(r.sum),
      problem: r.problem || "entries without a wallet",
    }));
    for (const m of ledgerMismatches)
      problems.push(`wallet ${m.site}/${m.member}: ${m.problem} (balance ${m.balance}, entries sum to ${m.sum})`);

    // Read the heap, not the unique index that is supposed to make this impossible.
    await restored.query("SET enable_indexscan = off; SET enable_indexonlyscan = off; SET enable_bitmapscan = off");
    const dups = await restored.query<{ site: string; device: string; seq: string; count: string }>(
      `SELECT site_id AS site, device_id AS device, seq::text, count(*)::text FROM inbox
       GROUP BY 1, 2, 3 HAVING count(*) > 1 ORDER BY 1, 2, 3`,
    );
    await restored.query("RESET enable_indexscan; RESET enable_indexonlyscan; RESET enable_bitmapscan");
    const duplicateInboxKeys = dups.rows.map((r) => ({
      site: r.site,
      device: r.device,
      seq: Number(r.seq),
      count: Number(r.count),
    }));
    for (const d of duplicateInboxKeys) problems.push(`inbox ${d.site}/${d.device} seq ${d.seq}: ${d.count} rows`);

    const totals = await restored.query<{ wallets: string; entries: string; inbox: string }>(
      "SELECT (SELECT count(*) FROM wallets)::text AS wallets, (SELECT count(*) FROM ledger_entries)::text AS entries, (SELECT count(*) FROM inbox)::text AS inbox",
    );

    const tables: TableComparison[] = [];
    const walletsVsSourceLedger: CheckReport["walletsVsSourceLedger"] = [];
    if (source) {
      const names = await tableColumns(restored, o.schema);
      for (const [table, columns] of names) {
        const wanted = POINT_COLUMN[table];
        const column = wanted && columns.has(wanted) ? wanted : null;
        const filter = o.at && column ? `WHERE ${ident(column)} <= $1` : "";
        const params = o.at && column ? [o.at] : [];
        const checksum = APPEND_ONLY.has(table) || !o.at;
        const sql = `SELECT count(*)::text AS n${checksum ? `, md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) AS sum` : ""} FROM ${ident(table)} t ${filter}`;
        const [r, s] = await Promise.all([
          restored.query<{ n: string; sum?: string }>(sql, params),
          source.query<{ n: string; sum?: string }>(sql, params).catch(() => undefined),
        ]);
        const cmp: TableComparison = {
          table,
          column,
          source: s ? Number(s.rows[0]!.n) : null,
          restored: Number(r.rows[0]!.n),
          ...(checksum ? { restoredChecksum: r.rows[0]!.sum, sourceChecksum: s?.rows[0]?.sum } : {}),
          comparedBy: !o.at ? "whole table" : column ? `${column} ≤ point` : "(no creation time)",
          verdict: "match",
        };
        if (o.at && !column) cmp.verdict = "not judged";
        else if (cmp.source !== cmp.restored || (checksum && cmp.sourceChecksum !== cmp.restoredChecksum))
          cmp.verdict = "differ";
        if (cmp.verdict === "differ")
          problems.push(
            `${table}: ${cmp.restored} rows restored, ${cmp.source ?? "no table"} in the source${o.at && column ? ` with ${column} ≤ the point` : ""}` +
              (cmp.source === cmp.restored ? " (same count, different contents)" : ""),
          );
        tables.push(cmp);
      }
      // Wallets change in place: their restored balances must be the source's ledger summed to the point.
      const sums = await source.query<{ site: string; member: string; sum: string }>(
        `SELECT site_id AS site, member_id AS member, sum(amount)::text AS sum FROM ledger_entries
         ${o.at ? "WHERE recorded_at <= $1" : ""} GROUP BY 1, 2`,
        o.at ? [o.at] : [],
      );
      const want = new Map(sums.rows.map((r) => [`${r.site}\u0000${r.member}`, Number(r.sum)]));
      const have = await restored.query<{ site: string; member: string; balance: string }>(
        "SELECT site_id AS site, member_id AS member, balance::text FROM wallets",
      );
      for (const w of have.rows) {
        const expected = want.get(`${w.site}\u0000${w.member}`) ?? 0;
        if (Number(w.balance) !== expected) {
          walletsVsSourceLedger.push({ site: w.site, member: w.member, restored: Number(w.balance), source: expected });
          problems.push(
            `wallet ${w.site}/${w.member}: restored balance ${w.balance}, the source's ledger up to the point sums to ${expected}`,
          );
        }
      }
      const wallets = tables.find((t) => t.table === "wallets");
      if (wallets && o.at) {
        wallets.comparedBy = "source ledger ≤ point";
        wallets.verdict = walletsVsSourceLedger.length === 0 ? "match" : "differ";
      }
    }
    return {
      ok: problems.length === 0,
      at: o.at?.toISOString() ?? null,
      wallets: Number(totals.rows[0]!.wallets),
      ledgerEntries: Number(totals.rows[0]!.entries),
      inboxRows: Number(totals.rows[0]!.inbox),
      ledgerMismatches,
      duplicateInboxKeys,
      walletsVsSourceLedger,
      tables,
      problems,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await restored.end();
    await source?.end();
  }
}

async function tableColumns(db: pg.Client, schema: string): Promise<Map<string, Set<string>>> {
  const { rows } = await db.query<{ t: string; c: string }>(
    `SELECT c.table_name AS t, c.column_name AS c FROM information_schema.columns c
     JOIN information_schema.tables t USING (table_schema, table_name)
     WHERE c.table_schema = $1 AND t.table_type = 'BASE TABLE' ORDER BY 1`,
    [schema],
  );
  const out = new Map<string, Set<string>>();
  for (const r of rows) {
    const set = out.get(r.t) ?? new Set<string>();
    set.add(r.c);
    out.set(r.t, set);
  }
  return out;
}

/** The report as a person reads it. */
export function checkText(r: CheckReport): string {
  const lines = [
    `consistency check ${r.at ? `at ${r.at}` : "(latest)"}: ${r.ok ? "PASSED" : "FAILED"} (${r.seconds.toFixed(2)} s)`,
    `  ledger: ${r.wallets} wallets, ${r.ledgerEntries} entries: ${r.ledgerMismatches.length === 0 ? "every balance is the sum of its entries" : `${r.ledgerMismatches.length} wallet${r.ledgerMismatches.length === 1 ? "" : "s"} do${r.ledgerMismatches.length === 1 ? "es" : ""} not add up`}`,
    `  inbox: ${r.inboxRows} rows: ${r.duplicateInboxKeys.length === 0 ? "every (site, device, seq) unique" : `${r.duplicateInboxKeys.length} keys held twice`}`,
  ];
  if (r.tables.length > 0) {
    lines.push(
      `  wallets vs the source's ledger${r.at ? " up to the point" : ""}: ${r.walletsVsSourceLedger.length === 0 ? "every balance matches" : `${r.walletsVsSourceLedger.length} differ`}`,
    );
    lines.push(`  ${"table".padEnd(24)} ${"compared by".padEnd(22)} source  restored  verdict`);
    for (const t of r.tables) {
      const sum = t.restoredChecksum ? ` md5 ${t.restoredChecksum.slice(0, 8)}` : "";
      lines.push(
        `  ${t.table.padEnd(24)} ${t.comparedBy.padEnd(22)} ${String(t.source ?? "-").padStart(6)}  ${String(t.restored).padStart(8)}  ${t.verdict}${sum}`,
      );
    }
  }
  for (const p of r.problems) lines.push(`  ✗ ${p}`);
  return lines.join("\n");
}
