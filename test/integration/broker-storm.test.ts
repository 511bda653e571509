/**
 * Issue 4: "Broker restarted every few seconds (aedes and Mosquitto) while 20
 * kiosks publish: exactly once, nothing missing."
 *
 * Twenty real kiosk daemons check in members through their PN532 simulators
 * (so every check-in goes through a daemon's journal and uplink) while the
 * broker is restarted every 1-2 s: the aedes gateway in place, or a private
 * real Mosquitto killed with SIGKILL (no persistence, so whatever it held is
 * gone). A PUBACK is not an ack: what each broker lost must come back from
 * the journals, and the inbox must absorb every resend.
 *
 * Checked like Jepsen's "acknowledged => present exactly once": once every
 * journal is drained, each kiosk's inbox rows in Postgres are exactly seqs
 * 1..lastSeq, each under the entry id the kiosk showed the user, and the
 * check-ins equal the taps answered "welcome".
 *
 * Each kiosk checks in at least STORM_MIN_PER_KIOSK members and keeps going
 * until the broker has been restarted STORM_MIN_RESTARTS times, so every run
 * sees the storm however fast the machine taps (up to the member pool).
 *
 *   STORM_MIN_PER_KIOSK (50)   check-ins per kiosk, at least
 *   STORM_MIN_RESTARTS  (4)    broker restarts while the kiosks tap, at least
 */
import { randomInt } from "node:crypto";
import type { TapResult } from "@paylane/protocol/kiosk-api";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { intEnv } from "../support/env.ts";
import { loud } from "../support/hooks.ts";
import { type Backends, describe, manyMembers, TestSite } from "../support/site.ts";

const KIOSKS = Array.from({ length: 20 }, (_, i) => `k${i + 1}`);
const MIN_PER_KIOSK = intEnv("STORM_MIN_PER_KIOSK", 50);
/** Each kiosk's share of the member pool: a check-in needs a member not yet in today. */
const MAX_PER_KIOSK = Math.max(MIN_PER_KIOSK, 200);
/** The fault schedule: a restart every 1-2 s, and at least this many while the kiosks tap. */
const RESTART_MIN_MS = 1000;
const RESTART_MAX_MS = 2000;
const MIN_RESTARTS = intEnv("STORM_MIN_RESTARTS", 4, 0);
const DRAIN_TIMEOUT_MS = 60_000; // only ever fails the test

const CONFIGS: Array<Backends & { label: string }> = [
  { label: "aedes", db: "pg", presence: "memory", broker: "aedes" },
  { label: "Mosquitto, SIGKILL", db: "pg", presence: "redis", broker: "mosquitto-private" },
];

const fmt = (n: number) => n.toLocaleString("en-US");

for (const backends of CONFIGS) {
  const it = suite(`broker storm, ${describe(backends)}`);
  let site: TestSite;
  const members = manyMembers(KIOSKS.length * MAX_PER_KIOSK);

  it.before(
    loud(`${describe(backends)} storm site setup`, async () => {
      site = new TestSite({
        ...backends,
        kiosks: KIOSKS,
        probes: [],
        members,
        // resend soon when a restarted broker dropped what it held
        ackTimeoutMs: 1000,
      });
      await site.start();
    }),
  );
  it.after(
    loud(`${describe(backends)} storm site teardown`, async () => {
      await site?.stop();
    }),
  );

  it(`${KIOSKS.length} kiosks check in members while the broker restarts every 1-2 s: each exactly once, none missing`, async () => {
    const duplicatesBefore = (await site.bridgeEntries()).duplicate;
    /** Per kiosk, seq -> entry id of every check-in the user was told is done. */
    const told = new Map<string, Map<number, string>>(KIOSKS.map((k) => [k, new Map()]));
    const refusals: string[] = [];
    let restarts = 0;
    /** Set when a restart failed: the kiosks stop tapping and the failure is thrown below. */
    let stormError: Error | undefined;

    const tapAll = async (device: string, from: number) => {
      const kiosk = site.kiosk(device);
      for (let i = 0; i < MAX_PER_KIOSK && !stormError && (i < MIN_PER_KIOSK || restarts < MIN_RESTARTS); i++) {
        const r: TapResult = await kiosk.tap(members[from + i]!.cardUid);
        if (r.outcome !== "welcome" || r.seq === undefined || r.id === undefined) {
          refusals.push(`${device} tap ${i}: ${r.outcome} (${r.message})`);
          continue;
        }
        told.get(device)!.set(r.seq, r.id);
      }
    };

    const schedule = new AbortController();
    const storm = async () => {
      for (;;) {
        await pause(randomInt(RESTART_MIN_MS, RESTART_MAX_MS + 1), schedule.signal);
        if (schedule.signal.aborted) return;
        await site.restartBroker();
        restarts++;
      }
    };

    const started = Date.now();
    const stormDone = storm().catch((err: Error) => {
      stormError = err;
    });
    try {
      await Promise.all(KIOSKS.map((k, i) => tapAll(k, i * MAX_PER_KIOSK)));
    } finally {
      schedule.abort();
      await stormDone;
    }
    if (stormError) throw stormError;
    const stormEnded = Date.now();
    assert.equal(refusals, [], "every member is welcomed, with the broker up or down");
    assert.ok(restarts >= MIN_RESTARTS, `the broker was restarted ${restarts} times while the kiosks tapped`);

    const backlogs = async () =>
      Promise.all(KIOSKS.map(async (k) => [k, (await site.kiosk(k).journal.stats()).backlog] as const));
    await site.signal
      .until(
        async () => (await backlogs()).every(([, b]) => b === 0),
        "every kiosk's journal fully acked",
        DRAIN_TIMEOUT_MS,
      )
      .catch(async (err: Error) => {
        const left = (await backlogs()).filter(([, b]) => b > 0);
        throw new Error(`${err.message}; still waiting: ${left.map(([k, b]) => `${k}=${b}`).join(", ")}`);
      });
    const drainMs = Date.now() - stormEnded;

    // Every discrepancy, per kiosk, so a failure says which seqs went wrong.
    const problems: string[] = [];
    let missing = 0;
    let doubled = 0;
    let checkins = 0;
    for (const device of KIOSKS) {
      const mine = told.get(device)!;
      const { lastSeq } = await site.kiosk(device).journal.stats();
      if (mine.size < MIN_PER_KIOSK) problems.push(`${device}: only ${mine.size} check-ins`);
      if (lastSeq !== mine.size) problems.push(`${device}: journaled ${lastSeq} entries for ${mine.size} welcomes`);
      const { rows } = await site.db.query<{ seq: string | number; entry_id: string }>(
        "SELECT seq, entry_id FROM inbox WHERE site_id = $1 AND device_id = $2 ORDER BY seq",
        [site.site, device],
      );
      const ids = new Map<number, string[]>();
      for (const r of rows) ids.set(Number(r.seq), [...(ids.get(Number(r.seq)) ?? []), r.entry_id]);
      const absent = [...mine.keys()].filter((seq) => !ids.has(seq));
      const extra = [...ids.keys()].filter((seq) => !mine.has(seq));
      const twice = [...ids].filter(([, x]) => x.length > 1).map(([seq]) => seq);
      const wrong = [...ids].filter(([seq, x]) => mine.has(seq) && x[0] !== mine.get(seq)).map(([seq]) => seq);
      missing += absent.length;
      doubled += twice.length;
      if (absent.length > 0) problems.push(`${device}: acked but missing seqs ${list(absent)}`);
      if (twice.length > 0) problems.push(`${device}: seqs ${list(twice)} more than once`);
      if (extra.length > 0) problems.push(`${device}: seqs ${list(extra)} never told to a user`);
      if (wrong.length > 0) problems.push(`${device}: seqs ${list(wrong)} hold another entry than the user was told`);
      const c = await site.db.query<{ n: number; distinct_seqs: number }>(
        "SELECT count(*)::int AS n, count(DISTINCT seq)::int AS distinct_seqs FROM checkins WHERE site_id = $1 AND device_id = $2",
        [site.site, device],
      );
      const { n, distinct_seqs } = c.rows[0] ?? { n: 0, distinct_seqs: 0 };
      if (n !== mine.size || distinct_seqs !== mine.size) {
        problems.push(`${device}: ${n} check-ins (${distinct_seqs} distinct seqs) for ${mine.size} welcomes`);
      }
      checkins += n;
    }
    const absorbed = (await site.bridgeEntries()).duplicate - duplicatesBefore;

    console.log(
      `  broker storm (${backends.label}): ${KIOSKS.length} kiosks, ${fmt(checkins)} check-ins in ${((stormEnded - started) / 1000).toFixed(1)} s, ` +
        `${restarts} restarts, ${missing} missing, ${doubled} doubled, ` +
        `${fmt(absorbed)} resent entries absorbed, drained in ${(drainMs / 1000).toFixed(1)} s`,
    );
    assert.equal(problems, [], "every welcome in Postgres exactly once, under its own seq and id, and nothing else");
  });

  it.run();
}

/** A short list of seqs for a failure message. */
function list(seqs: number[]): string {
  return seqs.length > 10 ? `${seqs.slice(0, 10).join(", ")} … (${seqs.length})` : seqs.join(", ");
}

/** The restart schedule's wait (a fault schedule, not a wait for an outcome); ends early when aborted. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
