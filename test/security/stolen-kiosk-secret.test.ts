/**
 * Issue 12, "Money and the ledger": a kiosk's MQTT secret sits in a file on
 * its SD card. With it, an attacker connects as the kiosk and publishes into
 * its journal stream. Before this work:
 *
 * - a `topup` entry at the kiosk's next seq put €10,000 on a wallet (the
 *   ledger trigger credited any journaled top-up);
 * - forged entries at the kiosk's next seqs made the cloud answer the
 *   kiosk's genuine entries there as duplicates, so the kiosk deleted real
 *   check-ins and payments as "acked".
 *
 * Now a top-up credits only against an intent the cloud issued online for
 * that kiosk, member and amount, once; and a different entry at a held seq is
 * kept beside the held one, the kiosk told to keep its own.
 */
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { type Entry, topics } from "@paylane/protocol";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Journal } from "../../device/src/journal.ts";
import { loud } from "../support/hooks.ts";
import { batch, checkinEntry, record } from "../support/probe.ts";
import { demoCard, TestSite } from "../support/site.ts";

const it = suite("a stolen kiosk secret");
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

async function balance(memberId: string): Promise<number> {
  const { rows } = await site.db.query<{ balance: string }>(
    "SELECT balance FROM wallets WHERE site_id = $1 AND member_id = $2",
    [site.site, memberId],
  );
  return Number(rows[0]?.balance ?? 0);
}

async function cloudMark(device: string): Promise<number> {
  const { rows } = await site.db.query<{ acked_seq: string }>(
    "SELECT acked_seq FROM device_streams WHERE site_id = $1 AND device_id = $2",
    [site.site, device],
  );
  return Number(rows[0]?.acked_seq ?? 0);
}

type Alert = { kind: string; device: string; seq: number | null; detail: Record<string, unknown> };
async function alerts(): Promise<Alert[]> {
  const r = await site.operator("GET", `/api/v1/alerts?site=${site.site}&limit=100`);
  assert.is(r.status, 200, JSON.stringify(r.body));
  return r.body.items as Alert[];
}

function topupEntry(seq: number, key: string, memberId: string, amount: number): Entry {
  return {
    seq,
    id: randomUUID(),
    kind: "topup",
    at: new Date().toISOString(),
    body: { key, memberId, amount, currency: "EUR", terminal: { reference: "FORGED-1" } },
  };
}

/** Connects with k1's own secret (as read from its SD card) and publishes `entries`; resolves on the cloud's ack. */
async function publishAsKiosk(entries: Entry[]): Promise<{ upTo: number; conflicts?: number[] }> {
  const a = site.address("k1");
  const watcher = await site.opsClient();
  const acks = await record<{ upTo: number; conflicts?: number[] }>(watcher, topics.ack(a), site.signal);
  const thief = await site.rawDevice("k1");
  await thief.publishAsync(topics.events(a), batch("k1", entries), { qos: 1 });
  const last = Math.max(...entries.map((e) => e.seq));
  await site.signal.until(() => acks.some((x) => x.upTo >= last), "the cloud's ack of the forged entries");
  await thief.endAsync();
  await watcher.endAsync();
  return acks.find((x) => x.upTo >= last)!;
}

async function issueIntent(key: string, memberId: string, amount: number) {
  const res = await fetch(`${site.cloud!.url}/api/v1/topups/intents`, {
    method: "POST",
    headers: {
      authorization: `Basic ${Buffer.from(`${site.site}/k1:${site.secrets.get("k1")}`).toString("base64")}`,
      "content-type": "application/json",
    },
    body: JSON.stringify({ key, memberId, amount, currency: "EUR" }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

it("forged entries at the kiosk's next seqs: the kiosk keeps its own, the cloud keeps both, ops are alerted, no seq is reused", async () => {
  const before = await site.kiosk("k1").tap(demoCard("m-ada"));
  assert.is(before.outcome, "welcome", before.message);
  await site.drained("k1");
  await site.kiosk("k1").stop();
  // The kiosk journaled two more check-ins and lost power before publishing them.
  const dataDir = join(site.dir, "k1");
  const journal = await Journal.open(join(dataDir, "journal.db"));
  const next = (await journal.stats()).lastSeq + 1;
  const genuine = [
    await journal.append("checkin", checkinEntry(0, "m-grace").body, new Date()),
    await journal.append("checkin", checkinEntry(0, "m-alan").body, new Date()),
  ];
  await journal.close();
  assert.equal(
    genuine.map((e) => e.seq),
    [next, next + 1],
  );

  // Meanwhile the thief published four entries from the kiosk's next seq on.
  const forged = [0, 1, 2, 3].map((i) => checkinEntry(next + i, "m-katherine"));
  await publishAsKiosk(forged);
  const forgedMark = next + 3;
  assert.is(await cloudMark("k1"), forgedMark);

  // The kiosk comes back.
  const k1 = await site.startKiosk("k1");
  await site.signal.until(async () => {
    const { rows } = await site.db.query<{ n: string }>(
      "SELECT count(*) AS n FROM seq_collisions WHERE site_id = $1 AND device_id = 'k1'",
      [site.site],
    );
    return Number(rows[0]!.n) === 2;
  }, "the kiosk's genuine entries kept by the cloud");
  await site.signal.until(async () => (await k1.journal.stats()).conflicts === 2, "both conflicts recorded");

  // The cloud: the forged entries where they were, the genuine ones beside them, whole.
  const held = await site.db.query<{ seq: string; entry_id: string; held_entry_id: string }>(
    "SELECT seq, entry_id, held_entry_id FROM seq_collisions WHERE site_id = $1 AND device_id = 'k1' ORDER BY seq",
    [site.site],
  );
  assert.equal(
    held.rows.map((r) => [Number(r.seq), r.entry_id, r.held_entry_id]),
    genuine.map((e, i) => [e.seq, e.id, forged[i]!.id]),
  );

  // The kiosk: its entries survive any compaction, and are reported as conflicts.
  await k1.journal.compact(new Date(Date.now() + 365 * 86_400_000));
  const kept = await k1.journal.entriesAfter(next - 1, 2);
  assert.equal(
    kept.map((e) => e.id),
    genuine.map((e) => e.id),
  );
  assert.equal(await k1.journal.conflicts(), [next, next + 1]);

  // It moved past the thief's seqs: the next check-in takes a seq the cloud never held.
  const r = await k1.tap(demoCard("m-katherine"));
  assert.is(r.outcome, "welcome", r.message);
  await site.drained("k1");
  const last = await site.db.query<{ seq: string; kind: string }>(
    "SELECT seq, kind FROM inbox WHERE site_id = $1 AND device_id = 'k1' AND seq > $2 ORDER BY seq",
    [site.site, forgedMark],
  );
  assert.equal(
    last.rows.map((x) => [Number(x.seq), x.kind]),
    [
      [forgedMark + 1, "journal-rolled-back"],
      [forgedMark + 2, "checkin"],
    ],
  );
  const all = await alerts();
  assert.equal(
    all
      .filter((a) => a.kind === "seq-collision")
      .map((a) => a.seq)
      .sort(),
    [next, next + 1],
  );
  assert.ok(
    all.some((a) => a.kind === "journal-rolled-back" && a.device === "k1"),
    "ops see the journal move",
  );
});

it("ops see both entries of each collision side by side and record which was the kiosk's own; the log is not edited", async () => {
  type Collision = {
    id: string;
    seq: number;
    held: { entryId: string };
    arrived: { entryId: string };
    resolved: unknown;
  };
  const list = async (open?: boolean) => {
    const r = await site.operator(
      "GET",
      `/api/v1/collisions?site=${site.site}${open === undefined ? "" : `&open=${open}`}`,
    );
    assert.is(r.status, 200, JSON.stringify(r.body));
    return r.body.items as Collision[];
  };
  const open = await list(true);
  assert.is(open.length, 2);
  for (const c of open) assert.is.not(c.held.entryId, c.arrived.entryId);
  const first = open.find((c) => c.seq === Math.min(...open.map((x) => x.seq)))!;

  const viewer = await fetch(`${site.cloud!.url}/api/v1/collisions/${first.id}/resolve`, {
    method: "POST",
    headers: { authorization: `Bearer ${await site.operatorToken("viewer")}`, "content-type": "application/json" },
    body: JSON.stringify({ kept: "arrived", note: "k1's own check-in; the held one was forged" }),
  });
  assert.is(viewer.status, 403, "a viewer cannot resolve");
  const body = { kept: "arrived", note: "k1's own check-in; the held one was forged" };
  const resolved = await site.operator("POST", `/api/v1/collisions/${first.id}/resolve`, body);
  assert.is(resolved.status, 200, JSON.stringify(resolved.body));
  assert.is((await site.operator("POST", `/api/v1/collisions/${first.id}/resolve`, body)).status, 409);
  assert.equal(
    (await list(true)).map((c) => c.id),
    open.filter((c) => c.id !== first.id).map((c) => c.id),
  );
  const done = (await list(false))[0]!;
  assert.is(done.id, first.id);
  assert.equal(done.resolved, { ...(done.resolved as object), kept: "arrived", by: "ops-test" });
  // both entries are still where they were
  const held = await site.db.query<{ entry_id: string }>(
    "SELECT entry_id FROM inbox WHERE site_id = $1 AND device_id = 'k1' AND seq = $2",
    [site.site, first.seq],
  );
  assert.is(held.rows[0]?.entry_id, first.held.entryId);
});

it("a journaled top-up with no intent the cloud issued credits nothing: a ledger exception and an alert", async () => {
  await site.kiosk("k1").stop();
  const before = await balance("m-grace");
  const seq = (await cloudMark("k1")) + 1;
  const key = randomUUID();
  await publishAsKiosk([topupEntry(seq, key, "m-grace", 1_000_000)]);

  assert.is(await balance("m-grace"), before, "the forged €10,000 credited nothing");
  const exceptions = await site.db.query<{ reason: string }>(
    "SELECT reason FROM ledger_exceptions WHERE site_id = $1 AND device_id = 'k1' AND seq = $2",
    [site.site, seq],
  );
  assert.match(exceptions.rows[0]?.reason ?? "", /no intent the cloud issued to this kiosk/);
  const alert = (await alerts()).find((a) => a.kind === "ledger-exception" && a.seq === seq);
  assert.ok(alert, "ops see the forged top-up as an alert");
  assert.is(alert.device, "k1");
});

it("an intent for €10 does not carry a journaled €10,000, and is not used twice", async () => {
  const before = await balance("m-grace");
  const key = randomUUID();
  const intent = await issueIntent(key, "m-grace", 1000);
  assert.is(intent.status, 201, JSON.stringify(intent.body));
  assert.is(intent.body.status, "open");

  const seq = (await cloudMark("k1")) + 1;
  await publishAsKiosk([topupEntry(seq, key, "m-grace", 1_000_000)]);
  assert.is(await balance("m-grace"), before, "another amount than the intent's credits nothing");

  // the intent itself is still open: the honest €10 top-up goes through, once
  await publishAsKiosk([topupEntry(seq + 1, key, "m-grace", 1000)]);
  assert.is(await balance("m-grace"), before + 1000);
  await publishAsKiosk([topupEntry(seq + 2, key, "m-grace", 1000)]);
  assert.is(await balance("m-grace"), before + 1000, "a used intent credits nothing again");

  const reasons = (
    await site.db.query<{ seq: string; reason: string }>(
      "SELECT seq, reason FROM ledger_exceptions WHERE site_id = $1 AND device_id = 'k1' AND seq IN ($2, $3) ORDER BY seq",
      [site.site, seq, seq + 2],
    )
  ).rows.map((r) => r.reason);
  assert.equal(reasons.length, 2, JSON.stringify(reasons));
  assert.match(reasons[0]!, /does not match its intent/);
  assert.match(reasons[1]!, /already credited/);
  // the same key with another amount is refused at the intent, too
  assert.is((await issueIntent(key, "m-grace", 5000)).status, 422);
});

it("top-up intents above the site's hourly velocity raise one alert for the kiosk", async () => {
  await site.db.query("UPDATE sites SET topup_velocity_count = 3 WHERE id = $1", [site.site]);
  for (let i = 0; i < 5; i++) assert.is((await issueIntent(randomUUID(), "m-ada", 500)).status, 201);
  const velocity = (await alerts()).filter((a) => a.kind === "topup-velocity");
  assert.is(velocity.length, 1, "one alert per kiosk and hour, not one per intent");
  assert.is(velocity[0]!.device, "k1");
  assert.ok(Number(velocity[0]!.detail.topupsLastHour) > 3);
});

it.run();
