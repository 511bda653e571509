/**
 * Backlog drain benchmark: how fast one kiosk empties a long partition's
 * journal once broker and cloud are back, against the bridge's ingest rate
 * measured in the same run. Target: drain/ingest >= 0.7.
 *
 *   npm run bench:drain        (also the last part of npm run bench)
 *
 * 1. Fill: a kiosk process appends BENCH_DRAIN_ENTRIES offline check-ins to a
 *    fresh journal with the real `Journal.append` (each its own
 *    synchronous=FULL commit, a few in flight), no daemon running.
 * 2. Ingest yardstick: the ingest benchmark's `Fleet` (simulated kiosks in
 *    their own process, QoS 1, batch 100, window 400) -> aedes `Gateway` (own
 *    process) -> `CloudService` (this process) on real Postgres -> ack. Two
 *    rounds (the first also warms up the cloud and Postgres); the faster one
 *    counts, so a cold yardstick never flatters the ratio.
 * 3. Drain: the real `KioskDaemon` (own process, PN532 simulator, config
 *    defaults: batchSize 100 and the uplink's built-in window) starts on the
 *    filled journal against the same gateway and cloud; timed from
 *    daemon.start() until the journal's backlog is 0 (the daemon's `acked`
 *    events). Progress each second; the daemon's own backlog log lines are
 *    passed through.
 * 4. Exactly-once: the device's inbox rows are exactly 1..N, applied, acked
 *    to N, and hold the journal's entry ids seq by seq (md5 over both).
 *
 * Where the drain's time goes is printed beside it: the window seen on the
 * wire, read->ack round trips, the kiosk's SQLite work per round (through
 * the daemon's `openJournal` hook), the cloud's commits, CPU per process.
 *
 * What-if (off by default): BENCH_DRAIN_WHATIF_WINDOW=2000 drains a second
 * kiosk's journal of the same size with the daemon's own `Uplink` given that
 * window (in batches of BENCH_DRAIN_WHATIF_BATCH, default 100), to show
 * what a configurable window would buy. Its journal is filled beside the
 * first one; it is checked for exactly-once the same way.
 *
 * Environment: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test),
 * BENCH_DRAIN_ENTRIES (100000), BENCH_DRAIN_FILL_IN_FLIGHT (8 appends at
 * once), BENCH_DRAIN_INGEST_EVENTS (200000 per round) over
 * BENCH_DRAIN_INGEST_DEVICES (20) simulated kiosks, BENCH_DRAIN_STALL_MS
 * (60000: no ack progress for this long fails the run). Everything lives in
 * its own schema `bench_<random>`, dropped at the end.
 */

import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { CloudService, type FlushOutcome, migrate, openPg, parseCloudEnv, seedSite } from "@paylane/cloud";
import { type DeviceConfigInput, parseDeviceConfig } from "@paylane/device";
import pino from "pino";
import { intEnv } from "../test/support/env.ts";
import { Child } from "./lib/child.ts";
import { dropBenchState } from "./lib/cleanup.ts";
import { meterCpu } from "./lib/cpu.ts";
import { type IngestBaseline, measureIngest } from "./lib/drain-ingest.ts";
import type { FillResult } from "./lib/drain-journal.ts";
import type { DrainKioskIn, DrainKioskOut, DrainResult } from "./lib/drain-kiosk-process.ts";
import type { GatewayIn, GatewayOut } from "./lib/gateway-process.ts";
import { benchSecrets, saveBenchRegistry } from "./lib/registry-file.ts";
import { fmtInt, fmtMs, percentile, progress, rate, runBench, table } from "./lib/stats.ts";
import { type StatementStats, TimedDatabase } from "./lib/timed-db.ts";

const TARGET_RATIO = 0.7;
/** The Fleet's shape is the ingest benchmark's default, which is also the device uplink's default. */
const FLEET_BATCH = 100;
const FLEET_WINDOW = 400;
const INGEST_ROUNDS = 2;
/** The daemon under test, and the what-if's kiosk. */
const KIOSK = "k1";
const WHATIF_KIOSK = "k2";

const cfg = {
  url: process.env.DATABASE_URL || "postgres://postgres@127.0.0.1:5432/test",
  entries: intEnv("BENCH_DRAIN_ENTRIES", 100_000),
  fillInFlight: intEnv("BENCH_DRAIN_FILL_IN_FLIGHT", 8),
  ingestEvents: intEnv("BENCH_DRAIN_INGEST_EVENTS", 200_000),
  ingestDevices: intEnv("BENCH_DRAIN_INGEST_DEVICES", 20),
  stallMs: intEnv("BENCH_DRAIN_STALL_MS", 60_000, 1000),
  whatIfWindow: intEnv("BENCH_DRAIN_WHATIF_WINDOW", 0, 0),
  whatIfBatch: intEnv("BENCH_DRAIN_WHATIF_BATCH", 100),
};
if (cfg.whatIfBatch > 1000) throw new Error("BENCH_DRAIN_WHATIF_BATCH: an events message carries at most 1000 entries");
const perDevice = Math.ceil(cfg.ingestEvents / cfg.ingestDevices);
/** Each yardstick device's last seq after all rounds. */
const fleetLastSeq = perDevice * INGEST_ROUNDS;

const quiet = pino({ level: "silent" });
const site = `b${randomBytes(4).toString("hex")}`;
const schema = `bench_${randomBytes(6).toString("hex")}`;
const cloudSecret = randomBytes(18).toString("base64url");
const kioskSecrets = new Map<string, string>([[KIOSK, randomBytes(18).toString("base64url")]]);
if (cfg.whatIfWindow > 0) kioskSecrets.set(WHATIF_KIOSK, randomBytes(18).toString("base64url"));
const fleetSecrets = benchSecrets("d", cfg.ingestDevices);

type Kiosk = Child<DrainKioskIn, DrainKioskOut>;

/** The cloud's commits, counted per phase. */
class Commits {
  count = 0;
  applied = 0;
  duplicates = 0;
  reset(): void {
    this.count = this.applied = this.duplicates = 0;
  }
  readonly onCommitted = (o: FlushOutcome): void => {
    this.count++;
    this.applied += o.applied;
    this.duplicates += o.duplicates;
  };
}

/** The cloud's side of one phase. */
interface Phase {
  commits: number;
  applied: number;
  duplicates: number;
  statement: StatementStats | undefined;
}

function endPhase(db: TimedDatabase, commits: Commits): Phase {
  db.recording = false;
  const phase = {
    commits: commits.count,
    applied: commits.applied,
    duplicates: commits.duplicates,
    statement: db.statements.find((s) => s.label.startsWith("ingest statement")),
  };
  db.reset();
  commits.reset();
  return phase;
}

interface IngestRound {
  ingest: IngestBaseline;
  phase: Phase;
}

interface Drain {
  label: string;
  device: string;
  d: DrainResult;
  phase: Phase;
  cpu: Map<string, number>;
}

/** What must be stopped at the end, filled in as soon as each part exists. */
interface Running {
  cloud?: CloudService;
  gateway?: Child<GatewayIn, GatewayOut>;
  kiosks: Map<string, Kiosk>;
}

/** Fills `device`'s journal in its own kiosk process; resolves once every entry is durable. */
async function fill(kiosk: Kiosk, device: string, dataDir: string): Promise<FillResult> {
  await mkdir(dataDir, { recursive: true });
  const off = kiosk.on((m) => {
    if (m.type === "filling")
      progress(`fill ${device}: ${fmtInt(m.appended)}/${fmtInt(cfg.entries)} entries journaled`);
  });
  kiosk.send({ type: "fill", dataDir, entries: cfg.entries, inFlight: cfg.fillInFlight });
  const { result } = await kiosk.next("filled").finally(off);
  progress(
    `fill ${device}: ${fmtInt(result.lastSeq)} entries in ${(result.ms / 1000).toFixed(1)} s ` +
      `(${fmtInt(rate(result.lastSeq, result.ms))}/s, one synchronous=FULL commit each, ${cfg.fillInFlight} in flight)`,
  );
  return result;
}

/** The kiosk's `drained` report; fails when the ack stops advancing for `cfg.stallMs`. */
async function drained(kiosk: Kiosk): Promise<DrainResult> {
  let lastAcked = -1;
  let lastAdvance = performance.now();
  const offTick = kiosk.on((m) => {
    if (m.type === "tick" && m.ackedUpTo !== lastAcked) {
      lastAcked = m.ackedUpTo;
      lastAdvance = performance.now();
    }
  });
  let timer: NodeJS.Timeout | undefined;
  const stalled = new Promise<never>((_, reject) => {
    timer = setInterval(() => {
      if (performance.now() - lastAdvance > cfg.stallMs)
        reject(new Error(`drain: no ack progress for ${cfg.stallMs} ms (acked ${fmtInt(lastAcked)})`));
    }, 1000);
  });
  try {
    return (await Promise.race([kiosk.next("drained"), stalled])).result;
  } finally {
    clearInterval(timer);
    offTick();
  }
}

/** Starts a drain with `start`, prints its progress, and collects the kiosk's, the cloud's and the CPU's view of it. */
async function runDrain(
  label: string,
  device: string,
  kiosk: Kiosk,
  start: DrainKioskIn,
  ctx: { db: TimedDatabase; commits: Commits; pids: Record<string, number | undefined> },
): Promise<Drain> {
  // Statistics as autovacuum would have them, knowing the rows already in.
  await ctx.db.exec("ANALYZE inbox, device_streams, devices, sites");
  progress(`${label}: ${fmtInt(cfg.entries)} unacked entries -> aedes -> cloud -> Postgres -> ack`);
  let t0 = performance.now();
  let prev = 0;
  const off = kiosk.on((m) => {
    if (m.type === "started") {
      progress(`${label}: started in ${fmtMs(m.ms)}`);
    } else if (m.type === "tick") {
      const s = (performance.now() - t0) / 1000;
      progress(
        `${label} ${s.toFixed(0)}s: acked ${fmtInt(m.ackedUpTo)}/${fmtInt(cfg.entries)} ` +
          `(${fmtInt(m.ackedUpTo - prev)}/s), backlog ${fmtInt(m.backlog)}`,
      );
      prev = m.ackedUpTo;
    } else if (m.type === "log") {
      progress(`${device} log: ${m.line}`);
    }
  });
  const cpu = await meterCpu(ctx.db, { ...ctx.pids, kiosk: kiosk.pid });
  ctx.db.recording = true;
  t0 = performance.now();
  kiosk.send(start);
  const d = await drained(kiosk).finally(off);
  return { label, device, d, cpu: cpu(), phase: endPhase(ctx.db, ctx.commits) };
}

/** Exactly-once for a drained kiosk: its inbox rows are the journal's entries 1..n, once each. */
async function verifyDrain(db: TimedDatabase, { device, d, phase }: Drain): Promise<string[]> {
  const problems: string[] = [];
  const n = cfg.entries;
  const one = async (sql: string) => Number((await db.query<{ n: number }>(sql, [site, device])).rows[0]?.n ?? 0);
  const inbox = (
    await db.query<{ n: number; lo: number; hi: number; ids: number; applied: number; md5: string | null }>(
      `SELECT count(*)::int AS n, min(seq)::int AS lo, max(seq)::int AS hi, count(DISTINCT entry_id)::int AS ids,
              count(*) FILTER (WHERE outcome = 'applied')::int AS applied,
              md5(string_agg(entry_id, E'\\n' ORDER BY seq)) AS md5
       FROM inbox WHERE site_id = $1 AND device_id = $2`,
      [site, device],
    )
  ).rows[0];
  // (site, device, seq) is the inbox's key: n rows with min 1 and max n are exactly 1..n, each once.
  if (!inbox || inbox.n !== n || inbox.lo !== 1 || inbox.hi !== n)
    problems.push(`inbox holds ${inbox?.n} rows of ${device}, seq ${inbox?.lo}..${inbox?.hi}; expected 1..${n}`);
  if (inbox && inbox.ids !== inbox.n) problems.push(`inbox: ${inbox.n - inbox.ids} entry ids of ${device} repeat`);
  if (inbox && inbox.applied !== n) problems.push(`inbox: ${inbox.applied} of ${device}'s rows applied, expected ${n}`);
  if (d.digest.count !== n) problems.push(`${device}'s journal holds ${d.digest.count} entries, expected ${n}`);
  else if (inbox?.md5 !== d.digest.md5) problems.push(`inbox entry ids of ${device} differ from its journal's`);
  const acked = await one("SELECT acked_seq::int AS n FROM device_streams WHERE site_id = $1 AND device_id = $2");
  if (acked !== n) problems.push(`the cloud's high-water mark for ${device} is ${acked}, expected ${n}`);
  const checkins = await one("SELECT count(*)::int AS n FROM checkins WHERE site_id = $1 AND device_id = $2");
  if (checkins !== n) problems.push(`checkins holds ${checkins} rows of ${device}, expected ${n}`);
  const quarantined = await one("SELECT count(*)::int AS n FROM quarantine WHERE site_id = $1 AND device_id = $2");
  if (quarantined !== 0) problems.push(`quarantine holds ${quarantined} rows of ${device}, expected 0`);
  if (d.backlogAfter !== 0 || d.lastSeq !== n)
    problems.push(`${device}'s journal ends at seq ${d.lastSeq} with backlog ${d.backlogAfter}, expected ${n} and 0`);
  if (phase.applied !== n) problems.push(`the cloud applied ${phase.applied} entries during ${device}'s drain`);
  return problems;
}

/** The yardstick's devices all got everything in. */
async function verifyFleet(db: TimedDatabase): Promise<string[]> {
  const { rows } = await db.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM device_streams WHERE site_id = $1 AND device_id = ANY($2) AND acked_seq = $3",
    [site, [...fleetSecrets.keys()], fleetLastSeq],
  );
  const done = rows[0]?.n ?? 0;
  return done === cfg.ingestDevices
    ? []
    : [`${done} of ${cfg.ingestDevices} yardstick devices are acked to ${fleetLastSeq}`];
}

/** Where one drain's time went, one line per part of the path. */
function breakdown({ label, d, phase, cpu }: Drain, ingest: IngestRound): string[] {
  const n = cfg.entries;
  const wall = d.drainedMs;
  const steps = d.ackSteps.length;
  const rtt = percentile(d.roundTrips, 50);
  const avg = (x: { count: number; ms: number }) => x.ms / Math.max(1, x.count);
  const commitLine = (name: string, p: Phase, entries: number, ms: number) => {
    const s = p.statement;
    const per = entries / Math.max(1, p.commits);
    const stmtAvg = s ? avg(s) : Number.NaN;
    return (
      `  cloud, ${name}: ${fmtInt(p.commits)} commits, ${fmtInt(per)} entries/commit, ingest statement avg ` +
      `${fmtMs(stmtAvg)} (${((1000 * stmtAvg) / per).toFixed(1)} µs/entry), busy ${s ? ((100 * s.ms) / ms).toFixed(0) : "-"}% ` +
      "of wall (sum over connections)"
    );
  };
  const cpuLine = (c: Map<string, number>, entries: number, ms: number) =>
    [...c]
      .sort((x, y) => y[1] - x[1])
      .map(
        ([group, sec]) => `${group} ${((1e5 * sec) / ms).toFixed(0)}% (${((sec * 1e6) / entries).toFixed(1)} µs/entry)`,
      )
      .join(", ");
  const resends = Object.entries(d.resends);
  const lines = [
    `${label}, where the time went:`,
    `  timeline: start ${fmtMs(d.startMs)} (journal open and integrity_check over ${fmtInt(n)} entries, broker connect), ` +
      `first publish ${fmtMs(d.firstPublishMs)}, first ack ${fmtMs(d.firstAckMs)}, backlog 0 at ${fmtMs(wall)}; ` +
      `first->last ack ${fmtInt(rate(n - (d.ackSteps[0] ?? 0), wall - d.firstAckMs))}/s`,
    `  wire: at most ${fmtInt(d.maxInFlight)} entries unacked; ${fmtInt(steps)} acks of ${fmtInt(n / Math.max(1, steps))} ` +
      `entries on average, one every ${fmtMs(percentile(d.ackGaps, 50))} (p50), ${fmtMs(percentile(d.ackGaps, 99))} (p99); ` +
      `read->ack round trip p50 ${fmtMs(rtt)}, p99 ${fmtMs(percentile(d.roundTrips, 99))}; ` +
      `unacked/round trip = ${fmtInt(rate(d.maxInFlight, rtt))}/s`,
    `  kiosk SQLite (one connection): ${fmtInt(d.reads.count)} entriesAfter, avg ${fmtMs(avg(d.reads))}; ` +
      `${fmtInt(d.markAcked.count)} markAcked (a synchronous=FULL commit each), avg ${fmtMs(avg(d.markAcked))}; ` +
      `together ${((100 * (d.reads.ms + d.markAcked.ms)) / wall).toFixed(0)}% of wall`,
    commitLine("this drain", phase, n, wall),
    commitLine("ingest yardstick", ingest.phase, ingest.ingest.events, ingest.ingest.elapsedMs),
  ];
  if (cpu.size > 0) lines.push(`  CPU, % of one core: ${cpuLine(cpu, n, wall)}`);
  if (ingest.ingest.cpu.size > 0)
    lines.push(
      `    ingest yardstick: ${cpuLine(ingest.ingest.cpu, ingest.ingest.events, ingest.ingest.elapsedMs)} (${cpus().length} cores)`,
    );
  lines.push(
    `  resends: ${resends.length === 0 ? "none" : resends.map(([reason, k]) => `${k} (${reason})`).join(", ")}; ` +
      `entries read for publishing ${fmtInt(d.entriesRead)}; duplicates absorbed by the cloud ${fmtInt(phase.duplicates)}; ` +
      `kiosk warnings ${d.problems.length}`,
  );
  for (const p of d.problems.slice(0, 5)) lines.push(`    - ${p}`);
  return lines;
}

function report(
  header: string,
  loadAtStart: number,
  rounds: IngestRound[],
  drains: Drain[],
  problems: string[],
): string {
  const n = cfg.entries;
  const best = rounds.reduce((a, b) => (b.ingest.elapsedMs < a.ingest.elapsedMs ? b : a));
  const ingestRate = rate(best.ingest.events, best.ingest.elapsedMs);
  const row = (label: string, count: number, ms: number) => [
    label,
    fmtInt(count),
    `${(ms / 1000).toFixed(2)} s`,
    fmtInt(rate(count, ms)),
    (rate(count, ms) / ingestRate).toFixed(2),
  ];
  const out: string[] = ["", header, ""];
  out.push(
    table(
      ["phase", "entries", "time", "entries/s", "/ingest"],
      [
        ...rounds.map((r, i) =>
          row(
            `ingest round ${i + 1}: ${cfg.ingestDevices} simulated kiosks->aedes->cloud->pg->ack${r === best ? " *" : ""}`,
            r.ingest.events,
            r.ingest.elapsedMs,
          ),
        ),
        // The drain proper starts when the kiosk is connected (a partition heals); daemon start
        // (journal open, integrity_check over the whole journal, broker connect) is shown beside it.
        ...drains.flatMap((x) => [
          row(`${x.label}, from connected`, n, x.d.drainedMs - x.d.startMs),
          row(`${x.label}, incl. daemon start`, n, x.d.drainedMs),
        ]),
      ],
    ),
  );
  out.push("");
  const ratio = rate(n, drains[0]!.d.drainedMs - drains[0]!.d.startMs) / ingestRate;
  out.push(
    `ratio drain (from connected)/ingest = ${ratio.toFixed(2)} (ingest = the faster round, *; ` +
      `target >= ${TARGET_RATIO.toFixed(1)}: ${ratio >= TARGET_RATIO ? "met" : "NOT met"})`,
  );
  for (const x of drains) out.push("", ...breakdown(x, best));
  out.push(
    "",
    `ingest yardstick: publish->ack per batch p50 ${fmtMs(percentile(best.ingest.latencies, 50))}, ` +
      `p99 ${fmtMs(percentile(best.ingest.latencies, 99))}, ${best.ingest.resends} resends`,
    // Both figures share the machine: other work running meanwhile skews the ratio either way.
    `machine load (1-min average): ${loadAtStart.toFixed(1)} at the start, ${loadavg()[0]!.toFixed(1)} at the end, ${cpus().length} cores`,
  );
  out.push("");
  if (problems.length === 0) {
    const devices = drains.map((x) => x.device).join(" and ");
    out.push(
      `exactly-once: OK (${devices}: inbox seq 1..${fmtInt(n)} once each, applied, entry ids equal the journal's ` +
        `seq by seq, acked to ${fmtInt(n)}, journal backlog 0; yardstick: ${cfg.ingestDevices} devices acked to ${fmtInt(fleetLastSeq)})`,
    );
  } else {
    out.push("exactly-once: FAILED");
    for (const p of problems) out.push(`  - ${p}`);
  }
  return out.join("\n");
}

async function main(): Promise<number> {
  const loadAtStart = loadavg()[0]!;
  const dir = await mkdtemp(join(tmpdir(), "paylane-drain-"));
  const registryPath = join(dir, "registry.json");
  let db: TimedDatabase | undefined;
  const running: Running = { kiosks: new Map() };
  try {
    const file = await saveBenchRegistry(registryPath, site, [...fleetSecrets, ...kioskSecrets], cloudSecret);

    const pg = new TimedDatabase(await openPg({ url: cfg.url, schema }));
    db = pg;
    await migrate(db);
    await seedSite(db, { id: site, name: "Bench venue", timezone: "UTC" }, []);
    const pgVersion =
      (await db.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]?.v ?? "?";
    const kioskConfig: DeviceConfigInput = {
      site,
      device: KIOSK,
      secret: kioskSecrets.get(KIOSK)!,
      mqttUrl: "mqtt://127.0.0.1:1", // replaced once the gateway listens
      cloudUrl: "http://127.0.0.1:9", // replaced once the cloud listens
      dataDir: join(dir, KIOSK),
      http: { host: "127.0.0.1", port: 0 },
      reader: { type: "pn532-simulator" },
    };
    const { batchSize } = parseDeviceConfig(kioskConfig);
    const header =
      `PayLane backlog drain benchmark: ${fmtInt(cfg.entries)} journaled check-ins on one kiosk (KioskDaemon, ` +
      `batchSize ${batchSize}, the uplink's default window); ingest yardstick ${INGEST_ROUNDS} x ` +
      `${fmtInt(perDevice * cfg.ingestDevices)} events from ${cfg.ingestDevices} simulated kiosks ` +
      `(batch ${FLEET_BATCH}, window ${FLEET_WINDOW}); Postgres ${pgVersion}, ${cpus().length} cores`;
    process.stderr.write(`${header}; schema ${schema}, site ${site}\n`);

    // 1. The partition's backlog, journaled while no daemon runs (both journals at once for the what-if).
    for (const device of kioskSecrets.keys())
      running.kiosks.set(device, new Child(device, new URL("./lib/drain-kiosk-process.ts", import.meta.url)));
    const fills = await Promise.all([...running.kiosks].map(([device, k]) => fill(k, device, join(dir, device))));
    const lastSeq = fills[0]!.lastSeq;

    // 2. Broker and cloud up; the yardstick.
    const gateway = new Child<GatewayIn, GatewayOut>("gateway", new URL("./lib/gateway-process.ts", import.meta.url));
    running.gateway = gateway;
    gateway.send({ type: "start", registry: file });
    const { port } = await gateway.next("listening");
    const mqttUrl = `mqtt://127.0.0.1:${port}`;
    const commits = new Commits();
    const cloud = new CloudService({
      config: parseCloudEnv({
        CLOUD_PORT: "0",
        MQTT_URL: mqttUrl,
        CLOUD_MQTT_SECRET: cloudSecret,
        REGISTRY_PATH: registryPath,
        CLOUD_INSTANCE: `bench-${site}`,
      }),
      logger: quiet,
      db,
      site,
      onCommitted: commits.onCommitted,
    });
    running.cloud = cloud;
    await cloud.start();
    const pids = { cloud: process.pid, gateway: gateway.pid };

    const rounds: IngestRound[] = [];
    for (let round = 1; round <= INGEST_ROUNDS; round++) {
      // Statistics as autovacuum would have them, as in the ingest benchmark.
      await db.exec("ANALYZE inbox, device_streams, devices, sites");
      progress(
        `ingest round ${round}: ${cfg.ingestDevices} simulated kiosks (own process) -> aedes :${port} (own process) -> cloud -> Postgres`,
      );
      db.recording = true;
      const ingest = await measureIngest({
        url: mqttUrl,
        site,
        secrets: fleetSecrets,
        eventsPerDevice: perDevice,
        history: (round - 1) * perDevice,
        batchSize: FLEET_BATCH,
        window: FLEET_WINDOW,
        ackTimeoutMs: 10_000,
        meter: (fleet) => meterCpu(pg, { ...pids, ...fleet }),
      });
      rounds.push({ ingest, phase: endPhase(db, commits) });
      progress(
        `ingest round ${round}: ${fmtInt(ingest.events)} events, ${fmtInt(rate(ingest.events, ingest.elapsedMs))}/s`,
      );
    }

    // 3. The drain, then (optionally) the what-if; each kiosk process is stopped once drained.
    const ctx = { db, commits, pids };
    const drains: Drain[] = [];
    const k1 = running.kiosks.get(KIOSK)!;
    drains.push(
      await runDrain(
        "drain: 1 KioskDaemon journal->aedes->cloud->pg->ack",
        KIOSK,
        k1,
        { type: "drain", config: { ...kioskConfig, mqttUrl, cloudUrl: cloud.url }, lastSeq },
        ctx,
      ),
    );
    await k1.stop({ type: "stop" });
    running.kiosks.delete(KIOSK);
    const k2 = running.kiosks.get(WHATIF_KIOSK);
    if (k2) {
      const inflight = Math.ceil(cfg.whatIfWindow / cfg.whatIfBatch);
      const label = `what-if: Uplink alone, window ${fmtInt(cfg.whatIfWindow)} (${inflight} x ${cfg.whatIfBatch})`;
      const options = {
        site,
        device: WHATIF_KIOSK,
        secret: kioskSecrets.get(WHATIF_KIOSK)!,
        mqttUrl,
        dataDir: join(dir, WHATIF_KIOSK),
        batchSize: cfg.whatIfBatch,
        window: cfg.whatIfWindow,
        maxInflightBatches: inflight,
      };
      drains.push(await runDrain(label, WHATIF_KIOSK, k2, { type: "drain-uplink", options, lastSeq }, ctx));
      await k2.stop({ type: "stop" });
      running.kiosks.delete(WHATIF_KIOSK);
    }

    // 4. Exactly-once, then the report.
    const problems = await verifyFleet(db);
    for (const x of drains) problems.push(...(await verifyDrain(db, x)));
    process.stdout.write(`${report(header, loadAtStart, rounds, drains, problems)}\n`);
    return problems.length === 0 ? 0 : 1;
  } finally {
    for (const k of running.kiosks.values()) await k.stop({ type: "stop" }).catch(() => {});
    await running.cloud?.stop().catch(() => {});
    await running.gateway?.stop({ type: "stop" }).catch(() => {});
    await dropBenchState(db, schema, dir);
  }
}

runBench(main);
