/**
 * Conflict rules (docs/conflicts.md), each with two kiosks and the outcome it
 * documents. One clock drives the kiosks and the cloud, so device times and
 * receive times are chosen by the test.
 */
import { DEMO_MEMBERS, seedSite } from "@paylane/cloud";
import { topics } from "@paylane/protocol";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { loud } from "../support/hooks.ts";
import { batch, checkinEntry, record } from "../support/probe.ts";
import { TestSite } from "../support/site.ts";

const T0 = Date.UTC(2026, 10, 25, 9, 0, 0);
let clock = T0;
const now = () => new Date(clock);

interface Conflict {
  kind: string;
  device: string;
  seq: number;
  memberId: string;
  detail: Record<string, unknown>;
}

const it = suite("conflict rules");
let site: TestSite;

it.before(
  loud("conflicts site setup", async () => {
    site = new TestSite({ db: "pglite", presence: "memory", broker: "aedes", probes: ["probe"], now });
    await site.start();
  }),
);
it.after(async () => {
  await site?.stop();
});

async function conflicts(kind: string): Promise<Conflict[]> {
  clock += 1000; // 'until' is now: step past the last entry's device time
  const res = await site.operator("GET", `/api/v1/conflicts?site=${site.site}&kind=${kind}`);
  assert.is(res.status, 200);
  return (res.body as { items: Conflict[] }).items;
}

async function drained(): Promise<void> {
  for (const k of ["k1", "k2"]) await site.drained(k, 20_000);
}

it("the same member at two offline kiosks on one day: the earliest by device time wins, the other is a duplicate, never dropped", async () => {
  await site.stopCloud("kill");
  await site.signal.until(async () => !(await site.kiosk("k1").state()).cloud, "kiosks see the cloud gone");
  clock = T0 + 60_000;
  const first = await site.kiosk("k2").tap("04B1C2D3");
  clock = T0 + 120_000;
  const second = await site.kiosk("k1").tap("04B1C2D3");
  assert.equal([first.outcome, second.outcome], ["welcome", "welcome"], "each kiosk decided alone");
  await site.startCloud();
  await drained();

  const found = await conflicts("duplicate-checkin");
  assert.equal(
    found.map((c) => [c.device, c.seq, c.memberId, (c.detail.winner as { device: string }).device]),
    [["k1", second.seq, "m-grace", "k2"]],
  );
  assert.is(
    await site.count("SELECT count(*) AS n FROM checkins WHERE site_id = $1 AND member_id = 'm-grace'", [site.site]),
    2,
    "both check-ins are kept",
  );
});

it("a check-in decided offline against a replica older than the member's revocation is flagged", async () => {
  await site.stopCloud("kill");
  await site.signal.until(async () => !(await site.kiosk("k1").state()).cloud, "kiosks see the cloud gone");
  const members = DEMO_MEMBERS.map((m) => (m.id === "m-alan" ? { ...m, status: "revoked" as const } : m));
  await seedSite(site.db, { id: site.site, name: "Test venue", timezone: "UTC" }, members);
  clock = T0 + 180_000;
  const r = await site.kiosk("k1").tap("04C0FFEE");
  assert.is(r.outcome, "welcome", "the kiosk could not know");
  await site.startCloud();
  await drained();

  const found = await conflicts("revoked-member");
  assert.equal(
    found.map((c) => [c.device, c.seq, c.memberId]),
    [["k1", r.seq, "m-alan"]],
  );
  const d = found[0]!.detail as { replicaVersion: number; revokedAtVersion: number };
  assert.ok(d.replicaVersion < d.revokedAtVersion, JSON.stringify(d));
});

it("a device clock running ahead is flagged, and its entry is ordered by the cloud's receive time", async () => {
  const probe = await site.rawDevice("probe");
  const a = site.address("probe");
  const acks = await record<{ upTo: number }>(probe, topics.ack(a), site.signal);
  // The probe's clock says an hour from now; the cloud receives it now.
  clock = T0 + 300_000;
  const fast = { ...checkinEntry(1, "m-katherine"), at: new Date(clock + 3_600_000).toISOString() };
  await probe.publishAsync(topics.events(a), batch("probe", [fast]), { qos: 1 });
  await site.signal.until(() => acks.some((x) => x.upTo === 1), "probe entry acked");
  // Ten minutes later, Katherine checks in at k2 with a correct clock.
  clock = T0 + 900_000;
  const k2 = await site.kiosk("k2").tap("04A1B2C3D4E5F6");
  await drained();

  clock = T0 + 4_000_000; // past the fast entry's device time (T0 + 65 min), so it is inside the window
  const skew = await conflicts("clock-skew");
  assert.equal(
    skew.map((c) => [c.device, c.seq, c.detail.ahead]),
    [["probe", 1, true]],
  );
  assert.ok(Number(skew[0]!.detail.skewSeconds) >= 3590);
  const dupes = (await conflicts("duplicate-checkin")).filter((c) => c.memberId === "m-katherine");
  assert.equal(
    dupes.map((c) => [c.device, c.seq, (c.detail.winner as { device: string }).device]),
    [["k2", k2.seq, "probe"]],
    "the fast clock does not make the probe's check-in 'later': its receive time, first, wins",
  );
});

it("bad query parameters name what is wrong", async () => {
  const res = await site.operator("GET", "/api/v1/conflicts?kind=teleport");
  assert.is(res.status, 400);
  assert.match(JSON.stringify(res.body), /kind/);
});

it.run();
