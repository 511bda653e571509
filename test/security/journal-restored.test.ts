/**
 * Issue 12, "Journal rollback": a kiosk's `journal.db` restored from an older
 * copy (an SD card swapped back, a backup put in place). Before this work its
 * new entries reused seqs the cloud already held: they were acked as
 * duplicates and deleted, never applied.
 *
 * Now the kiosk learns the cloud's mark (at start, when the cloud comes back,
 * from an ack beyond its journal), moves past it with a `journal-rolled-back`
 * entry that alerts ops, and never reuses a seq the cloud holds. Offline at
 * start it carries on, and what it journals meanwhile at a held seq is kept
 * on both sides.
 */
import { copyFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { loud } from "../support/hooks.ts";
import { demoCard, TestSite } from "../support/site.ts";

const it = suite("a restored journal");
let site: TestSite;

it.before(
  loud("site setup", async () => {
    site = new TestSite({ db: "pg", presence: "memory", broker: "aedes", kiosks: ["k1"], probes: [] });
    await site.start();
  }),
);
it.after(async () => {
  await site?.stop();
});

const CARDS = ["m-ada", "m-grace", "m-alan", "m-katherine"].map(demoCard);

async function stopKiosk(): Promise<void> {
  await site.kiosk("k1").stop();
  site.kiosks.delete("k1");
}

/** Taps each card in turn (each a check-in journaled); every one is acked before this resolves. */
async function tapAll(cards: string[]): Promise<void> {
  for (const card of cards) {
    const r = await site.kiosk("k1").tap(card);
    assert.is(r.outcome, "welcome", `${card}: ${r.message}`);
  }
  await site.drained("k1");
}

async function backup(): Promise<string> {
  await stopKiosk();
  const copy = join(site.dir, `journal-${Date.now()}.db`);
  await copyFile(join(site.dir, "k1", "journal.db"), copy);
  return copy;
}

async function restore(copy: string): Promise<void> {
  await stopKiosk();
  const path = join(site.dir, "k1", "journal.db");
  for (const side of ["-wal", "-shm"]) await rm(path + side, { force: true });
  await copyFile(copy, path);
}

async function inbox(after: number) {
  const { rows } = await site.db.query<{ seq: string; entry_id: string; kind: string }>(
    "SELECT seq, entry_id, kind FROM inbox WHERE site_id = $1 AND device_id = 'k1' AND seq > $2 ORDER BY seq",
    [site.site, after],
  );
  return rows.map((r) => ({ seq: Number(r.seq), id: r.entry_id, kind: r.kind }));
}

async function rollbackAlerts() {
  const r = await site.operator("GET", `/api/v1/alerts?site=${site.site}&limit=100`);
  return (r.body.items as Array<{ kind: string; seq: number; detail: Record<string, unknown> }>).filter(
    (a) => a.kind === "journal-rolled-back",
  );
}

/** Enrols members with cards no one has tapped yet, and lets the kiosk's replica see them. */
async function enrol(cards: Record<string, string>): Promise<void> {
  const version = Date.now() % 1_000_000_000;
  for (const [id, card] of Object.entries(cards)) {
    await site.db.query("INSERT INTO members (site_id, id, name, card_uid, version) VALUES ($1, $2, $2, $3, $4)", [
      site.site,
      id,
      card,
      version,
    ]);
  }
  await site.db.query("UPDATE sites SET members_version = $2 WHERE id = $1", [site.site, version]);
  await site.kiosk("k1").replicaSync.syncNow();
}

it("restored while the cloud is up: the kiosk moves past the cloud's seqs, alerts ops, and loses nothing", async () => {
  await tapAll(CARDS.slice(0, 2));
  const copy = await backup();
  const old = (await site.startKiosk("k1")).journal;
  await tapAll(CARDS.slice(2));
  const { lastSeq: mark } = await old.stats();
  const heldBefore = await inbox(0);
  assert.is(heldBefore.length, mark);

  await restore(copy);
  const k1 = await site.startKiosk("k1");
  await site.signal.until(async () => (await k1.journal.stats()).lastSeq > mark, "the journal moved past the cloud");
  await enrol({ "m-new": "04ABCDEF" });
  const r = await k1.tap("04ABCDEF");
  assert.is(r.outcome, "welcome", r.message);
  assert.is(r.seq, mark + 2, "the first seq the cloud never held, after the rollback entry");
  await site.drained("k1");

  const held = await inbox(0);
  assert.equal(held.slice(0, mark), heldBefore, "every entry the cloud held is as it was");
  assert.equal(
    held.slice(mark).map((e) => [e.seq, e.kind, e.id]),
    [
      [mark + 1, "journal-rolled-back", held[mark]!.id],
      [mark + 2, "checkin", r.id],
    ],
  );
  const alerts = await rollbackAlerts();
  assert.is(alerts.length, 1);
  assert.equal(alerts[0]!.detail, { epoch: 1, localLastSeq: 2, cloudAckedSeq: mark, detectedBy: "stream" });
  assert.is(await site.count("SELECT count(*) AS n FROM seq_collisions WHERE site_id = $1", [site.site]), 0);
});

it("restored while the cloud is away: the kiosk works offline, and what it journaled at a held seq is kept on both sides", async () => {
  await enrol({ "m-x1": "04ABCDE1", "m-x2": "04ABCDE2", "m-x3": "04ABCDE3" });
  const copy = await backup();
  await site.startKiosk("k1");
  await tapAll(["04ABCDE1", "04ABCDE2"]);
  const { lastSeq: mark } = await site.kiosk("k1").journal.stats();

  await restore(copy);
  const cloudUrl = site.cloud!.url;
  await site.stopCloud();
  const k1 = await site.startKiosk("k1", { cloudUrl }, { waitOnline: false });
  const localLast = (await k1.journal.stats()).lastSeq;
  assert.is(localLast, mark - 2, "the restored journal is two entries behind the cloud");
  const offline = await k1.tap("04ABCDE3");
  assert.is(offline.outcome, "welcome", offline.message);
  assert.is(offline.seq, localLast + 1, "offline, the kiosk cannot know that seq is held");

  await site.startCloud();
  await site.signal.until(async () => (await k1.journal.stats()).lastSeq > mark, "the journal moved past the cloud");
  await site.drained("k1");
  await site.signal.until(
    async () => (await site.count("SELECT count(*) AS n FROM seq_collisions WHERE site_id = $1", [site.site])) === 1,
    "the offline check-in kept by the cloud",
  );
  const kept = await site.db.query<{ seq: string; entry_id: string }>(
    "SELECT seq, entry_id FROM seq_collisions WHERE site_id = $1",
    [site.site],
  );
  assert.equal([Number(kept.rows[0]!.seq), kept.rows[0]!.entry_id], [offline.seq, offline.id]);
  assert.equal(await k1.journal.conflicts(), [offline.seq]);
  await k1.journal.compact(new Date(Date.now() + 365 * 86_400_000));
  const mine = await k1.journal.entriesAfter(offline.seq! - 1, 1);
  assert.is(mine[0]?.id, offline.id, "the kiosk keeps its own entry, whatever compaction runs");

  const alerts = await rollbackAlerts();
  const second = alerts.find((a) => a.detail.epoch === 2);
  assert.ok(second, JSON.stringify(alerts));
  assert.is(second.detail.cloudAckedSeq, mark);
  assert.is(second.detail.localLastSeq, localLast + 1);
});

it.run();
