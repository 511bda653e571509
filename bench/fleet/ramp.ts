/**
 * The fleet benchmark's ramp, shared by bench/fleet.bench.ts (one gateway,
 * one cloud node) and bench/fleet-scale.bench.ts (one of each against two of
 * each): each step connects kiosks up to N and measures one check-in period.
 */
import { loadavg } from "node:os";
import { cpuSeconds, cpuSnapshot } from "../lib/cpu.ts";
import { fmtInt, fmtMs, percentile, progress, table } from "../lib/stats.ts";
import { type Collected, type FleetSite, meter } from "./harness.ts";

export const P99_LIMIT_MS = 1000;

export interface RampConfig {
  /** The measuring window, one check-in period, seconds. */
  windowS: number;
  telemetryS: number;
}

export interface StepResult {
  n: number;
  connectS: number;
  failedConnects: number;
  stats: Collected;
  unacked: number;
  use: Record<string, { cpuPercent: number; rssMb: number }>;
  postgresCpu: number;
  /** The machine's 1-minute load average at the window's end (other work on the box shows here). */
  load: number;
  held: boolean;
  why: string;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const pct = (n: number) => (Number.isFinite(n) ? `${n.toFixed(0)}%` : "-");
export const mb = (n: number) => (Number.isFinite(n) ? `${n.toFixed(0)} MB` : "-");

export async function step(site: FleetSite, n: number, cfg: RampConfig): Promise<StepResult> {
  const t0 = performance.now();
  const { failed } = await site.connectUpTo(n);
  const connectS = (performance.now() - t0) / 1000;
  progress(`${fmtInt(n)} kiosks connected (${connectS.toFixed(1)} s for the new ones); measuring ${cfg.windowS} s`);
  await site.collect();
  site.mark(); // the window starts now: only check-ins published from here are timed
  const pids: Record<string, number> = { ...site.pids };
  site.workerPids.forEach((pid, i) => {
    pids[`kiosks${i}`] = pid;
  });
  const end = meter(pids);
  const pg0 = cpuSnapshot({});
  await sleep(cfg.windowS * 1000);
  const use = end();
  const pgSeconds = cpuSeconds(pg0, cpuSnapshot({})).get("postgres") ?? 0;
  const stats = await site.collect();
  // Check-ins of the window still waiting: a few seconds' grace, then each counts as failed.
  await sleep(3000);
  const late = await site.collect();
  stats.latencies = [...stats.latencies, ...late.latencies].sort((a, b) => a - b);
  stats.checkins += late.checkins;
  const unacked = late.pendingOver1s;
  // Summed per kind: with several gateways or cloud nodes, the cluster's total.
  const sum = (kind: string) => {
    const of = Object.entries(use).filter(([k]) => k.startsWith(kind));
    return {
      cpuPercent: of.reduce((s, [, u]) => s + u.cpuPercent, 0),
      rssMb: of.reduce((s, [, u]) => s + u.rssMb, 0),
    };
  };
  const merged = { gateway: sum("gateway"), cloud: sum("cloud"), kiosks: sum("kiosks") };
  const p99 = percentile(stats.latencies, 99);
  const why =
    failed.length > 0
      ? `${failed.length} kiosks could not connect`
      : unacked > 0
        ? `${unacked} check-ins unacked`
        : !(p99 < P99_LIMIT_MS)
          ? `ack p99 ${fmtMs(p99)}`
          : "";
  return {
    n,
    connectS,
    failedConnects: failed.length,
    stats,
    unacked,
    use: merged,
    // Summed over every postgres process: a backend that exited in the window makes it meaningless (negative).
    postgresCpu: pgSeconds >= 0 ? (pgSeconds / cfg.windowS) * 100 : Number.NaN,
    load: loadavg()[0]!,
    held: why === "",
    why,
  };
}

export function printSteps(results: StepResult[], cfg: RampConfig): void {
  const rows = results.map((r) => {
    const l = r.stats.latencies;
    return [
      fmtInt(r.n),
      `${r.connectS.toFixed(1)} s`,
      `${fmtInt(l.length)}/${fmtInt(r.stats.checkins)}`,
      fmtMs(percentile(l, 50)),
      fmtMs(percentile(l, 95)),
      fmtMs(percentile(l, 99)),
      fmtMs(l[l.length - 1] ?? Number.NaN),
      `${(r.stats.telemetry / cfg.windowS).toFixed(0)}/s`,
      pct(r.use.gateway!.cpuPercent),
      mb(r.use.gateway!.rssMb),
      pct(r.use.cloud!.cpuPercent),
      mb(r.use.cloud!.rssMb),
      pct(r.postgresCpu),
      pct(r.use.kiosks!.cpuPercent),
      r.load.toFixed(1),
      r.held ? "held" : `NO: ${r.why}`,
    ];
  });
  process.stdout.write(
    `${table(
      [
        "kiosks",
        "connect",
        "acked/sent",
        "ack p50",
        "p95",
        "p99",
        "max",
        "telemetry",
        "gw CPU",
        "gw RSS",
        "cloud CPU",
        "cloud RSS",
        "pg CPU",
        "kiosks CPU",
        "load avg",
        "",
      ],
      rows,
    )}\n`,
  );
}

/** Steps until the first one not held; each result is logged as it comes. */
export async function ramp(site: FleetSite, steps: number[], cfg: RampConfig): Promise<StepResult[]> {
  const results: StepResult[] = [];
  for (const n of steps) {
    const r = await step(site, n, cfg);
    results.push(r);
    progress(
      `${fmtInt(n)}: p99 ${fmtMs(percentile(r.stats.latencies, 99))}, gateway ${pct(r.use.gateway!.cpuPercent)}, ` +
        `cloud ${pct(r.use.cloud!.cpuPercent)}, postgres ${pct(r.postgresCpu)}${r.held ? "" : ` — not held: ${r.why}`}`,
    );
    if (!r.held) break;
  }
  return results;
}

/** The largest step held with ack p99 under the limit (0: none). */
export function largestHeld(results: StepResult[]): number {
  return results.filter((r) => r.held).at(-1)?.n ?? 0;
}

/** A `BENCH_…_STEPS` list of kiosk counts. */
export function parseSteps(name: string, fallback: string): number[] {
  return (process.env[name] || fallback).split(",").map((s) => {
    const n = Number(s.trim());
    if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${name}: ${JSON.stringify(s)} is not a count`);
    return n;
  });
}
