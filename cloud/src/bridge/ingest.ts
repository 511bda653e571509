/**
 * The exactly-once ingest path. Entries from many devices are gathered while
 * earlier batches commit, and each batch is written by ONE statement, its
 * own transaction (autocommit), that:
 *
 *   1. inserts into the inbox (the event log) keyed (site, device, seq)
 *      ON CONFLICT DO NOTHING: a valid entry is applied by this very row
 *      (outcome 'applied', with its validated body), a refused one holds its
 *      place as 'quarantined' and its reason goes to `quarantine`;
 *   2. advances each device's contiguous high-water mark and returns it.
 *
 * Only after that statement commits does the bridge publish `ack {upTo}`. A
 * duplicate delivery inserts nothing, so it applies nothing, but is acked
 * again, which is what a device that lost an ack needs.
 *
 * Up to `concurrency` batches are in flight at once (on separate
 * connections), but a device's stream is never in two of them: the
 * high-water mark is computed from the statement's snapshot, which would not
 * see a concurrent batch's rows of the same device.
 */
import type { DeviceAddress, ErrorCode } from "@paylane/protocol";
import type { Logger } from "pino";
import type { Database, Queryable } from "../db/database.ts";

export interface Refusal {
  code: ErrorCode;
  reason: string;
  /** The refused message or entry, as received (stored for ops). */
  payload: string;
}

/** One journal entry on its way in; `seq` present means it occupies its place in the stream. */
export interface PendingEntry extends DeviceAddress {
  seq: number;
  entryId: string | null;
  kind: string;
  /** Device time and validated body (JSON) of an entry to apply; absent when quarantined. */
  applied?: { at: string; body: string };
  /** Set when the entry is quarantined instead of applied. */
  refusal?: Refusal;
}

/** A refusal of a whole message, with no seq to hold a place in the stream. */
export interface MessageRefusal extends DeviceAddress, Refusal {}

export interface FlushOutcome {
  /**
   * Per device that had entries in the batch: the highest contiguous committed
   * seq, and the highest seq in the batch (above `upTo`: a gap before it).
   */
  acks: Array<DeviceAddress & { upTo: number; maxSeq: number; conflicts: number[] }>;
  inserted: number;
  /** Entries that arrived at a seq the inbox held with another entry: kept in `seq_collisions`. */
  collisions: Array<DeviceAddress & { seq: number }>;
  /** Of those, how many were new (a redelivery of a kept collision is not). */
  newCollisions: number;
  duplicates: number;
  applied: number;
  refusals: Array<DeviceAddress & Refusal & { seq?: number; id?: string | null }>;
  /**
   * The entries this batch applied (first time in the inbox), without bodies:
   * what the committed-events feed tells viewers. Duplicates are not in it.
   */
  committed: Array<DeviceAddress & { seq: number; id: string; kind: string; at: string }>;
}

export interface IngestorOptions {
  db: Database;
  now: () => Date;
  logger: Logger;
  onCommitted: (outcome: FlushOutcome) => void;
  onFailed?: (err: Error, entries: number) => void;
  /** How long each ingest transaction took, committed or not (seconds, for the commit latency histogram). */
  onTimed?: (seconds: number) => void;
  maxBatch?: number;
  /** Batches committing at once (each needs its own connection; PGlite runs them one by one). */
  concurrency?: number;
  /** Above this many pending entries, `whenReady()` holds back new deliveries. */
  highWater?: number;
}

export class Ingestor {
  readonly #o: Required<Omit<IngestorOptions, "onFailed" | "onTimed">> & Pick<IngestorOptions, "onFailed" | "onTimed">;
  #pending: PendingEntry[] = [];
  #messageRefusals: MessageRefusal[] = [];
  /** Devices (`site/device`) with a batch in flight: their next entries wait for it. */
  readonly #busy = new Set<string>();
  readonly #flushes = new Set<Promise<void>>();
  #scheduled = false;
  #waiters: Array<() => void> = [];
  #stopped = false;

  constructor(o: IngestorOptions) {
    this.#o = { maxBatch: 2000, concurrency: 2, highWater: 20_000, ...o };
  }

  get pending(): number {
    return this.#pending.length;
  }

  add(entries: readonly PendingEntry[], refusals: readonly MessageRefusal[] = []): void {
    if (this.#stopped) return;
    this.#pending.push(...entries);
    this.#messageRefusals.push(...refusals);
    this.#schedule();
  }

  /** Resolves when there is room for more: the MQTT side waits on it before PUBACKing. */
  whenReady(): Promise<void> {
    if (this.#pending.length < this.#o.highWater) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Waits for everything already added to be committed (or to fail). */
  async drain(): Promise<void> {
    while (this.#flushes.size > 0 || this.#pending.length > 0 || this.#messageRefusals.length > 0) {
      this.#fill();
      if (this.#flushes.size > 0) await Promise.race(this.#flushes);
    }
  }

  async stop(): Promise<void> {
    await this.drain();
    this.#stopped = true;
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    // Let the rest of this tick's deliveries join the batch.
    setImmediate(() => {
      this.#scheduled = false;
      this.#fill();
    });
  }

  /** Starts batches while there is a free slot and something whose device is not already in flight. */
  #fill(): void {
    while (this.#flushes.size < this.#o.concurrency) {
      const batch = this.#take();
      const refusals = this.#messageRefusals.splice(0);
      if (batch.length === 0 && refusals.length === 0) return;
      const devices = new Set(batch.map(deviceKey));
      for (const d of devices) this.#busy.add(d);
      const flush: Promise<void> = this.#flush(batch, refusals).finally(() => {
        this.#flushes.delete(flush);
        for (const d of devices) this.#busy.delete(d);
        if (this.#pending.length < this.#o.highWater) {
          for (const w of this.#waiters.splice(0)) w();
        }
        if (this.#pending.length > 0 || this.#messageRefusals.length > 0) this.#schedule();
      });
      this.#flushes.add(flush);
    }
  }

  /** Up to maxBatch pending entries of devices not in flight, in arrival order; the rest stay queued. */
  #take(): PendingEntry[] {
    const batch: PendingEntry[] = [];
    if (this.#busy.size === 0 && this.#pending.length <= this.#o.maxBatch) {
      batch.push(...this.#pending);
      this.#pending = [];
      return batch;
    }
    const rest: PendingEntry[] = [];
    for (const e of this.#pending) {
      if (batch.length < this.#o.maxBatch && !this.#busy.has(deviceKey(e))) batch.push(e);
      else rest.push(e);
    }
    this.#pending = rest;
    return batch;
  }

  async #flush(batch: PendingEntry[], refusals: MessageRefusal[]): Promise<void> {
    if (await this.#commit(batch, refusals)) return;
    // One device's bad entry must not hold back the others that shared its statement:
    // retry each device alone, so only a stream that really cannot commit waits.
    const groups = groupByDevice(batch, refusals);
    if (groups.length > 1) {
      for (const g of groups) await this.#commit(g.entries, g.refusals);
    }
  }

  /** One statement, its own transaction; true if it committed. Nothing committed means nothing acked: devices resend. */
  async #commit(batch: PendingEntry[], refusals: MessageRefusal[]): Promise<boolean> {
    // A duration, not a point in time: the monotonic clock, not the injected one.
    const started = performance.now();
    try {
      const { outcome, deferred } = await commitBatch(this.#o.db, batch, refusals, this.#o.now()).finally(() =>
        this.#o.onTimed?.((performance.now() - started) / 1000),
      );
      // A second, different entry at a seq of this batch is compared with the first once that is committed.
      if (deferred.length > 0) this.add(deferred);
      this.#o.onCommitted(outcome);
      return true;
    } catch (err) {
      this.#o.logger.error({ err: (err as Error).message, entries: batch.length }, "ingest statement failed");
      this.#o.onFailed?.(err as Error, batch.length);
      return false;
    }
  }
}

const deviceKey = (d: DeviceAddress) => `${d.site}/${d.device}`;

/**
 * The one statement of the exactly-once path. Its parts see the snapshot
 * taken when it started, so the high-water step (`runs`) reads the inbox rows
 * committed before together with the batch itself (`incoming`: each
 * of its seqs is in the inbox once the statement commits, inserted now or
 * already there). Exported so the benchmark's raw reference runs the very
 * same SQL.
 *
 * Columns that cannot hold a newline travel as one newline-joined string
 * (see `lines`): `pg` would otherwise quote and escape every element of a
 * text[] in JavaScript, which cost the bridge a tenth of its CPU.
 */
export const INGEST_SQL = `WITH incoming AS (
    SELECT site_id, device_id, seq, entry_id, kind, outcome, nullif(at, '')::timestamptz AS at, nullif(body, '') AS body
    FROM unnest(string_to_array($1, E'\\n'), string_to_array($2, E'\\n'), string_to_array($3, E'\\n')::bigint[],
                $4::text[], $5::text[], string_to_array($6, E'\\n'), string_to_array($7, E'\\n'), string_to_array($8, E'\\n'))
      AS t(site_id, device_id, seq, entry_id, kind, outcome, at, body)
  ),
  ins AS (
    INSERT INTO inbox (site_id, device_id, seq, entry_id, kind, outcome, at, body, received_at)
    SELECT site_id, device_id, seq, entry_id, kind, outcome, at, body::jsonb, $9 FROM incoming
    -- payments lock their wallets (the ledger trigger) in member order, so two batches in flight
    -- take the same wallets in the same order and cannot deadlock
    ORDER BY CASE WHEN kind IN ('payment', 'topup') THEN body::jsonb ->> 'memberId' END NULLS FIRST, site_id, device_id, seq
    ON CONFLICT DO NOTHING
    RETURNING site_id, device_id, seq, outcome
  ),
  -- a seq the inbox already held, arriving with another entry (id, kind, time or body): never a
  -- duplicate. The held entry stays; the newcomer is kept whole, and the device hears of it on ack.
  -- The join reads the statement's snapshot, so it sees only rows committed before, never \`ins\`.
  collided AS (
    SELECT x.site_id, x.device_id, x.seq, x.entry_id, x.kind, x.at, x.body::jsonb AS body,
           i.entry_id AS held_entry_id, i.kind AS held_kind
    FROM incoming x JOIN inbox i USING (site_id, device_id, seq)
    -- only the rows that inserted nothing are looked up: a batch of new entries costs one hash anti-join
    WHERE NOT EXISTS (SELECT 1 FROM ins n WHERE n.site_id = x.site_id AND n.device_id = x.device_id AND n.seq = x.seq)
      AND (x.entry_id IS DISTINCT FROM i.entry_id OR x.kind <> i.kind
           OR (x.outcome = 'applied' AND i.outcome = 'applied' AND (x.at <> i.at OR x.body::jsonb <> i.body)))
  ),
  -- a seq that inserted nothing yet is not in this snapshot's inbox: another bridge of the share
  -- group inserted it at the same moment (ON CONFLICT waited for its commit). Whether it is the
  -- same entry or another cannot be told here; it is compared in a next batch, never dropped.
  raced AS (
    SELECT x.site_id, x.device_id, x.seq FROM incoming x
    WHERE NOT EXISTS (SELECT 1 FROM ins n WHERE n.site_id = x.site_id AND n.device_id = x.device_id AND n.seq = x.seq)
      AND NOT EXISTS (SELECT 1 FROM inbox i WHERE i.site_id = x.site_id AND i.device_id = x.device_id AND i.seq = x.seq)
  ),
  kept AS (
    INSERT INTO seq_collisions (site_id, device_id, seq, entry_id, kind, at, body, held_entry_id, held_kind, received_at)
    SELECT site_id, device_id, seq, entry_id, kind, at, body, held_entry_id, held_kind, $9 FROM collided
    ON CONFLICT DO NOTHING
    RETURNING 1
  ),
  refused AS (
    INSERT INTO quarantine (site_id, device_id, seq, code, reason, payload, received_at)
    SELECT *, $9 FROM unnest($10::text[], $11::text[], $12::bigint[], $13::text[], $14::text[], $15::text[])
    ON CONFLICT DO NOTHING
  ),
  marks AS (
    SELECT d.site_id, d.device_id, coalesce(s.acked_seq, 0) AS acked
    FROM (SELECT DISTINCT site_id, device_id FROM incoming) d
    LEFT JOIN device_streams s USING (site_id, device_id)
  ),
  runs AS (
    -- the contiguous run from acked+1 is where seq - row_number() stays equal to acked;
    -- only rows above the mark are read, so the cost is bounded by the unacked rows
    SELECT m.site_id, m.device_id, coalesce(max(r.seq), m.acked) AS up_to
    FROM marks m
    LEFT JOIN LATERAL (
      SELECT u.seq, u.seq - row_number() OVER (ORDER BY u.seq) AS base
      FROM (
        SELECT i.seq FROM inbox i WHERE i.site_id = m.site_id AND i.device_id = m.device_id AND i.seq > m.acked
        UNION
        SELECT x.seq FROM incoming x WHERE x.site_id = m.site_id AND x.device_id = m.device_id AND x.seq > m.acked
      ) u
    ) r ON r.base = m.acked
    GROUP BY m.site_id, m.device_id, m.acked
  ),
  streams AS (
    INSERT INTO device_streams AS s (site_id, device_id, acked_seq)
    SELECT site_id, device_id, up_to FROM runs
    ON CONFLICT (site_id, device_id) DO UPDATE SET acked_seq = greatest(s.acked_seq, excluded.acked_seq)
    RETURNING site_id, device_id, acked_seq
  )
  SELECT (SELECT count(*) FROM ins)::int AS inserted,
         (SELECT count(*) FILTER (WHERE outcome = 'applied') FROM ins)::int AS applied,
         (SELECT count(*) FROM kept)::int AS collisions_new,
         coalesce((SELECT json_agg(json_build_array(site_id, device_id, seq)) FROM collided), '[]') AS collisions,
         coalesce((SELECT json_agg(json_build_array(site_id, device_id, seq)) FROM raced), '[]') AS raced,
         coalesce((SELECT json_agg(json_build_array(site_id, device_id, acked_seq)) FROM streams), '[]') AS marks,
         coalesce((SELECT json_agg(json_build_array(site_id, device_id, seq)) FROM ins WHERE outcome = 'applied'), '[]') AS applied_seqs`;

/**
 * One column as newline-joined text, split again by `string_to_array` in SQL;
 * "" reads as NULL. Only for values that cannot contain a newline: ids that
 * match ID_PATTERN, seqs, validated ISO times, fixed words, and bodies from
 * JSON.stringify (which escapes every control character).
 */
function lines(entries: readonly PendingEntry[], column: (e: PendingEntry) => string): string {
  return entries.map(column).join("\n");
}

function groupByDevice(
  batch: PendingEntry[],
  refusals: MessageRefusal[],
): Array<{ entries: PendingEntry[]; refusals: MessageRefusal[] }> {
  const groups = new Map<string, { entries: PendingEntry[]; refusals: MessageRefusal[] }>();
  const group = (d: DeviceAddress) => {
    const key = deviceKey(d);
    let g = groups.get(key);
    if (!g) {
      g = { entries: [], refusals: [] };
      groups.set(key, g);
    }
    return g;
  };
  for (const e of batch) group(e).entries.push(e);
  for (const r of refusals) group(r).refusals.push(r);
  return [...groups.values()];
}

async function commitBatch(
  db: Queryable,
  batch: PendingEntry[],
  messageRefusals: MessageRefusal[],
  receivedAt: Date,
): Promise<{ outcome: FlushOutcome; deferred: PendingEntry[] }> {
  // The same (device, seq) twice in one batch: the first goes in; a copy of it is a duplicate, and
  // anything else waits for the next batch, where the inbox holds the first to compare it with.
  const seen = new Map<string, PendingEntry>();
  const deferred: PendingEntry[] = [];
  const unique = batch.filter((e) => {
    const k = `${e.site}\u0000${e.device}\u0000${e.seq}`;
    const first = seen.get(k);
    if (first === undefined) {
      seen.set(k, e);
      return true;
    }
    if (!sameEntry(first, e)) deferred.push(e);
    return false;
  });
  const quarantined = [
    ...unique
      .filter((e) => e.refusal)
      .map((e) => ({ ...e.refusal!, site: e.site, device: e.device, seq: e.seq as number | null, id: e.entryId })),
    ...messageRefusals.map((r) => ({ ...r, seq: null, id: null })),
  ];

  const { rows } = await db.query<{
    inserted: number;
    applied: number;
    collisions_new: number;
    collisions: Array<[string, string, number]>;
    raced: Array<[string, string, number]>;
    marks: Array<[string, string, number]>;
    applied_seqs: Array<[string, string, number]>;
  }>(INGEST_SQL, [
    lines(unique, (e) => e.site),
    lines(unique, (e) => e.device),
    lines(unique, (e) => String(e.seq)),
    // free text from a refused entry may hold a newline: these two stay arrays
    unique.map((e) => e.entryId),
    unique.map((e) => e.kind),
    lines(unique, (e) => (e.applied ? "applied" : "quarantined")),
    lines(unique, (e) => e.applied?.at ?? ""),
    lines(unique, (e) => e.applied?.body ?? ""),
    receivedAt,
    quarantined.map((q) => q.site),
    quarantined.map((q) => q.device),
    quarantined.map((q) => q.seq),
    quarantined.map((q) => q.code),
    quarantined.map((q) => q.reason),
    quarantined.map((q) => q.payload),
  ]);
  const row = rows[0]!;
  for (const [site, device, seq] of row.raced) {
    const e = seen.get(`${site}\u0000${device}\u0000${seq}`);
    if (e) deferred.push(e);
  }
  const maxSeq = new Map<string, number>();
  for (const e of unique) {
    const key = deviceKey(e);
    maxSeq.set(key, Math.max(maxSeq.get(key) ?? 0, e.seq));
  }
  const conflicts = new Map<string, number[]>();
  for (const [site, device, seq] of row.collisions) {
    const key = deviceKey({ site, device });
    conflicts.set(key, [...(conflicts.get(key) ?? []), seq]);
  }
  return {
    outcome: {
      acks: row.marks.map(([site, device, upTo]) => ({
        site,
        device,
        upTo,
        maxSeq: maxSeq.get(deviceKey({ site, device })) ?? upTo,
        conflicts: (conflicts.get(deviceKey({ site, device })) ?? []).sort((a, b) => a - b),
      })),
      inserted: row.inserted,
      duplicates: batch.length - deferred.length - row.inserted - row.collisions.length,
      applied: row.applied,
      collisions: row.collisions.map(([site, device, seq]) => ({ site, device, seq })),
      newCollisions: row.collisions_new,
      refusals: quarantined.map(({ seq, ...r }) => (seq === null ? r : { ...r, seq })),
      committed: row.applied_seqs.flatMap(([site, device, seq]) => {
        const e = seen.get(`${site}\u0000${device}\u0000${seq}`);
        return e?.applied && e.entryId ? [{ site, device, seq, id: e.entryId, kind: e.kind, at: e.applied.at }] : [];
      }),
    },
    deferred,
  };
}

/** The same journal entry (a redelivery), as opposed to another entry at the same seq. */
function sameEntry(a: PendingEntry, b: PendingEntry): boolean {
  return (
    a.entryId === b.entryId &&
    a.kind === b.kind &&
    a.applied?.at === b.applied?.at &&
    a.applied?.body === b.applied?.body
  );
}
