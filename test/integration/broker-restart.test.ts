/**
 * Nothing lost, nothing doubled: two kiosks check in 1,000 members while the
 * broker is restarted in the middle. A PUBACK is not an ack, so whatever the
 * broker held when it died must be resent from the journals; the inbox makes
 * the resends harmless. Runs on aedes and on a private real Mosquitto (killed
 * with SIGKILL; the machine's shared broker is never touched).
 */
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { loud } from "../support/hooks.ts";
import { type Backends, describe, manyMembers, TestSite } from "../support/site.ts";

const PER_KIOSK = 500;
const RESTART_AFTER = 150;

const CONFIGS: Backends[] = [
  { db: "pg", presence: "redis", broker: "aedes" },
  { db: "pglite", presence: "memory", broker: "mosquitto-private" },
];

for (const backends of CONFIGS) {
  const it = suite(`broker restart, ${describe(backends)}`);
  let site: TestSite;

  it.before(
    loud(`${describe(backends)} site setup`, async () => {
      site = new TestSite({ ...backends, members: manyMembers(PER_KIOSK * 2), ackTimeoutMs: 1000, probes: [] });
      await site.start();
    }),
  );
  it.after(async () => {
    await site?.stop();
  });

  it(`${PER_KIOSK * 2} check-ins from two kiosks across a broker restart land exactly once`, async () => {
    const members = manyMembers(PER_KIOSK * 2);
    const started = Date.now();
    let restarted: Promise<void> | undefined;
    const tapAll = async (device: string, from: number) => {
      const k = site.kiosk(device);
      for (let i = 0; i < PER_KIOSK; i++) {
        const r = await k.tap(members[from + i]!.cardUid);
        assert.is(r.outcome, "welcome", `${device} tap ${i}: ${r.message}`);
        if (device === "k1" && i === RESTART_AFTER) restarted = site.restartBroker();
      }
    };
    await Promise.all([tapAll("k1", 0), tapAll("k2", PER_KIOSK)]);
    await restarted;
    assert.ok(restarted, "the broker was restarted mid-run");

    for (const device of ["k1", "k2"]) {
      const k = site.kiosk(device);
      await site.signal.until(
        async () => (await k.journal.stats()).backlog === 0,
        `${device} journal fully acked`,
        60_000,
      );
      const { lastSeq } = await k.journal.stats();
      assert.is(lastSeq, PER_KIOSK, `${device} journaled every check-in`);
      const { rows } = await site.db.query<{ n: number; distinct_seqs: number; max_seq: number; checkins: number }>(
        `SELECT count(*)::int AS n, count(DISTINCT seq)::int AS distinct_seqs, max(seq) AS max_seq,
                (SELECT count(*)::int FROM checkins c WHERE c.site_id = $1 AND c.device_id = $2) AS checkins
         FROM inbox WHERE site_id = $1 AND device_id = $2`,
        [site.site, device],
      );
      assert.equal(
        rows[0],
        { n: PER_KIOSK, distinct_seqs: PER_KIOSK, max_seq: PER_KIOSK, checkins: PER_KIOSK },
        device,
      );
    }
    console.log(
      `  ${describe(backends)}: ${PER_KIOSK * 2} check-ins, broker restarted once, all acked in ${Date.now() - started} ms`,
    );
  });

  it.run();
}
