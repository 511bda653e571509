/**
 * `npm run drill`: the disaster-recovery drill end to end, on clusters it
 * starts on this machine and removes afterwards. First backup → restore →
 * verify (pgBackRest, encrypted repository in a folder standing in for another
 * region, point-in-time restore into a fresh cluster, the consistency check)
 * of a source cluster the cloud has just taken a load of kiosks on; then the
 * failover drill twice, a synchronous and an asynchronous streaming replica:
 * kill -9 of the primary under load, pg_ctl promote, the cloud repointing
 * through its multi-host DATABASE_URL. The kiosks are real: device/src's
 * Uplink over its SQLite Journal (test/dr/uplink-kiosk.ts), so what an
 * asynchronous replica lost at the promotion comes back from their journals
 * when the cloud asks them to replay. Prints progress as it goes and a
 * report (timings, counts, checksums, RPO, RTO, what was lost at the
 * promotion, healed from the kiosks, lost for good); exits 1 if a check failed.
 */
import { randomBytes } from "node:crypto";
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Gateway } from "@paylane/gateway";
import { Registry, type RegistryFile } from "@paylane/protocol";
import { ConfigError, createCommand, EXIT, oneLine } from "@paylane/protocol/service";
import { InvalidArgumentError } from "commander";
import pino from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { CloudService } from "../cloud/src/cloud.ts";
import { parseCloudEnv } from "../cloud/src/config.ts";
import { setup } from "../cloud/src/dr/backup.ts";
import { freePort, LocalCluster, postgresOwnedDir } from "../cloud/src/dr/cluster.ts";
import { parseConfig } from "../cloud/src/dr/config.ts";
import { type Report as BackupDrillReport, backupRestoreDrill } from "../cloud/src/dr/drill.ts";
import { drillRegistry, type FailoverReport, failoverDrill } from "../cloud/src/dr/failover.ts";
import type { FailoverKiosk } from "../cloud/src/dr/failover-kiosk.ts";
import { DEMO_MEMBERS, seedSite } from "../cloud/src/seed.ts";
import { REAL_UPLINK_KIOSK, realUplinkKiosk } from "../test/dr/uplink-kiosk.ts";

const positive = (what: string, max: number) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new InvalidArgumentError(`expected ${what} from 1 to ${max}`);
  return n;
};

const program = createCommand({
  name: "npm run drill --",
  packageJson: new URL("../cloud/package.json", import.meta.url),
  description:
    "The disaster-recovery drill on throwaway clusters of this machine's PostgreSQL (Debian's postgresql and pgbackrest " +
    "packages): backup → point-in-time restore → verify → consistency check, then the failover drill with a synchronous " +
    "and an asynchronous streaming replica (kill -9 of the primary under load, pg_ctl promote, the cloud repointing). " +
    "Prints a report; exits 1 when a check failed. docs/disaster-recovery.md shows a run.",
  helpCommand: "npm run drill -- --help",
  errorPrefix: "drill:",
  examples: [
    { command: "npm run drill", does: "both drills, default load (about a minute)" },
    { command: "npm run drill -- --skip-backup --kiosks 8 --load-seconds 20", does: "only failover, heavier" },
    { command: "npm run drill -- --json drill-report.json", does: "also write the report as JSON" },
  ],
})
  .option("--kiosks <n>", "simulated kiosks checking in and paying", positive("a number of kiosks", 64), 6)
  .option("--load-seconds <s>", "seconds of load before the kill (and before the backup)", positive("seconds", 600), 10)
  .option("--tap-every-ms <ms>", "each kiosk journals an entry this often", positive("milliseconds", 60_000), 50)
  .option("--skip-backup", "run the failover drill only")
  .option("--skip-failover", "run the backup → restore → verify drill only")
  .option("--json <file>", "also write the whole report to this file")
  .option("--keep", "keep the clusters' folders (printed) for a look afterwards");

interface DrillCliOptions {
  kiosks: number;
  loadSeconds: number;
  tapEveryMs: number;
  skipBackup?: boolean;
  skipFailover?: boolean;
  json?: string;
  keep?: boolean;
}

const quiet = pino({ level: process.env.LOG_LEVEL ?? "silent" });
const started = performance.now();
const say = (line: string) =>
  console.log(`[${((performance.now() - started) / 1000).toFixed(1).padStart(6)} s] ${line}`);

async function startGateway(file: RegistryFile) {
  const gateway = new Gateway({ registry: new Registry(file), port: 0, logger: quiet, metrics: new MetricsRegistry() });
  await gateway.start();
  return { url: `mqtt://127.0.0.1:${gateway.port}`, stop: () => gateway.stop() };
}

/** The cloud on `databaseUrl` taking `seconds` of kiosks checking in and paying: what the backup then holds. */
async function loadSource(databaseUrl: string, workDir: string, o: DrillCliOptions): Promise<number> {
  const site = "drill";
  const { secrets, cloudSecret, registry: file, registryPath } = await drillRegistry(site, o.kiosks, workDir);
  const broker = await startGateway(file);
  const cloud = new CloudService({
    config: parseCloudEnv({
      CLOUD_PORT: "0",
      MQTT_URL: broker.url,
      CLOUD_MQTT_SECRET: cloudSecret,
      REGISTRY_PATH: registryPath,
      DATABASE_URL: databaseUrl,
    }),
    logger: quiet,
    site,
  });
  const kiosks: FailoverKiosk[] = [];
  let onDrained = () => {};
  const drained = new Promise<void>((resolve) => {
    onDrained = resolve;
  });
  let loading = true;
  const ackSeen = () => {
    if (!loading && kiosks.every((k) => k.backlog === 0)) onDrained();
  };
  try {
    await cloud.start();
    await seedSite(cloud.db, { id: site, name: "DR drill", timezone: "UTC", currency: "EUR" });
    const members = DEMO_MEMBERS.filter((m) => m.status === "active").map((m) => m.id);
    const kioskDir = join(workDir, "kiosks");
    await mkdir(kioskDir, { recursive: true });
    for (const [device, secret] of secrets) {
      const k = realUplinkKiosk({
        address: { site, device },
        secret,
        mqttUrl: broker.url,
        ackTimeoutMs: 1000,
        members,
        currency: "EUR",
        dir: kioskDir,
        onAck: ackSeen,
      });
      await k.start();
      kiosks.push(k);
    }
    let taps = 0;
    const journaling = new Set<Promise<unknown>>();
    const tapFailures: string[] = [];
    const beat = setInterval(() => {
      for (const k of kiosks) {
        const tap = k
          .tap(++taps % 3 === 0 ? "payment" : "checkin")
          .catch((err: Error) => tapFailures.push(`${k.address.device}: ${err.message}`))
          .finally(() => journaling.delete(tap));
        journaling.add(tap);
      }
    }, o.tapEveryMs);
    // The load lasts its time: a duration, not a wait for a condition.
    await new Promise((r) => setTimeout(r, o.loadSeconds * 1000));
    clearInterval(beat);
    await Promise.all([...journaling]);
    if (tapFailures.length > 0) throw new Error(`taps failed: ${tapFailures.slice(0, 3).join("; ")}`);
    loading = false;
    ackSeen();
    // Drained before the backup (every entry journaled is then committed), heard from the acks.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      drained,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error("the kiosks' backlogs did not drain in 30 s")), 30_000);
      }),
    ]).finally(() => clearTimeout(timer));
    return kiosks.reduce((n, k) => n + k.ackedUpTo, 0);
  } finally {
    for (const k of kiosks) await k.stop();
    await cloud.stop().catch(() => {});
    await broker.stop();
  }
}

async function backupDrill(o: DrillCliOptions, workDir: string): Promise<BackupDrillReport> {
  const source = new LocalCluster({ dataDir: join(workDir, "source"), port: await freePort(), runDir: workDir });
  say(`backup drill: initdb source cluster on :${source.port}`);
  await source.init({ archive_mode: "on", archive_command: "'/bin/true'" });
  await source.start();
  try {
    const acked = await loadSource(source.url(), workDir, o);
    say(`backup drill: the cloud took ${acked} entries from ${o.kiosks} kiosks in ${o.loadSeconds} s`);
    const stateDir = join(workDir, "pgbackrest");
    const repo = join(workDir, "repo-other-region");
    await postgresOwnedDir(stateDir);
    await postgresOwnedDir(repo);
    // A throwaway repository's passphrase: random, in the environment only, never printed.
    process.env.PAYLANE_DR_CIPHER_PASS ??= randomBytes(36).toString("base64");
    const config = parseConfig({
      stanza: "drill",
      databaseUrl: source.url(),
      dataDir: source.dataDir,
      socketDir: source.runDir,
      repo: { type: "posix", path: repo },
      stateDir,
    });
    await setup(config, { restart: true, say: (l: string) => say(`backup drill: ${l}`) });
    return await backupRestoreDrill({ config, type: "full", say: (l: string) => say(`backup drill: ${l}`) });
  } finally {
    await source.stop().catch(() => {});
  }
}

function printBackup(r: BackupDrillReport): void {
  console.log("\nBackup → restore → verify");
  console.log(
    `  backup   ${r.backup.label} (${r.backup.type}) in ${r.backup.seconds.toFixed(1)} s, ${r.backup.sizeBytes} B, ${r.backup.repoSizeBytes} B in the repository`,
  );
  console.log(`  restore  to ${r.restore.point} in ${r.restore.seconds.toFixed(1)} s (port ${r.restore.port})`);
  console.log(
    `  verify   ${r.verify.ok ? "ok" : "FAILED"} in ${r.verify.seconds.toFixed(1)} s, ${r.verify.backups} backup(s)${r.verify.problems.length ? `: ${r.verify.problems.join("; ")}` : ""}`,
  );
  console.log(`  check    ${r.check.ok ? "ok" : "FAILED"}`);
  for (const c of r.counts)
    console.log(
      `    ${c.table.padEnd(24)} source ${String(c.source ?? "-").padStart(7)}  restored ${String(c.restored).padStart(7)}  ${c.checksum ? `md5 ${c.checksum}  ` : ""}${c.verdict}`,
    );
  console.log(`  total    ${r.totalSeconds.toFixed(1)} s`);
}

function printFailover(r: FailoverReport): void {
  console.log(`\nFailover, ${r.mode === "sync" ? "synchronous" : "asynchronous"} replica`);
  console.log(
    `  replication        synchronous_standby_names='${r.replication.synchronousStandbyNames}', synchronous_commit=${r.replication.synchronousCommit}, sync_state=${r.replication.syncState}`,
  );
  console.log(`  DATABASE_URL       ${r.databaseUrl}`);
  console.log(`  kiosks             ${r.kiosks}: ${r.kioskImplementation}`);
  console.log(`  load               ${r.timings.loadBeforeKillMs} ms before the kill`);
  console.log(
    `  at the kill        ${r.counts.ackedAtKill} entries acked, replica ${r.replayLagBytesAtKill} B of WAL behind in replay`,
  );
  console.log(
    `  promote            ${r.timings.promoteMs} ms after the kill; cloud on the new primary after ${r.timings.repointMs} ms`,
  );
  console.log(`  RTO                ${r.rtoSeconds.toFixed(3)} s (kill → first commit on the new primary)`);
  console.log(
    `  RPO                ${r.rpoEntries} acked entries the new primary lacked right after the promotion (of ${r.counts.ackedAtPromotion} acked)`,
  );
  console.log(
    `  healed             ${r.healedFromKiosks} sent again from the kiosks' journals on cmd/replay-from; lost for good ${r.lostForGood}`,
  );
  console.log(
    `  entries            ${r.counts.journaled} journaled, ${r.counts.acked} acked, ${r.counts.inboxRows} in the new primary's inbox; ${r.counts.resends} resends, ${r.counts.ingestFailures} failed ingest statements`,
  );
  console.log(`  payments           ${r.counts.payments} acked, ${r.counts.paymentsInLedger} in the ledger`);
  console.log(
    `  duplicates         ${r.duplicates.entryIds} entry ids, ${r.duplicates.ledgerKeys} ledger keys, ${r.duplicates.seqCollisions} seq collisions`,
  );
  console.log(
    `  backlogs           ${r.drained ? "drained" : "NOT drained"} ${r.timings.drainMs} ms after the load stopped`,
  );
  if (r.anomalies.length > 0) console.log(`  anomalies          ${r.anomalies.join("; ")}`);
}

function failoverOk(r: FailoverReport): boolean {
  const noDuplicates = r.duplicates.entryIds + r.duplicates.ledgerKeys + r.duplicates.seqCollisions === 0;
  // Async may lack at the promotion what it did not ship in time: that is its RPO, not a failure of the drill;
  // the kiosks must heal it (nothing lost for good) whatever the mode.
  return (
    noDuplicates &&
    r.anomalies.length === 0 &&
    r.lostForGood === 0 &&
    r.drained &&
    (r.mode === "async" || r.rpoEntries === 0)
  );
}

async function main(): Promise<number> {
  program.parse();
  const o = program.opts<DrillCliOptions>();
  if (o.skipBackup && o.skipFailover) throw new ConfigError("--skip-backup with --skip-failover leaves nothing to run");
  const workDir = await mkdtemp(join(tmpdir(), "paylane-drill-"));
  // The clusters' folders inside belong to the postgres user, who must be able to reach them.
  await chmod(workDir, 0o711);
  const report: { backup?: BackupDrillReport; failover: FailoverReport[] } = { failover: [] };
  let ok = true;
  try {
    if (!o.skipBackup) {
      report.backup = await backupDrill(o, join(workDir, "backup"));
      printBackup(report.backup);
      ok &&= report.backup.ok;
    }
    if (!o.skipFailover) {
      for (const mode of ["sync", "async"] as const) {
        const r = await failoverDrill({
          mode,
          startBroker: startGateway,
          kiosks: o.kiosks,
          tapEveryMs: o.tapEveryMs,
          loadBeforeKillMs: o.loadSeconds * 1000,
          loadAfterPromoteMs: Math.max(2000, (o.loadSeconds * 1000) / 2),
          ackTimeoutMs: 1000,
          startKiosk: realUplinkKiosk,
          kioskImplementation: REAL_UPLINK_KIOSK,
          workDir: join(workDir, `failover-${mode}`),
          keep: o.keep,
          logger: quiet,
          progress: (line) => say(`failover ${line}`),
        });
        report.failover.push(r);
        printFailover(r);
        ok &&= failoverOk(r);
      }
    }
    if (o.json) await writeFile(o.json, `${JSON.stringify(report, null, 2)}\n`);
    console.log(
      `\ndrill ${ok ? "passed" : "FAILED"} in ${((performance.now() - started) / 1000).toFixed(1)} s${o.json ? `; report in ${o.json}` : ""}`,
    );
    return ok ? 0 : 1;
  } finally {
    if (o.keep) console.log(`clusters kept in ${workDir}`);
    else await rm(workDir, { recursive: true, force: true });
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`drill: ${oneLine(err)}`);
    process.exitCode = err instanceof ConfigError ? EXIT.usage : EXIT.failed;
  },
);
