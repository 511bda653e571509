/**
 * The failover drill: a primary and a streaming replica (pg_basebackup -R) on
 * this machine, the cloud on libpq's multi-host URL with
 * target_session_attrs=read-write, kiosks checking in and paying over MQTT;
 * then kill -9 of the primary, `pg_ctl promote` of the replica, the cloud
 * choosing the new primary by itself, and the proof, read from the new
 * primary: every entry a kiosk saw acked is there, none twice, every payment
 * once in the ledger, every kiosk's backlog drained.
 *
 * Three figures of loss. `lostAtPromotion`: acked entries the new primary
 * lacks right after the promotion, the database's RPO (0 with synchronous
 * replication: a commit, hence an ack, waits for the standby's flush; with
 * an asynchronous replica, what it had not received). The cloud then sees
 * the gap (its mark is below the kiosks' acks), asks `cmd/replay-from`, and
 * the kiosks send those acked entries again from their journals:
 * `healedFromKiosks`. `lostForGood`: acked entries still missing at the end,
 * 0 unless a kiosk had compacted them. RTO: seconds from the kill to the
 * first commit on the new primary.
 *
 * The kiosks come from `startKiosk`: by default the uplink in miniature
 * (failover-kiosk.ts); tests and `npm run drill` hand in the real kiosk's
 * Uplink + Journal (test/dr/uplink-kiosk.ts), which the cloud package cannot
 * import.
 */
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Entry, Registry, type RegistryFile, realTimers, siteRegistryFile } from "@paylane/protocol";
import pino, { type Logger } from "pino";
import { CloudService } from "../cloud.ts";
import { parseCloudEnv } from "../config.ts";
import type { Database } from "../db/database.ts";
import { openPg } from "../db/pg.ts";
import { DEMO_MEMBERS, seedSite } from "../seed.ts";
import { freePort, LocalCluster } from "./cluster.ts";
import { DrillKiosk, type FailoverKiosk, type KioskFactory } from "./failover-kiosk.ts";

export type ReplicationMode = "sync" | "async";

/** A broker the drill's kiosks and cloud connect to, started with the drill's registry (tests: aedes in-process). */
export interface DrillBroker {
  url: string;
  stop(): Promise<void>;
}

export interface FailoverDrillOptions {
  mode: ReplicationMode;
  /** The broker, started for the registry the drill writes (devices and the cloud's service identity). */
  startBroker: (registry: RegistryFile) => Promise<DrillBroker>;
  kiosks?: number;
  /** Each kiosk journals an entry this often (default 100 ms: 10 taps a second per kiosk). */
  tapEveryMs?: number;
  /** Every n-th entry is a payment, the rest check-ins (default 3). */
  payEvery?: number;
  /** Load before the kill (default 3 s). */
  loadBeforeKillMs?: number;
  /** Load after the promotion, before the kiosks stop tapping and drain (default 2 s). */
  loadAfterPromoteMs?: number;
  /**
   * Makes each kiosk (default: the miniature, `DrillKiosk`). `spec.dir` is a
   * folder of the drill's it may keep files in (a journal).
   */
  startKiosk?: KioskFactory;
  /** What the kiosks are, for the report (default "miniature uplink (failover-kiosk.ts)"). */
  kioskImplementation?: string;
  /** The kiosks' uplink ack timeout: unacked entries are published again after it (default 1 s). */
  ackTimeoutMs?: number;
  /** How long the backlogs may take to drain before the drill reports them undrained (default 30 s). */
  drainTimeoutMs?: number;
  /** Where the clusters live (default a new folder in the OS temp dir, removed at the end unless `keep`). */
  workDir?: string;
  keep?: boolean;
  /** One line per step, as it happens. */
  progress?: (line: string) => void;
  logger?: Logger;
}

export interface KioskFigures {
  device: string;
  journaled: number;
  acked: number;
  ackedAtKill: number;
  resends: number;
  /** Replays the cloud asked for from at or below the kiosk's ack (it had lost acked entries). */
  replaysBelowAck: number;
  /** Acked seqs the new primary lacked right after the promotion. */
  lostAtPromotion: number[];
  /** Of those, how many the kiosk sent again and the new primary now holds. */
  healed: number;
  /** Acked seqs the new primary lacks at the end. */
  lostForGood: number[];
}

export interface FailoverReport {
  mode: ReplicationMode;
  /** The primary's synchronous_standby_names and synchronous_commit while the load ran. */
  replication: { synchronousStandbyNames: string; synchronousCommit: string; syncState: string };
  databaseUrl: string;
  kiosks: number;
  kioskImplementation: string;
  /** ms */
  timings: { setupMs: number; loadBeforeKillMs: number; promoteMs: number; repointMs: number; drainMs: number };
  /** Bytes of WAL the replica had not replayed when the primary was killed. */
  replayLagBytesAtKill: number;
  /** Seconds from the kill to the first commit on the new primary. */
  rtoSeconds: number;
  /** The database's RPO: acked entries the new primary lacked right after the promotion (= lostAtPromotion). */
  rpoEntries: number;
  /** Acked entries (all kiosks) the new primary lacked right after the promotion. */
  lostAtPromotion: number;
  /** Of those, entries the kiosks sent again from their journals and the new primary holds at the end. */
  healedFromKiosks: number;
  /** Acked entries the new primary lacks at the end: 0 unless a kiosk had compacted them. */
  lostForGood: number;
  counts: {
    journaled: number;
    ackedAtKill: number;
    /** Acked by the time of the first look at the new primary (nothing commits between the kill and it). */
    ackedAtPromotion: number;
    acked: number;
    inboxRows: number;
    payments: number;
    paymentsInLedger: number;
    resends: number;
    ingestFailures: number;
  };
  duplicates: { entryIds: number; ledgerKeys: number; seqCollisions: number };
  /** Every kiosk's last entry acked by the end. */
  drained: boolean;
  /** Cloud anomalies seen by kiosks (acks beyond a journal, conflicts). */
  anomalies: string[];
  hostsChosen: { host: string; atMs: number }[];
  perKiosk: KioskFigures[];
}

const SCHEMA = "paylane";

/** Runs the drill once; the clusters, cloud and broker it starts are stopped before it returns. */
export async function failoverDrill(o: FailoverDrillOptions): Promise<FailoverReport> {
  const say = o.progress ?? (() => {});
  const log = o.logger ?? pino({ level: "silent" });
  const kioskCount = o.kiosks ?? 4;
  const tapEveryMs = o.tapEveryMs ?? 100;
  const payEvery = o.payEvery ?? 3;
  const ackTimeoutMs = o.ackTimeoutMs ?? 1000;
  const t0 = performance.now();
  const since = () => Math.round(performance.now() - t0);
  const workDir = o.workDir ?? (await mkdtemp(join(tmpdir(), `paylane-failover-${o.mode}-`)));
  const cleanups: (() => Promise<unknown>)[] = [];
  const kiosks: FailoverKiosk[] = [];
  let stopLoad = () => {};
  try {
    // 1. The primary and its replica.
    const [primaryPort, replicaPort] = [await freePort(), await freePort()];
    const primary = new LocalCluster({ dataDir: join(workDir, "primary"), port: primaryPort, runDir: workDir });
    const replica = new LocalCluster({ dataDir: join(workDir, "replica"), port: replicaPort, runDir: workDir });
    cleanups.push(
      () => replica.stop().catch(() => {}),
      () => primary.stop().catch(() => {}),
    );
    say(`[${o.mode}] initdb primary on :${primaryPort}`);
    // wal_log_hints and kept WAL: what pg_rewind needs to turn the old primary into the new one's replica.
    await primary.init({ wal_keep_size: "'256MB'", wal_log_hints: "on" });
    await primary.start();
    say(`[${o.mode}] pg_basebackup -R replica on :${replicaPort}`);
    await replica.cloneFrom(primary, { applicationName: "replica" });
    await replica.start();
    const admin = await openPg({ url: primary.url(), schema: "public", max: 2 });
    cleanups.push(() => admin.close().catch(() => {}));
    if (o.mode === "sync") {
      // On the primary only (ALTER SYSTEM after the clone): the promoted replica must not wait for a standby it lacks.
      await admin.query("ALTER SYSTEM SET synchronous_standby_names = 'replica'");
      await admin.query("ALTER SYSTEM SET synchronous_commit = 'on'");
      await admin.query("SELECT pg_reload_conf()");
    }
    const wanted = o.mode === "sync" ? "sync" : "async";
    const syncState = await pollFor(
      async () => {
        const { rows } = await admin.query<{ sync_state: string; state: string }>(
          "SELECT sync_state, state FROM pg_stat_replication WHERE application_name = 'replica'",
        );
        return rows[0]?.state === "streaming" && rows[0].sync_state === wanted ? rows[0].sync_state : undefined;
      },
      30_000,
      `the replica streaming as ${wanted}`,
    );
    const settings = await admin.query<{ names: string; commit: string }>(
      "SELECT current_setting('synchronous_standby_names') AS names, current_setting('synchronous_commit') AS commit",
    );
    say(`[${o.mode}] replica streaming (${syncState}); synchronous_standby_names='${settings.rows[0]!.names}'`);

    // 2. The cloud on the multi-host URL, a broker, the site and its kiosks.
    const databaseUrl = `postgres://postgres@127.0.0.1:${primaryPort},127.0.0.1:${replicaPort}/postgres?target_session_attrs=read-write`;
    const hostsChosen: { host: string; atMs: number }[] = [];
    const replicaHost = `127.0.0.1:${replicaPort}`;
    /** When the cloud chose the promoted replica: every commit from then on is the new primary's. */
    let newPrimaryChosenAt: number | undefined;
    const db = await openPg({
      url: databaseUrl,
      schema: SCHEMA,
      queryTimeoutMs: 5000,
      onHostChosen: (host) => {
        if (host === replicaHost) newPrimaryChosenAt ??= performance.now();
        hostsChosen.push({ host, atMs: since() });
        say(`[${o.mode}] cloud database on ${host} (read-write) at ${since()} ms`);
      },
    });
    cleanups.push(() => db.close().catch(() => {}));
    const site = `drill${randomBytes(3).toString("hex")}`;
    const { secrets, cloudSecret, registry, registryPath } = await drillRegistry(site, kioskCount, workDir);
    const broker = await o.startBroker(registry);
    cleanups.push(() => broker.stop().catch(() => {}));

    let ingestFailures = 0;
    let firstCommitOnNewPrimary: number | undefined;
    const waiters = new Set<() => void>();
    const notify = () => {
      for (const w of [...waiters]) w();
    };
    const cloud = new CloudService({
      config: parseCloudEnv({
        CLOUD_PORT: "0",
        MQTT_URL: broker.url,
        CLOUD_MQTT_SECRET: cloudSecret,
        REGISTRY_PATH: registryPath,
        DATABASE_URL: databaseUrl,
        DATABASE_SCHEMA: SCHEMA,
        CLOUD_INSTANCE: `drill-${site}`,
        GAP_WAIT_MS: "500",
      }),
      logger: log,
      db,
      site,
      onCommitted: () => {
        if (newPrimaryChosenAt !== undefined && firstCommitOnNewPrimary === undefined)
          firstCommitOnNewPrimary = performance.now();
        notify();
      },
    });
    await cloud.start();
    cleanups.push(() => cloud.stop().catch(() => {}));
    await seedSite(db, { id: site, name: "Failover drill", timezone: "UTC", currency: "EUR" });
    const members = DEMO_MEMBERS.filter((m) => m.status === "active").map((m) => m.id);
    const startKiosk: KioskFactory = o.startKiosk ?? ((spec) => new DrillKiosk({ ...spec, timers: realTimers }));
    const kioskDir = join(workDir, "kiosks");
    await mkdir(kioskDir, { recursive: true });
    for (const [device, secret] of secrets) {
      const k = startKiosk({
        address: { site, device },
        secret,
        mqttUrl: broker.url,
        ackTimeoutMs,
        members,
        currency: "EUR",
        dir: kioskDir,
        onAck: notify,
      });
      await k.start();
      kiosks.push(k);
    }
    cleanups.push(async () => {
      for (const k of kiosks) await k.stop();
    });
    const setupMs = since();
    say(`[${o.mode}] cloud up, ${kioskCount} kiosks tapping every ${tapEveryMs} ms (every ${payEvery}rd a payment)`);

    // 3. The load: each kiosk journals on its own beat until told to stop.
    let taps = 0;
    let loading = true;
    /** Taps still being journaled (a real journal's append waits for its fsync). */
    const journaling = new Set<Promise<unknown>>();
    const tapFailures: string[] = [];
    const beats = kiosks.map((k, i) => {
      const beat = () => {
        if (!loading) return;
        taps++;
        const tap = k
          .tap(taps % payEvery === 0 ? "payment" : "checkin")
          .catch((err: Error) => tapFailures.push(`${k.address.device}: ${err.message}`))
          .finally(() => journaling.delete(tap));
        journaling.add(tap);
        handle = realTimers.setTimeout(beat, tapEveryMs);
      };
      // Staggered, so the kiosks do not all publish in the same millisecond.
      let handle = realTimers.setTimeout(beat, Math.floor((tapEveryMs * i) / kiosks.length));
      return () => realTimers.clearTimeout(handle);
    });
    stopLoad = () => {
      loading = false;
      for (const stop of beats) stop();
    };
    const loadStarted = performance.now();
    await until(
      waiters,
      () => performance.now() - loadStarted >= (o.loadBeforeKillMs ?? 3000),
      (o.loadBeforeKillMs ?? 3000) + 60_000,
      "the load before the kill",
      tapEveryMs,
    );
    const loadBeforeKillMs = Math.round(performance.now() - loadStarted);

    // 4. kill -9, promote, repoint.
    const lag = await admin.query<{ lag: string | null }>(
      "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::text AS lag FROM pg_stat_replication WHERE application_name = 'replica'",
    );
    const ackedAtKill = new Map(kiosks.map((k) => [k.address.device, k.ackedUpTo]));
    const killedAt = performance.now();
    await primary.kill();
    say(
      `[${o.mode}] kill -9 primary at ${since()} ms: ${kiosks.reduce((n, k) => n + k.ackedUpTo, 0)} entries acked, ${kiosks.reduce((n, k) => n + k.backlog, 0)} in backlogs`,
    );
    await admin.close().catch(() => {});
    await replica.promote();
    const promoteMs = Math.round(performance.now() - killedAt);
    say(`[${o.mode}] pg_ctl promote done ${promoteMs} ms after the kill`);
    // The database's RPO, read at once: what the kiosks saw acked that the new primary lacks. Nothing was
    // committed between the kill and now; what the cloud commits from now on is the new primary's (and a
    // replay of a lost entry takes the cloud's gap wait, far longer than this read).
    const check = await openPg({ url: replica.url(), schema: SCHEMA, max: 2 });
    cleanups.push(() => check.close().catch(() => {}));
    const atPromotion = await lostAcked(check, site, kiosks);
    const lostAtPromotion = [...atPromotion.values()].reduce((n, l) => n + l.lost.length, 0);
    say(`[${o.mode}] right after the promotion the new primary lacks ${lostAtPromotion} acked entries (RPO)`);
    await until(
      waiters,
      () => firstCommitOnNewPrimary !== undefined,
      60_000,
      "the first commit on the new primary",
      50,
    );
    const rtoSeconds = (firstCommitOnNewPrimary! - killedAt) / 1000;
    const repointMs = Math.round(newPrimaryChosenAt! - killedAt);
    say(`[${o.mode}] first commit on the new primary ${rtoSeconds.toFixed(2)} s after the kill (RTO)`);

    // 5. More load on the new primary, then the kiosks stop tapping and drain.
    const afterStarted = performance.now();
    await until(
      waiters,
      () => performance.now() - afterStarted >= (o.loadAfterPromoteMs ?? 2000),
      (o.loadAfterPromoteMs ?? 2000) + 60_000,
      "the load after the promotion",
      tapEveryMs,
    );
    stopLoad();
    await Promise.all([...journaling]);
    const drainStarted = performance.now();
    const drained = await until(
      waiters,
      () => kiosks.every((k) => k.backlog === 0),
      o.drainTimeoutMs ?? 30_000,
      "every kiosk's backlog drained",
    ).then(
      () => true,
      () => false,
    );
    const drainMs = Math.round(performance.now() - drainStarted);
    say(
      drained
        ? `[${o.mode}] every backlog drained in ${drainMs} ms`
        : `[${o.mode}] backlogs NOT drained after ${drainMs} ms: ${kiosks.map((k) => `${k.address.device}=${k.backlog}`).join(" ")}`,
    );
    ingestFailures = await metricValue(cloud, "paylane_bridge_commit_failures_total");

    // 6. The proof, read from the new primary alone.
    const proof = await prove(check, site, kiosks, ackedAtKill, atPromotion);
    const lostForGood = proof.perKiosk.reduce((n, k) => n + k.lostForGood.length, 0);
    const healedFromKiosks = proof.perKiosk.reduce((n, k) => n + k.healed, 0);
    const report: FailoverReport = {
      mode: o.mode,
      replication: {
        synchronousStandbyNames: settings.rows[0]!.names,
        synchronousCommit: settings.rows[0]!.commit,
        syncState,
      },
      databaseUrl,
      kiosks: kioskCount,
      kioskImplementation: o.kioskImplementation ?? "miniature uplink (failover-kiosk.ts)",
      timings: { setupMs, loadBeforeKillMs, promoteMs, repointMs, drainMs },
      replayLagBytesAtKill: Number(lag.rows[0]?.lag ?? 0),
      rtoSeconds: Math.round(rtoSeconds * 1000) / 1000,
      rpoEntries: lostAtPromotion,
      lostAtPromotion,
      healedFromKiosks,
      lostForGood,
      counts: { ...proof.counts, ingestFailures },
      duplicates: proof.duplicates,
      drained,
      anomalies: [
        ...kiosks.flatMap((k) => k.anomalies.map((a) => `${k.address.device}: ${a}`)),
        ...tapFailures.map((t) => `tap failed: ${t}`),
      ],
      hostsChosen,
      perKiosk: proof.perKiosk,
    };
    say(
      `[${o.mode}] acked entries lost at the promotion ${lostAtPromotion}, healed from the kiosks ${healedFromKiosks}, lost for good ${lostForGood}; duplicates ${proof.duplicates.entryIds}/${proof.duplicates.ledgerKeys}/${proof.duplicates.seqCollisions}; ${proof.counts.inboxRows} inbox rows`,
    );
    return report;
  } finally {
    stopLoad();
    for (const c of cleanups.reverse()) await c();
    if (!o.keep && !o.workDir) await rm(workDir, { recursive: true, force: true });
  }
}

/** Per kiosk: its ack now, its journal, and the acked seqs `db` lacks (or holds under another id). */
async function lostAcked(
  db: Database,
  site: string,
  kiosks: FailoverKiosk[],
): Promise<Map<string, { acked: number; lost: number[]; entries: Entry[]; held: Map<number, string> }>> {
  const out = new Map<string, { acked: number; lost: number[]; entries: Entry[]; held: Map<number, string> }>();
  for (const k of kiosks) {
    const acked = k.ackedUpTo;
    const entries = await k.history();
    const { rows } = await db.query<{ seq: number; entry_id: string }>(
      "SELECT seq, entry_id FROM inbox WHERE site_id = $1 AND device_id = $2",
      [site, k.address.device],
    );
    const held = new Map(rows.map((r) => [r.seq, r.entry_id]));
    const bySeq = new Map(entries.map((e) => [e.seq, e.id]));
    const lost: number[] = [];
    for (let seq = 1; seq <= acked; seq++)
      if (bySeq.get(seq) === undefined || held.get(seq) !== bySeq.get(seq)) lost.push(seq);
    out.set(k.address.device, { acked, lost, entries, held });
  }
  return out;
}

async function prove(
  db: Database,
  site: string,
  kiosks: FailoverKiosk[],
  ackedAtKill: Map<string, number>,
  atPromotion: Map<string, { acked: number; lost: number[] }>,
): Promise<{
  perKiosk: KioskFigures[];
  counts: Omit<FailoverReport["counts"], "ingestFailures">;
  duplicates: FailoverReport["duplicates"];
}> {
  const perKiosk: KioskFigures[] = [];
  let inboxRows = 0;
  let payments = 0;
  let paymentsInLedger = 0;
  const now = await lostAcked(db, site, kiosks);
  for (const k of kiosks) {
    const device = k.address.device;
    const { acked, lost, entries, held } = now.get(device)!;
    inboxRows += held.size;
    const lostBefore = atPromotion.get(device)?.lost ?? [];
    const keys = entries
      .filter((e) => e.seq <= acked && e.kind === "payment")
      .map((e) => `kiosk:${device}:${(e.body as { key: string }).key}`);
    payments += keys.length;
    if (keys.length > 0) {
      const { rows: ledger } = await db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM ledger_entries WHERE site_id = $1 AND request_key = ANY($2::text[])",
        [site, keys],
      );
      paymentsInLedger += ledger[0]!.n;
    }
    perKiosk.push({
      device,
      journaled: k.lastSeq,
      acked,
      ackedAtKill: ackedAtKill.get(device) ?? 0,
      resends: k.resends,
      replaysBelowAck: k.replaysBelowAck,
      lostAtPromotion: lostBefore,
      healed: lostBefore.filter((seq) => !lost.includes(seq)).length,
      lostForGood: lost,
    });
  }
  const one = async (sql: string) => (await db.query<{ n: number }>(sql, [site])).rows[0]!.n;
  const duplicates = {
    entryIds: await one("SELECT (count(*) - count(DISTINCT entry_id))::int AS n FROM inbox WHERE site_id = $1"),
    ledgerKeys: await one(
      "SELECT (count(*) - count(DISTINCT request_key))::int AS n FROM ledger_entries WHERE site_id = $1",
    ),
    seqCollisions: await one("SELECT count(*)::int AS n FROM seq_collisions WHERE site_id = $1"),
  };
  return {
    perKiosk,
    counts: {
      journaled: kiosks.reduce((n, k) => n + k.lastSeq, 0),
      ackedAtKill: [...ackedAtKill.values()].reduce((a, b) => a + b, 0),
      ackedAtPromotion: [...atPromotion.values()].reduce((n, a) => n + a.acked, 0),
      acked: kiosks.reduce((n, k) => n + k.ackedUpTo, 0),
      inboxRows,
      payments,
      paymentsInLedger,
      resends: kiosks.reduce((n, k) => n + k.resends, 0),
    },
    duplicates,
  };
}

async function metricValue(cloud: CloudService, name: string): Promise<number> {
  const m = await cloud.metrics.getSingleMetric(name)?.get();
  return (m?.values ?? []).reduce((n, v) => n + v.value, 0);
}

/**
 * Resolves when `check()` holds, re-checked on every notify (an ack, a commit) and every `everyMs`
 * (for conditions of elapsed time); rejects naming `what` after `timeoutMs`.
 */
function until(
  waiters: Set<() => void>,
  check: () => boolean,
  timeoutMs: number,
  what: string,
  everyMs?: number,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let tick: NodeJS.Timeout | undefined;
    const done = () => {
      waiters.delete(waiter);
      clearTimeout(deadline);
      clearInterval(tick);
    };
    const waiter = () => {
      if (!check()) return;
      done();
      resolve();
    };
    const deadline = setTimeout(() => {
      done();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
    }, timeoutMs);
    waiters.add(waiter);
    if (everyMs !== undefined) tick = setInterval(waiter, everyMs);
    waiter();
  });
}

/**
 * A condition of another process (the replica's state in pg_stat_replication), which sends no
 * event: asked again every 50 ms until it answers, failing after `timeoutMs`.
 */
async function pollFor<T>(ask: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await ask();
    if (v !== undefined) return v;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Writes the report as JSON (for the docs and CI artifacts). */
export async function saveReport(path: string, report: unknown): Promise<void> {
  await writeFile(path, `${JSON.stringify(report, null, 2)}\n`);
}

/** A registry of `kioskCount` kiosks (k1…) and the cloud bridge with fresh secrets, saved in `workDir`. */
export async function drillRegistry(site: string, kioskCount: number, workDir: string) {
  const secrets = new Map(
    Array.from({ length: kioskCount }, (_, i) => [`k${i + 1}`, randomBytes(18).toString("base64url")]),
  );
  const cloudSecret = randomBytes(18).toString("base64url");
  const registry = await siteRegistryFile(site, secrets, cloudSecret);
  const registryPath = join(workDir, "registry.json");
  await Registry.save(registryPath, registry);
  return { secrets, cloudSecret, registry, registryPath };
}
