/**
 * The kiosk's local check-in decision, on real journal and replica files:
 * what the walk-up user is told, what is journaled with it, and how "today"
 * follows the site's time zone.
 */
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CheckinBody, Credential, MemberSnapshot } from "@paylane/protocol";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { CheckinDesk, localDay } from "../src/checkin-desk.ts";
import { Journal } from "../src/journal.ts";
import { Replica } from "../src/replica.ts";

const ADA = { id: "m-ada", name: "Ada", cardUid: "04A1B2C3", code: "ADA1", status: "active" as const };
const BOB = { id: "m-bob", name: "Bob", cardUid: "04D5E6F7A8B9C0", code: null, status: "revoked" as const };
const card = (uid: string): Credential => ({ type: "card", uid });

const snapshot = (over: Partial<MemberSnapshot> = {}): MemberSnapshot => ({
  site: "s1",
  version: 7,
  timezone: "UTC",
  siteName: "Test venue",
  members: [ADA, BOB],
  ...over,
});

interface Ctx {
  dir: string;
  journal: Journal;
  replica: Replica;
  desk: CheckinDesk;
  clock: { at: Date };
  online: { value: boolean };
  journaled: number;
}

const test = suite<Ctx>("checkin desk", {} as Ctx);
let dirSeq = 0;
let root = "";

test.before(async () => {
  root = await mkdtemp(join(tmpdir(), "paylane-desk-"));
});

test.before.each(async (ctx) => {
  ctx.dir = join(root, String(++dirSeq));
  await mkdir(ctx.dir);
  ctx.journal = await Journal.open(join(ctx.dir, "journal.db"));
  ctx.replica = await Replica.open(join(ctx.dir, "replica.db"));
  await ctx.replica.replace(snapshot(), new Date("2024-05-01T08:00:00Z"));
  ctx.clock = { at: new Date("2024-05-01T10:00:00Z") };
  ctx.online = { value: true };
  ctx.journaled = 0;
  ctx.desk = new CheckinDesk({
    journal: ctx.journal,
    replica: ctx.replica,
    now: () => ctx.clock.at,
    isOnline: () => ctx.online.value,
  });
  ctx.journal.events.on("appended", () => {
    ctx.journaled++;
  });
});

test.after.each(async (ctx) => {
  await ctx.journal.close();
  await ctx.replica.close();
});

test.after(async () => {
  await rm(root, { recursive: true, force: true });
});

test("a known card is welcomed and journaled with the replica version, online", async (ctx) => {
  const r = await ctx.desk.decide(card(ADA.cardUid));
  assert.is(ctx.journaled, 1, "the journal announces the entry once it is durable");
  const entries = await ctx.journal.entriesAfter(0, 10);
  assert.is(entries.length, 1);
  const e = entries[0]!;
  assert.equal(r, {
    outcome: "welcome",
    name: "Ada",
    message: "Welcome, Ada",
    seq: 1,
    id: e.id,
    at: "2024-05-01T10:00:00.000Z",
  });
  assert.is(e.seq, 1);
  assert.is(e.kind, "checkin");
  assert.is(e.at, "2024-05-01T10:00:00.000Z");
  const body: CheckinBody = { memberId: "m-ada", credential: card(ADA.cardUid), replicaVersion: 7, offline: false };
  assert.equal(e.body, body);
});

test("a check-in while the cloud is away is journaled with offline: true", async (ctx) => {
  ctx.online.value = false;
  const r = await ctx.desk.decide(card(ADA.cardUid));
  assert.is(r.outcome, "welcome");
  const [e] = await ctx.journal.entriesAfter(0, 10);
  assert.is((e!.body as CheckinBody).offline, true);
});

test("a booking code works like a card", async (ctx) => {
  const r = await ctx.desk.decide({ type: "code", code: "ADA1" });
  assert.is(r.message, "Welcome, Ada");
  const [e] = await ctx.journal.entriesAfter(0, 10);
  assert.equal((e!.body as CheckinBody).credential, { type: "code", code: "ADA1" });
});

test("an unknown card is not recognised and nothing is journaled", async (ctx) => {
  const r = await ctx.desk.decide(card("DEADBEEF"));
  assert.equal(r, { outcome: "unknown", message: "Card not recognised", at: "2024-05-01T10:00:00.000Z" });
  const code = await ctx.desk.decide({ type: "code", code: "NOPE" });
  assert.is(code.outcome, "unknown");
  assert.is(code.message, "Booking code not recognised");
  assert.is((await ctx.journal.stats()).lastSeq, 0);
  assert.is(ctx.journaled, 0);
});

test("a revoked member is refused and nothing is journaled", async (ctx) => {
  const r = await ctx.desk.decide(card(BOB.cardUid));
  assert.is(r.outcome, "refused");
  assert.is(r.name, "Bob");
  assert.is(r.message, "This card is blocked");
  assert.is(r.seq, undefined);
  assert.is((await ctx.journal.stats()).lastSeq, 0);
  assert.is(ctx.journaled, 0);
});

test("a second tap on the same local day is 'Already checked in today' and journals nothing", async (ctx) => {
  assert.is((await ctx.desk.decide(card(ADA.cardUid))).outcome, "welcome");
  ctx.clock.at = new Date("2024-05-01T23:59:59Z");
  const again = await ctx.desk.decide(card(ADA.cardUid));
  assert.equal(again, {
    outcome: "already",
    name: "Ada",
    message: "Already checked in today",
    at: "2024-05-01T23:59:59.000Z",
  });
  // The code of the same member counts as the same member.
  assert.is((await ctx.desk.decide({ type: "code", code: "ADA1" })).outcome, "already");
  assert.is((await ctx.journal.stats()).lastSeq, 1);
  assert.is(ctx.journaled, 1);
});

test("the next local day welcomes the member again", async (ctx) => {
  assert.is((await ctx.desk.decide(card(ADA.cardUid))).seq, 1);
  ctx.clock.at = new Date("2024-05-02T00:00:00Z");
  const next = await ctx.desk.decide(card(ADA.cardUid));
  assert.is(next.outcome, "welcome");
  assert.is(next.seq, 2);
  assert.is((await ctx.journal.stats()).lastSeq, 2);
});

test("the day boundary follows the site's time zone, not UTC (Pacific/Auckland, UTC+12 in May)", async (ctx) => {
  await ctx.replica.replace(snapshot({ version: 8, timezone: "Pacific/Auckland" }), ctx.clock.at);
  // 23:30 on 1 May in Auckland, then 00:30 on 2 May in Auckland: the same UTC day, two local days.
  ctx.clock.at = new Date("2024-05-01T11:30:00Z");
  assert.is((await ctx.desk.decide(card(ADA.cardUid))).outcome, "welcome");
  ctx.clock.at = new Date("2024-05-01T12:30:00Z");
  assert.is((await ctx.desk.decide(card(ADA.cardUid))).outcome, "welcome");
  // 23:30 UTC on 2 May is 11:30 on 3 May in Auckland; 00:30 UTC on 3 May is still 3 May there.
  ctx.clock.at = new Date("2024-05-02T23:30:00Z");
  assert.is((await ctx.desk.decide(card(ADA.cardUid))).outcome, "welcome");
  ctx.clock.at = new Date("2024-05-03T00:30:00Z");
  assert.is((await ctx.desk.decide(card(ADA.cardUid))).outcome, "already");
  const bodies = (await ctx.journal.entriesAfter(0, 10)).map((e) => (e.body as CheckinBody).replicaVersion);
  assert.equal(bodies, [8, 8, 8]);
});

test("in UTC the same two instants are one day apart where Auckland's are not", async (ctx) => {
  ctx.clock.at = new Date("2024-05-01T11:30:00Z");
  assert.is((await ctx.desk.decide(card(ADA.cardUid))).outcome, "welcome");
  ctx.clock.at = new Date("2024-05-01T12:30:00Z");
  assert.is((await ctx.desk.decide(card(ADA.cardUid))).outcome, "already");
  ctx.clock.at = new Date("2024-05-02T00:30:00Z");
  assert.is((await ctx.desk.decide(card(ADA.cardUid))).outcome, "welcome");
});

test("two simultaneous taps of one card give exactly one welcome", async (ctx) => {
  const results = await Promise.all([
    ctx.desk.decide(card(ADA.cardUid)),
    ctx.desk.decide(card(ADA.cardUid)),
    ctx.desk.decide({ type: "code", code: "ADA1" }),
  ]);
  assert.equal(results.map((r) => r.outcome).sort(), ["already", "already", "welcome"]);
  assert.is((await ctx.journal.stats()).lastSeq, 1);
  assert.is(ctx.journaled, 1);
});

test("localDay is the calendar day in the given zone", () => {
  const at = new Date("2024-05-01T23:30:00Z");
  assert.is(localDay(at, "UTC"), "2024-05-01");
  assert.is(localDay(at, "Pacific/Auckland"), "2024-05-02");
  assert.is(localDay(new Date("2024-05-01T03:00:00Z"), "America/Los_Angeles"), "2024-04-30");
  assert.is(localDay(new Date("2024-01-05T00:00:00Z"), "UTC"), "2024-01-05");
});

test("a replica snapshot older than the one held is ignored", async (ctx) => {
  const carol = { id: "m-carol", name: "Carol", cardUid: "0A0B0C0D", code: null, status: "active" as const };
  assert.is(await ctx.replica.replace(snapshot({ version: 9, members: [ADA, carol] }), ctx.clock.at), true);
  assert.is(
    await ctx.replica.replace(snapshot({ version: 8, members: [ADA], timezone: "Pacific/Auckland" }), ctx.clock.at),
    false,
  );
  const info = await ctx.replica.info();
  assert.is(info.version, 9);
  assert.is(info.timezone, "UTC");
  assert.is(info.members, 2);
  assert.is((await ctx.desk.decide(card(carol.cardUid))).message, "Welcome, Carol");
});

test("a newer snapshot that revokes a member takes effect on the next tap", async (ctx) => {
  await ctx.replica.replace(snapshot({ version: 10, members: [{ ...ADA, status: "revoked" }] }), ctx.clock.at);
  assert.is((await ctx.desk.decide(card(ADA.cardUid))).outcome, "refused");
  assert.is((await ctx.desk.decide(card(BOB.cardUid))).outcome, "unknown", "Bob is gone from the new snapshot");
});

// Regression: Replica.replace once ran on the connection the desk reads from, and a
// connection sees its own uncommitted writes, so a tap during a sync told a valid member
// "Card not recognised". Snapshots are now written on a second connection.
test("a tap while a new snapshot is being written still finds the member", async (ctx) => {
  const many = Array.from({ length: 300 }, (_, i) => ({
    id: `m-${i}`,
    name: `Member ${i}`,
    cardUid: (0x10000000 + i).toString(16).toUpperCase(),
    code: null,
    status: "active" as const,
  }));
  await ctx.replica.replace(snapshot({ version: 20, members: many }), ctx.clock.at);
  let written = false;
  const writing = ctx.replica.replace(snapshot({ version: 21, members: many }), ctx.clock.at).then(() => {
    written = true;
  });
  const outcomes = new Set<string>();
  while (!written) outcomes.add((await ctx.desk.decide(card(many[299]!.cardUid))).outcome);
  await writing;
  assert.not.ok(outcomes.has("unknown"), `outcomes during the replace: ${[...outcomes]}`);
});

test.run();
