/**
 * A damaged journal (integrity_check fails or the file is no database any
 * more): the kiosk keeps the file aside, starts a new journal whose seqs
 * continue after the cloud's acked mark, and alerts ops. Without the cloud it
 * refuses to guess, and leaves the file where it was.
 */
import { open, readdir } from "node:fs/promises";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { loud } from "../support/hooks.ts";
import { TestSite } from "../support/site.ts";

const it = suite("journal recovery");
let site: TestSite;

it.before(
  loud("journal recovery site setup", async () => {
    site = new TestSite({ db: "pglite", presence: "memory", broker: "aedes", kiosks: ["k1"], probes: [] });
    await site.start();
  }),
);
it.after(async () => {
  await site?.stop();
});

/** Overwrites the start of the file (its header and first pages): SQLite no longer sees a database. */
async function damage(path: string): Promise<void> {
  const fh = await open(path, "r+");
  try {
    await fh.write(Buffer.alloc(8192, 0x42), 0, 8192, 0);
  } finally {
    await fh.close();
  }
}

async function stopKiosk(device: string): Promise<void> {
  await site.kiosk(device).stop();
  site.kiosks.delete(device);
}

it("a damaged journal is kept aside and a new one continues after the cloud's acked seq; ops are alerted", async () => {
  const k1 = site.kiosk("k1");
  for (const uid of ["04A2B3C4", "04B1C2D3", "04C0FFEE"]) assert.is((await k1.tap(uid)).outcome, "welcome");
  await site.drained("k1");
  await stopKiosk("k1");
  const dir = join(site.dir, "k1");
  await damage(join(dir, "journal.db"));

  const again = await site.startKiosk("k1");
  const files = await readdir(dir);
  assert.ok(
    files.some((f) => /^journal\.db\.damaged-/.test(f)),
    `the damaged file is kept: ${files.join(", ")}`,
  );
  const stats = await again.journal.stats();
  assert.is(stats.lastSeq, 4, "seq 4: the journal-recovered alert, right after the cloud's mark 3");
  const next = await again.tap("04A1B2C3D4E5F6");
  assert.is(next.seq, 5, "no seq is reused");
  await site.drained("k1");

  const seqs = await site.db.query<{ seq: number; kind: string }>(
    "SELECT seq, kind FROM inbox WHERE site_id = $1 AND device_id = 'k1' ORDER BY seq",
    [site.site],
  );
  assert.equal(
    seqs.rows.map((r) => [r.seq, r.kind]),
    [
      [1, "checkin"],
      [2, "checkin"],
      [3, "checkin"],
      [4, "journal-recovered"],
      [5, "checkin"],
    ],
    "the cloud's stream stays contiguous across the recovery",
  );
  const alerts = (await site.operator("GET", `/api/v1/alerts?site=${site.site}`)).body as {
    items: Array<{ kind: string; device: string; detail: { continuedAfter: number; damagedFile: string } }>;
  };
  const alert = alerts.items.find((a) => a.kind === "journal-recovered");
  assert.ok(alert, "ops see the recovery");
  assert.is(alert!.detail.continuedAfter, 3);
  assert.match(alert!.detail.damagedFile, /^journal\.db\.damaged-/);
});

it("without the cloud the kiosk does not guess: it refuses to start and leaves the damaged file in place", async () => {
  await stopKiosk("k1");
  const dir = join(site.dir, "k1");
  await damage(join(dir, "journal.db"));
  const before = (await readdir(dir)).sort();
  await site.stopCloud();
  const failure = await site.startKiosk("k1").then(
    () => undefined,
    (err: Error) => err,
  );
  assert.ok(failure, "the daemon does not start on a journal it cannot continue safely");
  assert.match(failure!.message, /journal\.db/);
  assert.match(failure!.message, /cloud could not say where this kiosk's seqs continue/);
  assert.equal((await readdir(dir)).sort(), before, "nothing was moved");
  await site.startCloud();
});

it.run();
