/**
 * The raw baselines: how fast `pg` alone can put rows into the same tables,
 * one connection, sequential N-row statements (each its own autocommit
 * transaction), no MQTT, no validation:
 *
 * - `unnest`: INSERT INTO inbox ... SELECT ... FROM unnest(...) ON CONFLICT DO NOTHING
 * - `values`: the same rows as a multi-row VALUES list
 * - `same-work`: the bridge's own ingest statement (imported) (inbox, then
 *   the check-ins of the rows really inserted), i.e. the database work the
 *   bridge cannot avoid with today's schema, without MQTT, JSON or zod.
 */
import { randomUUID } from "node:crypto";
import { INGEST_SQL } from "@paylane/cloud";
import pg from "pg";

export interface RawRows {
  site: string;
  devices: string[];
  seqs: number[];
  entryIds: string[];
  memberIds: string[];
  /** Validated check-in bodies as the bridge stores them (JSON). */
  bodies: string[];
  at: string;
}

/** `count` rows spread over `devices` devices with gap-free seqs per device. */
export function rawRows(site: string, devices: number, count: number): RawRows {
  const rows: RawRows = {
    site,
    devices: [],
    seqs: [],
    entryIds: [],
    memberIds: [],
    bodies: [],
    at: new Date().toISOString(),
  };
  const perDevice = Math.ceil(count / devices);
  for (let i = 0; i < count; i++) {
    rows.devices.push(`d${String(Math.floor(i / perDevice) + 1).padStart(2, "0")}`);
    rows.seqs.push((i % perDevice) + 1);
    rows.entryIds.push(randomUUID());
    rows.memberIds.push(`m-${i % 1000}`);
    rows.bodies.push(
      JSON.stringify({
        memberId: `m-${i % 1000}`,
        credential: { type: "card", uid: "04A2B3C4" },
        replicaVersion: 1,
        offline: false,
      }),
    );
  }
  return rows;
}

export async function connectRaw(url: string, schema: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, options: `-c search_path=${schema}` });
  await client.connect();
  return client;
}

/** The bridge's statement advances device_streams, which only enrolled devices have: enrol the rows' devices. */
export async function enrolRaw(client: pg.Client, rows: RawRows): Promise<void> {
  await client.query("INSERT INTO sites (id, name) VALUES ($1, $1) ON CONFLICT DO NOTHING", [rows.site]);
  await client.query(
    "INSERT INTO devices (site_id, id) SELECT $1, d FROM unnest($2::text[]) AS d ON CONFLICT DO NOTHING",
    [rows.site, [...new Set(rows.devices)]],
  );
}

export type RawMode = "unnest" | "values" | "same-work";

/** The same columns, as arrays, that the bridge sends for the inbox. */
const UNNEST_SQL = `INSERT INTO inbox (site_id, device_id, seq, entry_id, kind, outcome, at, body, received_at)
  SELECT site_id, device_id, seq, entry_id, kind, outcome, at, body::jsonb, $9
  FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::timestamptz[], $8::text[])
    AS t(site_id, device_id, seq, entry_id, kind, outcome, at, body)
  ON CONFLICT DO NOTHING`;

/** The bridge's own ingest statement, run raw (nothing to quarantine). */
const NO_QUARANTINE = [[], [], [], [], [], []];
const SAME_WORK_SQL = INGEST_SQL;

function valuesSql(n: number): string {
  const tuples: string[] = [];
  for (let i = 0; i < n; i++) {
    const b = i * 8;
    tuples.push(
      `($${b + 1}, $${b + 2}, $${b + 3}::bigint, $${b + 4}, $${b + 5}, $${b + 6}, $${b + 7}::timestamptz, $${b + 8}::jsonb, $${n * 8 + 1}::timestamptz)`,
    );
  }
  return `INSERT INTO inbox (site_id, device_id, seq, entry_id, kind, outcome, at, body, received_at) VALUES ${tuples.join(", ")} ON CONFLICT DO NOTHING`;
}

/** Inserts every row in `batch`-row statements; returns rows actually inserted and the elapsed ms. */
export async function rawInsert(
  client: pg.Client,
  rows: RawRows,
  mode: RawMode,
  batch: number,
  onBatch?: (done: number) => void,
): Promise<{ inserted: number; ms: number }> {
  const n = rows.seqs.length;
  let inserted = 0;
  const t0 = performance.now();
  for (let from = 0; from < n; from += batch) {
    const to = Math.min(n, from + batch);
    const receivedAt = new Date();
    let result: pg.QueryResult;
    if (mode === "same-work") {
      const k = to - from;
      const sites = new Array(k).fill(rows.site);
      const devices = rows.devices.slice(from, to);
      const seqs = rows.seqs.slice(from, to);
      const ids = rows.entryIds.slice(from, to);
      // The bridge's own encoding of the columns (see `lines` in cloud/src/bridge/ingest.ts).
      const r = await client.query<{ inserted: number; applied: number }>(SAME_WORK_SQL, [
        sites.join("\n"),
        devices.join("\n"),
        seqs.join("\n"),
        ids,
        new Array(k).fill("checkin"),
        new Array(k).fill("applied").join("\n"),
        new Array(k).fill(rows.at).join("\n"),
        rows.bodies.slice(from, to).join("\n"),
        receivedAt,
        ...NO_QUARANTINE,
      ]);
      inserted += Math.min(r.rows[0]?.inserted ?? 0, r.rows[0]?.applied ?? 0);
      onBatch?.(to);
      continue;
    }
    if (mode === "unnest") {
      result = await client.query(UNNEST_SQL, [
        new Array(to - from).fill(rows.site),
        rows.devices.slice(from, to),
        rows.seqs.slice(from, to),
        rows.entryIds.slice(from, to),
        new Array(to - from).fill("checkin"),
        new Array(to - from).fill("applied"),
        new Array(to - from).fill(rows.at),
        rows.bodies.slice(from, to),
        receivedAt,
      ]);
    } else {
      const params: unknown[] = [];
      for (let i = from; i < to; i++)
        params.push(
          rows.site,
          rows.devices[i],
          rows.seqs[i],
          rows.entryIds[i],
          "checkin",
          "applied",
          rows.at,
          rows.bodies[i],
        );
      params.push(receivedAt);
      result = await client.query(valuesSql(to - from), params);
    }
    inserted += result.rowCount ?? 0;
    onBatch?.(to);
  }
  return { inserted, ms: performance.now() - t0 };
}
