/**
 * Fleet scale-out benchmark: the same ramp as bench/fleet.bench.ts, once on
 * one gateway + one cloud node and once on two gateways sharing Redis + two
 * cloud nodes splitting the ingest on `$share/bridge/…`, in the same run.
 * Printed: the largest fleet each holds with ack p99 < 1 s and the scaling
 * factor (two of each ÷ one of each; the target is ≥ 1.6× where the
 * machine's cores allow it — every process here, kiosks and Postgres
 * included, shares the machine's cores, which the report states).
 *
 *   npm run bench:fleet-scale
 *
 * Environment: BENCH_SCALE_STEPS (1000,2000,3000,4000,5000,6000,7000,8000),
 * BENCH_FLEET_WINDOW_S (60), BENCH_FLEET_TELEMETRY_S (10), BENCH_FLEET_WORKERS
 * (3), DATABASE_URL, REDIS_URL (as the fleet bench).
 */
import { cpus, loadavg } from "node:os";
import { intEnv } from "../test/support/env.ts";
import { FleetSite } from "./fleet/harness.ts";
import { largestHeld, parseSteps, printSteps, ramp, type StepResult } from "./fleet/ramp.ts";
import { fmtInt, progress, runBench } from "./lib/stats.ts";

const TARGET_FACTOR = 1.6;
const steps = parseSteps("BENCH_SCALE_STEPS", "1000,2000,3000,4000,5000,6000,7000,8000");
const cfg = {
  workers: intEnv("BENCH_FLEET_WORKERS", 3),
  windowS: intEnv("BENCH_FLEET_WINDOW_S", 60),
  telemetryS: intEnv("BENCH_FLEET_TELEMETRY_S", 10),
};

async function measure(nodes: number): Promise<StepResult[]> {
  progress(`${nodes} gateway(s) + ${nodes} cloud node(s): ramp ${steps.join(", ")}`);
  const site = new FleetSite({
    maxKiosks: Math.max(...steps),
    workers: cfg.workers,
    gateways: nodes,
    bridges: nodes,
    databaseUrl: process.env.DATABASE_URL || undefined,
    redisUrl: process.env.REDIS_URL || undefined,
    log: progress,
  });
  try {
    await site.start();
    site.load(cfg.telemetryS * 1000, cfg.windowS * 1000);
    return await ramp(site, steps, cfg);
  } finally {
    await site.close();
  }
}

async function main(): Promise<number> {
  process.stderr.write(
    `PayLane fleet scale-out benchmark: steps ${steps.join(", ")}; window ${cfg.windowS} s; ` +
      `${cpus().length} cores shared by every process (gateways, cloud nodes, Postgres, Redis, kiosks); ` +
      `load average ${loadavg()[0]!.toFixed(1)} at the start\n`,
  );
  const one = await measure(1);
  const two = await measure(2);
  for (const [title, results] of [
    ["One gateway + one cloud node", one],
    ["Two gateways (Redis) + two cloud nodes ($share/bridge)", two],
  ] as const) {
    process.stdout.write(`\n${title} (CPU summed over the instances, % of one core)\n`);
    printSteps(results, cfg);
  }
  const [heldOne, heldTwo] = [largestHeld(one), largestHeld(two)];
  const factor = heldOne > 0 ? heldTwo / heldOne : Number.NaN;
  const ceiling = (r: StepResult[]) =>
    r.at(-1)?.held ? `the ramp's last step, not a limit` : `next step ${fmtInt(r.at(-1)!.n)}: ${r.at(-1)!.why}`;
  process.stdout.write(
    `\nLargest fleet held with ack p99 < 1 s: one of each ${fmtInt(heldOne)} (${ceiling(one)}), ` +
      `two of each ${fmtInt(heldTwo)} (${ceiling(two)})\n` +
      `Scaling factor: ${Number.isFinite(factor) ? factor.toFixed(2) : "-"}x (target ${TARGET_FACTOR}x where the cores allow; ` +
      `this machine has ${cpus().length})` +
      // Both held the whole ramp: the factor is a floor, not a measurement of the limit.
      `${one.at(-1)?.held && two.at(-1)?.held ? "; both held every step, so this is no limit: raise BENCH_SCALE_STEPS" : ""}\n`,
  );
  return heldOne > 0 && heldTwo > 0 ? 0 : 1;
}

runBench(main);
