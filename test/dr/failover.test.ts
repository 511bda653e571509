/**
 * Issue 18, "Replica and failover", the short form of `npm run drill`: a
 * primary and a streaming replica on this machine, the cloud on libpq's
 * multi-host URL (target_session_attrs=read-write), four kiosks checking in
 * and paying over MQTT through the aedes gateway; kill -9 of the primary,
 * pg_ctl promote of the replica. Synchronous replication must lose nothing a
 * kiosk saw acked (RPO 0), apply nothing twice, and drain every backlog; the
 * asynchronous run prints its figures and asserts only what holds whatever
 * the replication lag (nothing applied twice; what it lost is what it reports).
 */
import { Gateway } from "@paylane/gateway";
import { Registry } from "@paylane/protocol";
import pino from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { type FailoverReport, failoverDrill } from "../../cloud/src/dr/failover.ts";

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
  return `${r.mode}: RPO ${r.rpoEntries} entries, RTO ${r.rtoSeconds} s, acked ${r.counts.acked}/${r.counts.journaled}, replay lag at kill ${r.replayLagBytesAtKill} B, drained ${r.drained} in ${r.timings.drainMs} ms`;
}

test("synchronous replica: kill -9 of the primary under load loses no acked entry, applies none twice, drains", async () => {
  const r = await drill("sync");
  console.log(`  ${summary(r)}`);
  assert.is(r.replication.syncState, "sync");
  assert.is(r.replication.synchronousStandbyNames, "replica");
  // The kill came with entries acked and the load running: a drill that killed an idle primary proves nothing.
  assert.ok(r.counts.ackedAtKill > 20, `only ${r.counts.ackedAtKill} entries acked before the kill`);
  assert.ok(r.counts.acked > r.counts.ackedAtKill, "nothing was acked after the failover");
  assert.is(r.rpoEntries, 0, `lost: ${JSON.stringify(r.perKiosk.map((k) => [k.device, k.lost]))}`);
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

test("asynchronous replica: the same drill prints its RPO; nothing is applied twice", async () => {
  const r = await drill("async");
  console.log(`  ${summary(r)}`);
  assert.is(r.replication.syncState, "async");
  assert.equal(r.duplicates, { entryIds: 0, ledgerKeys: 0, seqCollisions: 0 });
  // What the report calls lost is exactly what is missing: acked entries absent from the new primary.
  assert.is(
    r.rpoEntries,
    r.perKiosk.reduce((n, k) => n + k.lost.length, 0),
  );
  assert.ok(r.counts.paymentsInLedger <= r.counts.payments);
  if (r.rpoEntries === 0) assert.ok(r.drained, "nothing lost, so every backlog drains");
});

test.run();
