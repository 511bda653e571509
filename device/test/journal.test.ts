/**
 * The kiosk journal on real SQLite files: gap-free seqs from 1, durable
 * settings enforced on open, corruption refused with the file named, acks
 * that only move forward and never past what was journaled.
 */
import { mkdtemp, open, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Entry } from "@paylane/protocol";
import pino from "pino";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { AckBeyondJournalError, Journal, JournalError } from "../src/journal.ts";
import { RollbackGuard } from "../src/journal-rollback.ts";

const test = suite("journal");
let dir = "";
let n = 0;
const open_: Journal[] = [];

/** A fresh journal file in the temp dir, closed after the test. */
async function fresh(): Promise<{ journal: Journal; path: string }> {
  const path = join(dir, `journal-${++n}.db`);
  const journal = await Journal.open(path);
  open_.push(journal);
  return { journal, path };
}

async function closeAll(): Promise<void> {
  for (const j of open_.splice(0)) await j.close().catch(() => {});
}

const at = new Date("2024-05-01T10:00:00.000Z");

/** The seq counters of stats(), without the oldest entry's time. */
const counts = ({ lastSeq, ackedUpTo, backlog }: Awaited<ReturnType<Journal["stats"]>>) => ({
  lastSeq,
  ackedUpTo,
  backlog,
});

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), "paylane-journal-"));
});
test.after.each(closeAll);
test.after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test("an empty journal has nothing to send", async () => {
  const { journal } = await fresh();
  assert.equal(counts(await journal.stats()), { lastSeq: 0, ackedUpTo: 0, backlog: 0 });
  assert.equal(await journal.entriesAfter(0, 100), []);
});

test("seq starts at 1 and is gap-free; entries come back as appended", async () => {
  const { journal } = await fresh();
  const appended = [];
  for (let i = 0; i < 5; i++) appended.push(await journal.append("checkin", { i }, new Date(at.getTime() + i)));
  assert.equal(
    appended.map((e) => e.seq),
    [1, 2, 3, 4, 5],
  );
  assert.is(new Set(appended.map((e) => e.id)).size, 5, "ids are distinct");
  for (const e of appended) assert.match(e.id, /^[0-9a-f-]{36}$/);
  assert.equal(await journal.entriesAfter(0, 100), appended);
  assert.equal(counts(await journal.stats()), { lastSeq: 5, ackedUpTo: 0, backlog: 5 });
});

test("seq, entries and acks persist across close and reopen", async () => {
  const { journal, path } = await fresh();
  await journal.append("checkin", { a: 1 }, at);
  await journal.append("checkin", { a: 2 }, at);
  await journal.append("checkin", { a: 3 }, at);
  await journal.markAcked(2);
  await journal.close();
  open_.splice(open_.indexOf(journal), 1);

  const again = await Journal.open(path);
  open_.push(again);
  assert.equal(counts(await again.stats()), { lastSeq: 3, ackedUpTo: 2, backlog: 1 });
  const next = await again.append("checkin", { a: 4 }, at);
  assert.is(next.seq, 4, "numbering continues after a reopen");
  assert.equal(
    (await again.entriesAfter(0, 10)).map((e) => e.body),
    [{ a: 1 }, { a: 2 }, { a: 3 }, { a: 4 }],
  );
});

test("open enforces journal_mode=wal and synchronous=FULL", async () => {
  const { journal } = await fresh();
  assert.equal(await journal.db.get("PRAGMA synchronous"), { synchronous: 2 });
  assert.equal(await journal.db.get("PRAGMA journal_mode"), { journal_mode: "wal" });
});

/** Writes `rows` entries of ~500 bytes each in one transaction and closes: the file spans many pages. */
async function filledFile(rows: number): Promise<{ path: string; ids: string[] }> {
  const { journal, path } = await fresh();
  const filler = "x".repeat(500);
  const ids: string[] = [];
  await journal.db.exec("BEGIN");
  for (let i = 0; i < rows; i++) ids.push((await journal.append("checkin", { filler, i }, at)).id);
  await journal.db.exec("COMMIT");
  await journal.close();
  open_.splice(open_.indexOf(journal), 1);
  return { path, ids };
}

async function openFailure(path: string): Promise<Error> {
  try {
    open_.push(await Journal.open(path));
  } catch (err) {
    assert.instance(err, Error);
    return err as Error;
  }
  assert.unreachable("opening a corrupted journal must fail");
  throw new Error("unreachable");
}

test("open of a file whose rows and index disagree fails integrity_check with a JournalError naming the file", async () => {
  const { path, ids } = await filledFile(400);
  const size = (await stat(path)).size;
  assert.ok(size > 20 * 4096, `the journal should span many pages, has ${size} bytes`);
  // Flip one character of an entry id in the table row, in the middle of the file:
  // the page stays well-formed, but the row no longer matches the UNIQUE index on id.
  const fh = await open(path, "r+");
  try {
    const bytes = Buffer.alloc(size);
    await fh.read(bytes, 0, size, 0);
    const target = ids[200]!;
    // The table row's record holds the id followed by its kind; the index's holds the id and the
    // rowid. Every copy of the row is flipped (a page split can leave a stale one in free space),
    // so the live row surely differs from its index entry.
    const row = Buffer.from(`${target}checkin`);
    const flipped = Buffer.from(target[0] === "0" ? "1" : "0");
    let found = 0;
    for (let offset = bytes.indexOf(row); offset >= 0; offset = bytes.indexOf(row, offset + 1)) {
      await fh.write(flipped, 0, 1, offset);
      found++;
    }
    assert.ok(found > 0, "the entry's row is stored in the file");
  } finally {
    await fh.close();
  }
  const failure = await openFailure(path);
  assert.instance(failure, JournalError);
  assert.match(failure.message, `journal ${path} failed integrity_check: `);
  assert.match(failure.message, /index/);
});

// Regression: SQLite opens lazily, so a damaged file fails on the first statement with
// SQLITE_CORRUPT or SQLITE_NOTADB and no path. open() now wraps those in a JournalError naming the file.
test("open of a file with overwritten pages fails with an error naming the file", async () => {
  const { path } = await filledFile(400);
  const size = (await stat(path)).size;
  const fh = await open(path, "r+");
  try {
    const garbage = Buffer.alloc(3 * 4096, 0xa5);
    await fh.write(garbage, 0, garbage.length, Math.floor(size / 2 / 4096) * 4096);
  } finally {
    await fh.close();
  }
  const failure = await openFailure(path);
  assert.ok(failure.message.includes(path), `the error names the file: ${failure.message}`);
  assert.match(failure.message, /integrity_check|SQLITE_CORRUPT|SQLITE_NOTADB|malformed/);
});

test("open of a file that is not a database names the file", async () => {
  const path = join(dir, "not-a-db.db");
  const fh = await open(path, "w");
  await fh.write(Buffer.alloc(8192, 0x42));
  await fh.close();
  const failure = await openFailure(path);
  assert.ok(failure.message.includes(path), `the error names the file: ${failure.message}`);
});

test("markAcked moves forward only and returns the effective ack", async () => {
  const { journal } = await fresh();
  for (let i = 0; i < 5; i++) await journal.append("checkin", { i }, at);
  assert.is(await journal.markAcked(3), 3);
  assert.is((await journal.stats()).ackedUpTo, 3);
  assert.is(await journal.markAcked(1), 3, "an older ack does not move it back");
  assert.is(await journal.markAcked(3), 3);
  assert.is(await journal.markAcked(0), 3);
  assert.equal(counts(await journal.stats()), { lastSeq: 5, ackedUpTo: 3, backlog: 2 });
  assert.is(await journal.markAcked(5), 5);
  assert.equal(counts(await journal.stats()), { lastSeq: 5, ackedUpTo: 5, backlog: 0 });
});

test("concurrent acks leave the journal at the highest one", async () => {
  const { journal } = await fresh();
  for (let i = 0; i < 6; i++) await journal.append("checkin", { i }, at);
  await Promise.all([journal.markAcked(5), journal.markAcked(2), journal.markAcked(4)]);
  assert.equal(counts(await journal.stats()), { lastSeq: 6, ackedUpTo: 5, backlog: 1 });
});

// Regression: markAcked once read stats() and UPDATEd in two statements; overlapping acks
// interleaved and a lower ack returned its own upTo, moving the uplink's ack back. It is one statement now.
test("markAcked returns the effective ack even when a higher ack is in flight", async () => {
  const { journal } = await fresh();
  for (let i = 0; i < 6; i++) await journal.append("checkin", { i }, at);
  const [five, two] = await Promise.all([journal.markAcked(5), journal.markAcked(2)]);
  // Each answer is the mark right after its own statement: never below its own upTo, never past 5,
  // and the higher ack always wins, whichever statement SQLite ran first.
  assert.is(five, 5);
  assert.ok(two === 2 || two === 5, `the lower ack returned ${two}`);
  assert.is((await journal.stats()).ackedUpTo, 5);
});

test("markAcked beyond lastSeq throws a JournalError and changes nothing", async () => {
  const { journal } = await fresh();
  for (let i = 0; i < 3; i++) await journal.append("checkin", { i }, at);
  await journal.markAcked(1);
  try {
    await journal.markAcked(4);
    assert.unreachable("an ack beyond the journal must be refused");
  } catch (err) {
    assert.instance(err, JournalError);
    assert.match((err as Error).message, "ack upTo 4 is beyond the last journaled seq 3");
  }
  assert.equal(counts(await journal.stats()), { lastSeq: 3, ackedUpTo: 1, backlog: 2 });
});

test("markAcked on an empty journal refuses any positive ack", async () => {
  const { journal } = await fresh();
  assert.is(await journal.markAcked(0), 0);
  try {
    await journal.markAcked(1);
    assert.unreachable("must throw");
  } catch (err) {
    assert.instance(err, JournalError);
  }
});

test("entriesAfter returns only entries after the given seq, in order, up to the limit", async () => {
  const { journal } = await fresh();
  for (let i = 1; i <= 10; i++) await journal.append("checkin", { i }, at);
  assert.equal(
    (await journal.entriesAfter(4, 100)).map((e) => e.seq),
    [5, 6, 7, 8, 9, 10],
  );
  assert.equal(
    (await journal.entriesAfter(4, 3)).map((e) => e.seq),
    [5, 6, 7],
  );
  assert.equal(await journal.entriesAfter(10, 100), []);
  const [e] = await journal.entriesAfter(6, 1);
  assert.equal(e, { seq: 7, id: e!.id, kind: "checkin", at: at.toISOString(), body: { i: 7 } });
});

test("hasEntryOn matches kind, member and day exactly", async () => {
  const { journal } = await fresh();
  await journal.append("checkin", { m: "m1" }, at, { memberId: "m1", day: "2024-05-01" });
  await journal.append("payment", { m: "m2" }, at, { memberId: "m2", day: "2024-05-01" });
  await journal.append("note", {}, at);
  assert.ok(await journal.hasEntryOn("checkin", { memberId: "m1", day: "2024-05-01" }));
  assert.not.ok(await journal.hasEntryOn("checkin", { memberId: "m1", day: "2024-05-02" }));
  assert.not.ok(await journal.hasEntryOn("checkin", { memberId: "m2", day: "2024-05-01" }), "other kind");
  assert.not.ok(await journal.hasEntryOn("payment", { memberId: "m1", day: "2024-05-01" }));
  assert.ok(await journal.hasEntryOn("payment", { memberId: "m2", day: "2024-05-01" }));
});

test("stats give the device time of the oldest unacked entry, and null once everything is acked", async () => {
  const { journal } = await fresh();
  assert.is((await journal.stats()).oldestUnackedAt, null);
  await journal.append("checkin", { n: 1 }, new Date("2024-05-01T10:00:00.000Z"));
  await journal.append("checkin", { n: 2 }, new Date("2024-05-01T10:05:00.000Z"));
  assert.is((await journal.stats()).oldestUnackedAt, "2024-05-01T10:00:00.000Z");
  await journal.markAcked(1);
  assert.is((await journal.stats()).oldestUnackedAt, "2024-05-01T10:05:00.000Z");
  await journal.markAcked(2);
  assert.is((await journal.stats()).oldestUnackedAt, null);
});

test("compact removes only acked entries older than the cut-off; unacked ones stay whatever their age", async () => {
  const { journal } = await fresh();
  const day = (d: number) => new Date(Date.UTC(2024, 4, d, 12));
  for (const d of [1, 2, 3, 9, 10]) await journal.append("checkin", { d }, day(d));
  await journal.markAcked(4); // entries of days 1, 2, 3 and 9 are acked; day 10 is not
  assert.is(await journal.compact(day(5)), 3, "days 1..3: acked and old");
  assert.equal(
    (await journal.entriesAfter(0, 10)).map((e) => e.seq),
    [4, 5],
    "the acked recent entry and the unacked one stay",
  );
  await journal.markAcked(4);
  assert.is(await journal.compact(day(30)), 1, "only the acked one, even a month later");
  assert.equal(
    (await journal.entriesAfter(0, 10)).map((e) => e.seq),
    [5],
  );
  const s = await journal.stats();
  assert.equal([s.lastSeq, s.ackedUpTo, s.backlog], [5, 4, 1], "seq and acks are not touched by compaction");
  assert.is((await journal.append("checkin", {}, day(30))).seq, 6, "seq continues after compaction");
});

test("probeWritable reports a journal that can write", async () => {
  const { journal } = await fresh();
  assert.is(await journal.probeWritable(), true);
  assert.is((await journal.stats()).lastSeq, 0, "the probe leaves no entry");
});

test("200 concurrent appends get 200 distinct, contiguous seqs", async () => {
  const { journal } = await fresh();
  await journal.append("checkin", { first: true }, at);
  const entries = await Promise.all(Array.from({ length: 200 }, (_, i) => journal.append("checkin", { i }, at)));
  const seqs = entries.map((e) => e.seq).sort((a, b) => a - b);
  assert.is(new Set(seqs).size, 200);
  assert.equal(
    seqs,
    Array.from({ length: 200 }, (_, i) => i + 2),
  );
  assert.equal(counts(await journal.stats()), { lastSeq: 201, ackedUpTo: 0, backlog: 201 });
  const stored = await journal.entriesAfter(1, 1000);
  assert.equal(
    stored.map((e) => e.seq),
    seqs,
  );
  // Each returned seq is the one stored with that entry.
  const byId = new Map(stored.map((e) => [e.id, e.seq]));
  for (const e of entries) assert.is(byId.get(e.id), e.seq);
});

test("entries the cloud holds under other ids survive every ack and compaction", async () => {
  const { journal } = await fresh();
  for (let i = 0; i < 4; i++) await journal.append("checkin", { i }, at);
  await journal.markAcked(4, [2, 3]);
  assert.equal(await journal.conflicts(), [2, 3]);
  assert.is((await journal.stats()).conflicts, 2);
  await journal.compact(new Date("2100-01-01T00:00:00Z"));
  assert.equal(
    (await journal.entriesAfter(0, 10)).map((e) => e.seq),
    [2, 3],
  );
  // reported by the ack: nothing left to send so that the cloud keeps them
  assert.equal(await journal.unreportedConflicts(10), []);
});

test("an ack beyond the journal says so; moveBeyond takes the next seq after the cloud's, in a new epoch", async () => {
  const { journal } = await fresh();
  await journal.append("checkin", { i: 1 }, at);
  const err = await journal.markAcked(5).catch((e: unknown) => e);
  assert.instance(err, AckBeyondJournalError);
  const moved = await journal.moveBeyond(5, "ack", at);
  assert.equal(
    [moved?.seq, moved?.kind, moved?.body],
    [6, "journal-rolled-back", { epoch: 1, localLastSeq: 1, cloudAckedSeq: 5, detectedBy: "ack" }],
  );
  assert.is(await journal.moveBeyond(5, "ack", at), null, "a journal not behind stays where it is");
  assert.is((await journal.append("checkin", { i: 2 }, at)).seq, 7);
  assert.is((await journal.moveBeyond(9, "stream", at))?.body.epoch, 2);
  assert.is(await journal.markAcked(9), 9);
});

test("a rollback check holds acks until the journal is compared and moved, and records what the cloud holds under other ids", async () => {
  const { journal } = await fresh();
  const ours: Entry[] = [];
  for (let i = 0; i < 3; i++) ours.push(await journal.append("checkin", { i }, at));
  await journal.markAcked(1);
  let release!: () => void;
  const compared = new Promise<void>((resolve) => {
    release = resolve;
  });
  let entered!: () => void;
  const comparing = new Promise<void>((resolve) => {
    entered = resolve;
  });
  const moved: number[][] = [];
  const guard = new RollbackGuard({
    journal,
    logger: pino({ level: "silent" }),
    now: () => at,
    stream: {
      ackedSeq: async () => 4,
      // the cloud holds seq 2 as ours, seq 3 under another id
      heldIds: async (after, upTo) => {
        entered();
        await compared;
        const held = new Map<number, string | null>([
          [2, ours[1]!.id],
          [3, "someone-else"],
        ]);
        return new Map([...held].filter(([seq]) => seq > after && seq <= upTo));
      },
    },
    onMoved: (_entry, conflicts) => moved.push(conflicts),
    onConflicts: () => {},
  });
  const check = guard.check();
  await comparing;
  // an ack arriving meanwhile waits: it must not cover seq 3 before the comparison
  let acked = false;
  const ack = journal.markAcked(4).then(() => {
    acked = true;
  });
  await new Promise((resolve) => setImmediate(resolve));
  assert.is(acked, false, "the ack waits for the check");
  release();
  await check;
  await ack;
  assert.equal(moved, [[3]]);
  assert.equal(await journal.conflicts(), [3]);
  assert.equal(
    (await journal.unreportedConflicts(10)).map((e) => e.id),
    [ours[2]!.id],
    "sent again so the cloud keeps it",
  );
  assert.is((await journal.stats()).lastSeq, 5);
});

test.run();
