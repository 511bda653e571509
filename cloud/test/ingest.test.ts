/**
 * The ingestor's commit path on PGlite: exactly-once through the inbox, the
 * contiguous high-water mark, and a device whose entries cannot be committed
 * never holding back the others that shared its transaction.
 */
import { randomUUID } from "node:crypto";
import pino from "pino";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { type FlushOutcome, Ingestor, type PendingEntry } from "../src/bridge/ingest.ts";
import type { Database } from "../src/db/database.ts";
import { migrate } from "../src/db/migrate.ts";
import { openPglite } from "../src/db/pglite.ts";

const SITE = "s1";

function entry(device: string, seq: number): PendingEntry {
  const id = randomUUID();
  return {
    site: SITE,
    device,
    seq,
    entryId: id,
    kind: "checkin",
    applied: {
      at: new Date(0).toISOString(),
      body: JSON.stringify({
        memberId: `m-${device}-${seq}`,
        credential: { type: "card", uid: "04A2B3C4" },
        replicaVersion: 1,
        offline: false,
      }),
    },
  };
}

/** The devices whose entries an ingest statement carries (its newline-joined device column). */
function devicesOf(params: readonly unknown[] | undefined): string[] {
  const column = params?.[1];
  return typeof column === "string" && column !== "" ? column.split("\n") : [];
}

/** Fails any statement that carries `device`'s entries, like an entry Postgres refuses. */
function poisoned(db: Database, device: string): Database {
  return {
    ...db,
    query: (sql, params) => {
      if (devicesOf(params).includes(device)) throw new Error(`refused: ${device}`);
      return db.query(sql, params);
    },
  };
}

async function setUp(devices: string[]) {
  const db = await openPglite();
  await migrate(db);
  await db.query("INSERT INTO sites (id, name) VALUES ($1, $1)", [SITE]);
  for (const d of devices) await db.query("INSERT INTO devices (site_id, id) VALUES ($1, $2)", [SITE, d]);
  return db;
}

function ingestor(db: Database, outcomes: FlushOutcome[], failures: number[]) {
  return new Ingestor({
    db,
    now: () => new Date(1000),
    logger: pino({ level: "silent" }),
    onCommitted: (o) => outcomes.push(o),
    onFailed: (_err, n) => failures.push(n),
  });
}

test("duplicates insert nothing, are acked again, and the ack stops at the first gap", async () => {
  const db = await setUp(["k1"]);
  const outcomes: FlushOutcome[] = [];
  const ing = ingestor(db, outcomes, []);
  const e = [1, 2, 3, 5].map((s) => entry("k1", s));
  ing.add(e);
  await ing.drain();
  ing.add([e[0]!, e[1]!]);
  await ing.drain();
  assert.equal(
    outcomes.map((o) => [o.inserted, o.duplicates, o.acks[0]?.upTo]),
    [
      [4, 0, 3],
      [0, 2, 3],
    ],
  );
  ing.add([entry("k1", 4)]);
  await ing.drain();
  assert.is(outcomes.at(-1)!.acks[0]!.upTo, 5, "filling the gap acks through the entries after it");
  const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM checkins");
  assert.is(rows[0]!.n, 5);
  await db.close();
});

test("a device whose entries cannot commit does not hold back the others in the same transaction", async () => {
  const db = await setUp(["good", "bad"]);
  const outcomes: FlushOutcome[] = [];
  const failures: number[] = [];
  const ing = ingestor(poisoned(db, "bad"), outcomes, failures);
  ing.add([entry("good", 1), entry("bad", 1), entry("good", 2)]);
  await ing.drain();
  const acks = outcomes.flatMap((o) => o.acks.map((a) => [a.device, a.upTo]));
  assert.equal(acks, [["good", 2]]);
  assert.equal(failures, [3, 1], "the shared transaction failed, then the bad device alone");
  const { rows } = await db.query<{ device_id: string }>("SELECT DISTINCT device_id FROM inbox");
  assert.equal(rows, [{ device_id: "good" }], "nothing of the bad device was committed, nothing acked");
  await db.close();
});

test("every column lands as sent: quarantined entries with free text, nulls, and a lone empty value", async () => {
  const db = await setUp(["k1", "k2"]);
  const ing = ingestor(db, [], []);
  const refused = (device: string, seq: number, kind: string): PendingEntry => ({
    site: SITE,
    device,
    seq,
    entryId: null,
    kind,
    refusal: { code: "unknown-kind", reason: `unknown kind ${JSON.stringify(kind)}`, payload: "{}" },
  });
  const ok = entry("k1", 1);
  ing.add([ok, refused("k1", 2, 'two\nlines, "quoted" {braces}')]);
  ing.add([refused("k2", 1, "x")]); // a batch whose at/body columns are a single empty value
  await ing.drain();
  const { rows } = await db.query<Record<string, unknown>>(
    "SELECT device_id, seq, entry_id, kind, outcome, at, body FROM inbox ORDER BY device_id, seq",
  );
  assert.equal(rows, [
    {
      device_id: "k1",
      seq: 1,
      entry_id: ok.entryId,
      kind: "checkin",
      outcome: "applied",
      at: new Date(ok.applied!.at),
      body: JSON.parse(ok.applied!.body),
    },
    {
      device_id: "k1",
      seq: 2,
      entry_id: null,
      kind: 'two\nlines, "quoted" {braces}',
      outcome: "quarantined",
      at: null,
      body: null,
    },
    { device_id: "k2", seq: 1, entry_id: null, kind: "x", outcome: "quarantined", at: null, body: null },
  ]);
  const q = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM quarantine");
  assert.is(q.rows[0]!.n, 2);
  await db.close();
});

/** Holds every statement until the test releases it, recording which devices each one carried. */
function gated(db: Database) {
  const held: Array<{ devices: string[]; release: () => void }> = [];
  const wrapped: Database = {
    ...db,
    query: async (sql, params) => {
      const devices = [...new Set(devicesOf(params))].sort();
      await new Promise<void>((release) => held.push({ devices, release }));
      return db.query(sql, params);
    },
  };
  return { db: wrapped, held };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

test("two batches commit at once, but a device is never in both: its next entries wait", async () => {
  const db = await setUp(["k1", "k2"]);
  const g = gated(db);
  const outcomes: FlushOutcome[] = [];
  const ing = ingestor(g.db, outcomes, []);
  ing.add([entry("k1", 1)]);
  await settle();
  ing.add([entry("k1", 2), entry("k2", 1)]);
  await settle();
  assert.equal(
    g.held.map((h) => h.devices),
    [["k1"], ["k2"]],
    "k2 went ahead in a second statement, k1's second entry waited for its first",
  );
  g.held[0]!.release();
  await settle();
  await settle();
  assert.equal(g.held.at(-1)!.devices, ["k1"], "k1's next entry went once its first batch committed");
  for (const h of g.held) h.release();
  await ing.drain();
  const acks = Object.fromEntries(outcomes.flatMap((o) => o.acks.map((a) => [a.device, a.upTo])));
  assert.equal(acks, { k1: 2, k2: 1 });
  await db.close();
});

test("another entry at a held seq is a collision, not a duplicate: kept whole, the held one untouched, the ack lists it", async () => {
  const db = await setUp(["k1"]);
  const outcomes: FlushOutcome[] = [];
  const ing = ingestor(db, outcomes, []);
  const held = [1, 2].map((s) => entry("k1", s));
  ing.add(held);
  await ing.drain();
  // the same entry again is a duplicate; another one at seq 2 is not, nor one at 3 that shares a batch with its rival
  const rival = entry("k1", 2);
  const third = entry("k1", 3);
  const thirdRival = entry("k1", 3);
  ing.add([held[0]!, rival, third, thirdRival]);
  await ing.drain();
  ing.add([rival]); // redelivered: kept once
  await ing.drain();

  const inbox = await db.query<{ seq: number; entry_id: string }>("SELECT seq, entry_id FROM inbox ORDER BY seq");
  assert.equal(
    inbox.rows.map((r) => [Number(r.seq), r.entry_id]),
    [
      [1, held[0]!.entryId],
      [2, held[1]!.entryId],
      [3, third.entryId],
    ],
  );
  const kept = await db.query<{ seq: number; entry_id: string; held_entry_id: string; body: unknown }>(
    "SELECT seq, entry_id, held_entry_id, body FROM seq_collisions ORDER BY seq",
  );
  assert.equal(
    kept.rows.map((r) => [Number(r.seq), r.entry_id, r.held_entry_id]),
    [
      [2, rival.entryId, held[1]!.entryId],
      [3, thirdRival.entryId, third.entryId],
    ],
  );
  assert.equal(kept.rows[0]!.body, JSON.parse(rival.applied!.body), "the newcomer is kept whole");
  const conflicts = outcomes.flatMap((o) => o.acks.flatMap((a) => a.conflicts));
  assert.equal(conflicts, [2, 3, 2], "every delivery of a rival is answered as a conflict");
  assert.equal(
    outcomes.map((o) => o.newCollisions),
    [0, 1, 1, 0],
  );
});
test.run();
