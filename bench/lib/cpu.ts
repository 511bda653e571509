/**
 * Where the machine's CPU went during a phase: user+system time of chosen
 * processes and of every Postgres backend, read from /proc (Linux only).
 */
import { readdirSync, readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import type { Queryable } from "@paylane/cloud";

const TICKS_PER_S = 100; // USER_HZ, 100 on every Linux this runs on

function ticksOf(pid: number): { comm: string; ticks: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // comm may contain spaces or parentheses: split after the last ')'
    const close = stat.lastIndexOf(")");
    const comm = stat.slice(stat.indexOf("(") + 1, close);
    const fields = stat.slice(close + 2).split(" ");
    // utime and stime are fields 14 and 15 of the full line, 11 and 12 after comm
    return { comm, ticks: Number(fields[11]) + Number(fields[12]) };
  } catch {
    return undefined;
  }
}

export type CpuSnapshot = Map<string, number>;

/** CPU ticks per group: the named pids, and `postgres` for all processes named so. */
export function cpuSnapshot(named: Record<string, number | undefined>): CpuSnapshot {
  const out: CpuSnapshot = new Map();
  const namedPids = new Map<number, string>();
  for (const [name, pid] of Object.entries(named)) if (pid !== undefined) namedPids.set(pid, name);
  let pids: number[] = [];
  try {
    pids = readdirSync("/proc")
      .filter((d) => /^\d+$/.test(d))
      .map(Number);
  } catch {
    return out;
  }
  for (const pid of pids) {
    const s = ticksOf(pid);
    if (!s) continue;
    const group = namedPids.get(pid) ?? (s.comm === "postgres" ? "postgres" : undefined);
    if (group) out.set(group, (out.get(group) ?? 0) + s.ticks);
  }
  return out;
}

/** Seconds of CPU per group between two snapshots (Postgres backends that exited in between are missed). */
export function cpuSeconds(before: CpuSnapshot, after: CpuSnapshot): Map<string, number> {
  const out = new Map<string, number>();
  for (const [group, ticks] of after) out.set(group, (ticks - (before.get(group) ?? 0)) / TICKS_PER_S);
  return out;
}

/**
 * CPU per process over a phase, with Postgres followed backend by backend:
 * summing every `postgres` process into one group goes negative when the
 * pool closes a connection mid-phase (its whole lifetime's ticks leave the
 * sum). Each backend alive at the start is named by pid, so one that exits
 * only misses its last ticks.
 */
const PG_PREFIX = "pg:";

/** Starts metering `named` processes and Postgres; the returned function ends the phase. */
export async function meterCpu(
  db: Queryable,
  named: Record<string, number | undefined>,
): Promise<() => Map<string, number>> {
  const { rows } = await db.query<{ pid: number }>("SELECT pid FROM pg_stat_activity");
  const pids: Record<string, number | undefined> = { ...named };
  for (const { pid } of rows) pids[`${PG_PREFIX}${pid}`] = pid;
  const before: CpuSnapshot = cpuSnapshot(pids);
  return () => {
    const out = new Map<string, number>();
    for (const [group, sec] of cpuSeconds(before, cpuSnapshot(pids))) {
      // Backends started during the phase are in `postgres` with all their ticks, which all fall in the phase.
      const key = group.startsWith(PG_PREFIX) ? "postgres" : group;
      out.set(key, (out.get(key) ?? 0) + sec);
    }
    return out;
  };
}

/** Whole-machine CPU ticks, busy and total, from /proc/stat (Linux only). */
function machineTicks(): { busy: number; total: number } | undefined {
  try {
    const fields = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
    const total = fields.reduce((a, b) => a + b, 0);
    return { busy: total - (fields[3] ?? 0) - (fields[4] ?? 0), total };
  } catch {
    return undefined;
  }
}

/** A phase's CPU, as `meterPhase` measures it. */
export interface PhaseCpu {
  /** CPU seconds per process group (see `meterCpu`). */
  cpu: Map<string, number>;
  /** This process's main thread event loop utilisation. */
  elu: number;
  /** This process's CPU, µs of user and system time. */
  self: NodeJS.CpuUsage;
  /** The whole machine's busy fraction, everyone's processes included (Linux only). */
  machine: number | undefined;
}

/** Starts measuring a phase's CPU: named processes and Postgres backends, this process, the machine. */
export async function meterPhase(db: Queryable, pids: Record<string, number | undefined>): Promise<() => PhaseCpu> {
  const cpu = await meterCpu(db, pids);
  const elu0 = performance.eventLoopUtilization();
  const self0 = process.cpuUsage();
  const machine0 = machineTicks();
  return () => {
    const machine1 = machineTicks();
    return {
      cpu: cpu(),
      elu: performance.eventLoopUtilization(elu0).utilization,
      self: process.cpuUsage(self0),
      machine: machine0 && machine1 ? (machine1.busy - machine0.busy) / (machine1.total - machine0.total) : undefined,
    };
  };
}
