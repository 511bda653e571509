/**
 * Partition: a kiosk cut from its broker for a long stretch keeps journaling
 * (10,000+ entries), then the network heals: the journal drains, the seqs in
 * Postgres are contiguous, and the drain time is printed. The cut is a
 * FaultProxy between the kiosk and the gateway: every connection reset, new
 * ones refused, as when a kiosk's uplink is unplugged.
 */
import type { CheckinBody } from "@paylane/protocol";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { intEnv } from "../support/env.ts";
import { FaultProxy } from "../support/fault-proxy.ts";
import { loud } from "../support/hooks.ts";
import { TestSite } from "../support/site.ts";

const ENTRIES = intEnv("PARTITION_ENTRIES", 10_000);
const it = suite("partition");
let site: TestSite;
let proxy: FaultProxy;

it.before(
  loud("partition site setup", async () => {
    site = new TestSite({ db: "pg", presence: "memory", broker: "aedes", kiosks: [], probes: ["k1"] });
    await site.start();
    proxy = new FaultProxy({ target: { host: "127.0.0.1", port: site.gateway!.port } });
    await proxy.start();
    await site.startKiosk("k1", { mqttUrl: proxy.url("mqtt") });
  }),
);
it.after(async () => {
  await site?.stop();
  await proxy?.stop();
});

it(`cut from the broker while ${ENTRIES.toLocaleString("en")} entries are journaled, then healed: all land, contiguous`, async () => {
  const k1 = site.kiosk("k1");
  proxy.refuse(true);
  proxy.reset();
  await site.signal.until(async () => !(await k1.state()).broker, "the kiosk sees the cut");

  // What the check-in desk journals, many times over, in one SQLite transaction to keep the test short.
  const at = new Date();
  await k1.journal.db.exec("BEGIN");
  for (let i = 1; i <= ENTRIES; i++) {
    const body: CheckinBody = {
      memberId: `m-${i}`,
      credential: { type: "card", uid: "04A2B3C4" },
      replicaVersion: 1,
      offline: true,
    };
    await k1.journal.append("checkin", body, at);
  }
  await k1.journal.db.exec("COMMIT");
  k1.uplink.notifyAppended();
  assert.is((await k1.journal.stats()).backlog, ENTRIES, "everything waits in the journal");
  const page = await (await fetch(`http://127.0.0.1:${k1.port}/status`)).text();
  assert.match(page, new RegExp(`<th>Journal backlog</th><td>${ENTRIES} entries`), "the status page shows the backlog");
  assert.match(page, /<th>Oldest unacked entry<\/th><td>\d+ s<\/td>/, "and how old its oldest entry is");

  const healed = performance.now();
  proxy.heal();
  await site.drained("k1", 120_000);
  const drainMs = performance.now() - healed;

  const { rows } = await site.db.query<{ n: number; lo: number; hi: number }>(
    "SELECT count(*)::int AS n, min(seq) AS lo, max(seq) AS hi FROM inbox WHERE site_id = $1 AND device_id = 'k1'",
    [site.site],
  );
  assert.equal(rows[0], { n: ENTRIES, lo: 1, hi: ENTRIES }, "seqs 1..N, each once");
  console.log(
    `partition: ${ENTRIES.toLocaleString("en")} entries journaled while cut, ${proxy.stats.refused} reconnects refused; ` +
      `healed: drained in ${(drainMs / 1000).toFixed(1)} s (incl. the kiosk's reconnect backoff), seq 1..${ENTRIES} contiguous`,
  );
});

it.run();
