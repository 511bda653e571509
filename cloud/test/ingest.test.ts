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

/** Fails any statement that carries `device`'s entries, like an entry Postgres refuses. */
function poisoned(db: Database, device: string): Database {
  return {
    ...db,
    query: (sql, params) => {
      if (params?.some((p) => Array.isArray(p) && p.includes(device))) throw new Error(`refused: ${device}`);
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

test.run();
