/**
 * CPU per process over a phase, with Postgres followed backend by backend.
 * cpu.ts sums every process named `postgres` into one group, so a pooled
 * connection closed mid-phase (pg's pool drops clients idle for 10 s, which
 * a one-device drain leaves idle) takes its whole lifetime's ticks out of
 * the sum and the group goes negative. Here each backend alive at the start
 * is named by pid: one that exits is only missing its last ticks.
 */
import type { Queryable } from "@paylane/cloud";
import { type CpuSnapshot, cpuSeconds, cpuSnapshot } from "./cpu.ts";

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
