/**
 * The exactly-once ingest path: entries from many devices are gathered while
 * the previous transaction commits, then written in one transaction:
 *
 *   1. INSERT into the inbox (the event log) keyed (site, device, seq)
 *      ON CONFLICT DO NOTHING: a valid entry is applied by this very row
 *      (outcome 'applied', with its validated body), a refused one holds its
 *      place as 'quarantined';
 *   2. advance each device's contiguous high-water mark.
 *
 * Only after COMMIT does the bridge publish `ack {upTo}`. A duplicate
 * delivery inserts nothing, so it applies nothing, but is acked again, which
 * is what a device that lost an ack needs.
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
  /** Highest contiguous committed seq per device that had entries in the batch. */
  acks: Array<DeviceAddress & { upTo: number }>;
  inserted: number;
  duplicates: number;
  applied: number;
  refusals: Array<DeviceAddress & Refusal & { seq?: number; id?: string | null }>;
}

export interface IngestorOptions {
  db: Database;
  now: () => Date;
  logger: Logger;
  onCommitted: (outcome: FlushOutcome) => void;
  onFailed?: (err: Error, entries: number) => void;
  maxBatch?: number;
  /** Above this many pending entries, `whenReady()` holds back new deliveries. */
  highWater?: number;
}

export class Ingestor {
  readonly #o: Required<Omit<IngestorOptions, "onFailed">> & Pick<IngestorOptions, "onFailed">;
  #pending: PendingEntry[] = [];
  #messageRefusals: MessageRefusal[] = [];
  #flushing: Promise<void> | undefined;
  #scheduled = false;
  #waiters: Array<() => void> = [];
  #stopped = false;

  constructor(o: IngestorOptions) {
    this.#o = { maxBatch: 2000, highWater: 20_000, ...o };
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
    while (this.#flushing || this.#pending.length > 0 || this.#messageRefusals.length > 0) {
      if (!this.#flushing) this.#startFlush();
      await this.#flushing;
    }
  }

  async stop(): Promise<void> {
    await this.drain();
    this.#stopped = true;
  }

  #schedule(): void {
    if (this.#scheduled || this.#flushing) return;
    this.#scheduled = true;
    // Let the rest of this tick's deliveries join the batch.
    setImmediate(() => {
      this.#scheduled = false;
      if (!this.#flushing) this.#startFlush();
    });
  }

  #startFlush(): void {
    const batch = this.#pending.splice(0, this.#o.maxBatch);
    const refusals = this.#messageRefusals.splice(0);
    this.#flushing = this.#flush(batch, refusals).finally(() => {
      this.#flushing = undefined;
      if (this.#pending.length < this.#o.highWater) {
        for (const w of this.#waiters.splice(0)) w();
      }
      if (this.#pending.length > 0 || this.#messageRefusals.length > 0) this.#schedule();
    });
  }

  async #flush(batch: PendingEntry[], refusals: MessageRefusal[]): Promise<void> {
    if (batch.length === 0 && refusals.length === 0) return;
    if (await this.#commit(batch, refusals)) return;
    // One device's bad entry must not hold back the others that shared its transaction:
    // retry each device alone, so only a stream that really cannot commit waits.
    const groups = groupByDevice(batch, refusals);
    if (groups.length > 1) {
      for (const g of groups) await this.#commit(g.entries, g.refusals);
    }
  }

  /** One transaction; true if it committed. Nothing committed means nothing acked: devices resend. */
  async #commit(batch: PendingEntry[], refusals: MessageRefusal[]): Promise<boolean> {
    const receivedAt = this.#o.now();
    try {
      const outcome = await this.#o.db.transaction((tx) => commitBatch(tx, batch, refusals, receivedAt));
      this.#o.onCommitted(outcome);
      return true;
    } catch (err) {
      this.#o.logger.error({ err: (err as Error).message, entries: batch.length }, "ingest transaction failed");
      this.#o.onFailed?.(err as Error, batch.length);
      return false;
    }
  }
}

/**
 * The one statement of the exactly-once path: inbox insert, then the check-ins
 * of exactly the rows it inserted. Exported so the benchmark's raw baseline
 * runs the very same SQL.
 */
export const INGEST_SQL = `WITH ins AS (
    INSERT INTO inbox (site_id, device_id, seq, entry_id, kind, outcome, at, body, received_at)
    SELECT site_id, device_id, seq, entry_id, kind, outcome, at, body::jsonb, $9
    FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::timestamptz[], $8::text[])
      AS t(site_id, device_id, seq, entry_id, kind, outcome, at, body)
    ON CONFLICT DO NOTHING
    RETURNING outcome
  )
  SELECT count(*)::int AS inserted, (count(*) FILTER (WHERE outcome = 'applied'))::int AS applied FROM ins`;

function groupByDevice(
  batch: PendingEntry[],
  refusals: MessageRefusal[],
): Array<{ entries: PendingEntry[]; refusals: MessageRefusal[] }> {
  const groups = new Map<string, { entries: PendingEntry[]; refusals: MessageRefusal[] }>();
  const group = (d: DeviceAddress) => {
    const key = `${d.site}/${d.device}`;
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
  tx: Queryable,
  batch: PendingEntry[],
  messageRefusals: MessageRefusal[],
  receivedAt: Date,
): Promise<FlushOutcome> {
  // The same (device, seq) twice in one batch: keep the first, like the inbox would.
  const seen = new Set<string>();
  const unique = batch.filter((e) => {
    const k = `${e.site}\u0000${e.device}\u0000${e.seq}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });

  let inserted = 0;
  let applied = 0;
  if (unique.length > 0) {
    const { rows } = await tx.query<{ inserted: number; applied: number }>(INGEST_SQL, [
      unique.map((e) => e.site),
      unique.map((e) => e.device),
      unique.map((e) => e.seq),
      unique.map((e) => e.entryId),
      unique.map((e) => e.kind),
      unique.map((e) => (e.applied ? "applied" : "quarantined")),
      unique.map((e) => e.applied?.at ?? null),
      unique.map((e) => e.applied?.body ?? null),
      receivedAt,
    ]);
    inserted = rows[0]?.inserted ?? 0;
    applied = rows[0]?.applied ?? 0;
  }

  const quarantined = [
    ...unique
      .filter((e) => e.refusal)
      .map((e) => ({ ...e.refusal!, site: e.site, device: e.device, seq: e.seq as number | null, id: e.entryId })),
    ...messageRefusals.map((r) => ({ ...r, seq: null, id: null })),
  ];
  if (quarantined.length > 0) {
    await tx.query(
      `INSERT INTO quarantine (site_id, device_id, seq, code, reason, payload, received_at)
       SELECT * , $7::timestamptz FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[])
       ON CONFLICT DO NOTHING`,
      [
        quarantined.map((q) => q.site),
        quarantined.map((q) => q.device),
        quarantined.map((q) => q.seq),
        quarantined.map((q) => q.code),
        quarantined.map((q) => q.reason),
        quarantined.map((q) => q.payload),
        receivedAt,
      ],
    );
  }

  const acks = unique.length > 0 ? await advanceHighWater(tx, unique) : [];
  return {
    acks,
    inserted,
    duplicates: batch.length - inserted,
    applied,
    refusals: quarantined.map(({ seq, ...r }) => (seq === null ? r : { ...r, seq })),
  };
}

/** Moves each device's high-water mark to the end of its contiguous run and returns it. */
async function advanceHighWater(tx: Queryable, entries: PendingEntry[]): Promise<FlushOutcome["acks"]> {
  const devices = new Map<string, DeviceAddress>();
  for (const e of entries) devices.set(`${e.site}/${e.device}`, { site: e.site, device: e.device });
  const sites = [...devices.values()].map((d) => d.site);
  const ids = [...devices.values()].map((d) => d.device);
  await tx.query(
    `INSERT INTO device_streams (site_id, device_id)
     SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING`,
    [sites, ids],
  );
  // Only rows above the current mark are read: the contiguous run from acked_seq+1 is where
  // seq - row_number() stays equal to acked_seq. Cost is bounded by the unacked rows, not the stream.
  await tx.query(
    `UPDATE device_streams s SET acked_seq = r.up_to
     FROM (
       SELECT cur.site_id, cur.device_id, max(t.seq) AS up_to
       FROM unnest($1::text[], $2::text[]) AS d(site_id, device_id)
       JOIN device_streams cur USING (site_id, device_id)
       CROSS JOIN LATERAL (
         SELECT i.seq, i.seq - row_number() OVER (ORDER BY i.seq) AS base
         FROM inbox i
         WHERE i.site_id = cur.site_id AND i.device_id = cur.device_id AND i.seq > cur.acked_seq
         ORDER BY i.seq
       ) t
       WHERE t.base = cur.acked_seq
       GROUP BY cur.site_id, cur.device_id
     ) r
     WHERE s.site_id = r.site_id AND s.device_id = r.device_id`,
    [sites, ids],
  );
  const { rows } = await tx.query<{ site_id: string; device_id: string; acked_seq: number }>(
    `SELECT s.site_id, s.device_id, s.acked_seq FROM device_streams s
     JOIN unnest($1::text[], $2::text[]) AS d(site_id, device_id) USING (site_id, device_id)`,
    [sites, ids],
  );
  return rows.map((r) => ({ site: r.site_id, device: r.device_id, upTo: r.acked_seq }));
}
