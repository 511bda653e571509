/**
 * Issue 18, "Replica and failover", the short form of `npm run drill`: a
 * primary and a streaming replica on this machine, the cloud on libpq's
 * multi-host URL (target_session_attrs=read-write), four kiosks checking in
 * and paying over MQTT through the aedes gateway — real kiosks: device/src's
 * Uplink over its SQLite Journal (test/dr/uplink-kiosk.ts); kill -9 of the
 * primary, pg_ctl promote of the replica. Synchronous replication must lose
 * nothing a kiosk saw acked (RPO 0), apply nothing twice, and drain every
 * backlog. An asynchronous replica may lack acked entries right after the
 * promotion (printed: its RPO); the cloud then asks the kiosks to replay from
 * its own mark, below their acks, and they send those entries again from
 * their journals (7193eb2): nothing is lost for good, nothing applied twice,
 * every backlog drains.
 */
import { Gateway } from "@paylane/gateway";
import { Registry } from "@paylane/protocol";
import pino from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { type FailoverReport, failoverDrill } from "../../cloud/src/dr/failover.ts";
import { REAL_UPLINK_KIOSK, realUplinkKiosk } from "./uplink-kiosk.ts";

const quiet = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });

async function drill(mode: "sync" | "async"): Promise<FailoverReport> {
  return failoverDrill({
    mode,
    kiosks: 4,
    tapEveryMs: 25,
    loadBeforeKillMs: 1500,
    loadAfterPromoteMs: 500,
    ackTimeoutMs: 500,
    drainTimeoutMs: 20_000,
    logger: quiet,
    startKiosk: realUplinkKiosk,
    kioskImplementation: REAL_UPLINK_KIOSK,
    progress: (line) => console.log(`  ${line}`),
    startBroker: async (file) => {
      const gateway = new Gateway({
        registry: new Registry(file),
        port: 0,
        logger: quiet,
        metrics: new MetricsRegistry(),
      });
      await gateway.start();
      return { url: `mqtt://127.0.0.1:${gateway.port}`, stop: () => gateway.stop() };
    },
  });
}

function summary(r: FailoverReport): string {
  return `${r.mode}: RPO ${r.rpoEntries} entries (lost at promotion ${r.lostAtPromotion}, healed from kiosks ${r.healedFromKiosks}, lost for good ${r.lostForGood}), RTO ${r.rtoSeconds} s, acked ${r.counts.acked}/${r.counts.journaled}, replay lag at kill ${r.replayLagBytesAtKill} B, drained ${r.drained} in ${r.timings.drainMs} ms`;
}

test("synchronous replica: kill -9 of the primary under load loses no acked entry, applies none twice, drains", async () => {
  const r = await drill("sync");
  console.log(`  ${summary(r)}`);
  assert.is(r.replication.syncState, "sync");
  assert.is(r.replication.synchronousStandbyNames, "replica");
  // The kill came with entries acked and the load running: a drill that killed an idle primary proves nothing.
  assert.ok(r.counts.ackedAtKill > 20, `only ${r.counts.ackedAtKill} entries acked before the kill`);
  assert.ok(r.counts.acked > r.counts.ackedAtKill, "nothing was acked after the failover");
  assert.is(r.rpoEntries, 0, `lost: ${JSON.stringify(r.perKiosk.map((k) => [k.device, k.lostAtPromotion]))}`);
  assert.is(r.lostAtPromotion, 0);
  assert.is(r.lostForGood, 0);
  assert.equal(r.duplicates, { entryIds: 0, ledgerKeys: 0, seqCollisions: 0 });
  assert.ok(r.drained, "backlogs drained");
  assert.is(r.counts.acked, r.counts.journaled);
  assert.is(r.counts.inboxRows, r.counts.journaled);
  assert.is(r.counts.paymentsInLedger, r.counts.payments);
  assert.ok(r.counts.payments > 0);
  assert.equal(r.anomalies, []);
  // The cloud chose the primary, then the promoted replica, by itself.
  assert.equal(
    r.hostsChosen.map((h) => h.host.split(":")[1]),
    [r.databaseUrl.match(/:(\d+),/)![1], r.databaseUrl.match(/,127\.0\.0\.1:(\d+)\//)![1]],
  );
  assert.ok(r.rtoSeconds > 0 && r.rtoSeconds < 30, `RTO ${r.rtoSeconds} s`);
});

test("asynchronous replica: what the promotion lost comes back from the kiosks' journals; nothing twice, drained", async () => {
  const r = await drill("async");
  console.log(`  ${summary(r)}`);
  assert.is(r.replication.syncState, "async");
  assert.ok(r.counts.ackedAtKill > 20, `only ${r.counts.ackedAtKill} entries acked before the kill`);
  // What the report calls lost at the promotion is what the new primary lacked then, seq by seq.
  assert.is(
    r.lostAtPromotion,
    r.perKiosk.reduce((n, k) => n + k.lostAtPromotion.length, 0),
  );
  assert.is(r.rpoEntries, r.lostAtPromotion);
  // Nothing compacted on the kiosks: every loss heals, whatever the replication lag was.
  assert.is(r.lostForGood, 0, `lost: ${JSON.stringify(r.perKiosk.map((k) => [k.device, k.lostForGood]))}`);
  assert.is(r.healedFromKiosks, r.lostAtPromotion);
  for (const k of r.perKiosk)
    if (k.lostAtPromotion.length > 0)
      assert.ok(
        k.replaysBelowAck > 0,
        `${k.device} lost ${k.lostAtPromotion.length} and was never asked to replay them`,
      );
  assert.equal(r.duplicates, { entryIds: 0, ledgerKeys: 0, seqCollisions: 0 });
  assert.ok(r.drained, "backlogs drained");
  assert.is(r.counts.acked, r.counts.journaled);
  assert.is(r.counts.inboxRows, r.counts.journaled);
  assert.is(r.counts.paymentsInLedger, r.counts.payments);
  assert.equal(r.anomalies, []);
});

test.run();
