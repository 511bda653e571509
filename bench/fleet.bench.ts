/**
 * Fleet benchmark: how many kiosks one gateway and one cloud node hold with
 * the ack p99 under 1 s, and how fast a whole fleet is back after a gateway
 * restart.
 *
 *   npm run bench:fleet
 *
 * One gateway (gateway/src/main.ts, aedes) and one cloud node
 * (cloud/src/main.ts) each in its own process, on real Postgres (a schema of
 * its own) and Redis (a prefix of its own). Simulated kiosks in a few worker
 * processes (bench/fleet/kiosk-worker.ts), each a bare mqtt.js client with
 * its own registry credentials from its own loopback address: a retained
 * birth with a session counter (and a Will carrying it), telemetry every
 * 10 s, one check-in per minute (an `events` batch of one valid entry), the
 * ack latency timed from publish to the `ack` covering its seq.
 *
 * Ramp: each step connects kiosks up to N (the ones of earlier steps stay
 * connected and keep sending), then measures for a window of one check-in
 * period: ack p50/p95/p99/max, and the CPU (% of one core, from
 * /proc/<pid>/stat) and RSS (/proc/<pid>/status) of the gateway, the cloud,
 * the kiosk workers and Postgres. The ramp stops at the first step with
 * p99 >= 1 s, a check-in unacked, or a kiosk that could not connect; the
 * largest N held is printed with its ratio to the 5,000 target and to
 * ThingsBoard Edge's documented ~1,000 devices per node.
 *
 * Storm: with the whole fleet connected (load paused), the gateway process
 * is stopped and started again on the same port; printed are the time until
 * every kiosk is connected again, until the cloud's presence says online
 * (from a birth after the restart) for each, and whether every retained
 * status on the new broker is online with the kiosk's current session.
 *
 * Environment: DATABASE_URL (postgres://postgres@127.0.0.1:5432/test),
 * REDIS_URL (redis://127.0.0.1:6379), BENCH_FLEET_STEPS
 * (500,1000,2000,3000,5000,7500), BENCH_FLEET_WORKERS (3),
 * BENCH_FLEET_WINDOW_S (60, the check-in period), BENCH_FLEET_TELEMETRY_S
 * (10), BENCH_FLEET_STORM (1; 0 skips it), BENCH_FLEET_STORM_TIMEOUT_S (900).
 * The registry (scrypt-hashed secrets of the largest step) is made once and
 * cached in $TMPDIR/paylane-fleet-bench/.
 */
import { cpus, loadavg } from "node:os";
import { intEnv } from "../test/support/env.ts";
import { cpuTicks, FleetSite, meter, type StormResult } from "./fleet/harness.ts";
import { largestHeld, mb, parseSteps, pct, printSteps, ramp, type StepResult, sleep } from "./fleet/ramp.ts";
import { procMemory } from "./lib/proc-memory.ts";
import { fmtInt, progress, runBench } from "./lib/stats.ts";

const TARGET = 5000;
const BASELINE = 1000; // ThingsBoard Edge: about 1,000 devices per node

const steps = parseSteps("BENCH_FLEET_STEPS", "500,1000,2000,3000,5000,7500");
const cfg = {
  workers: intEnv("BENCH_FLEET_WORKERS", 3),
  windowS: intEnv("BENCH_FLEET_WINDOW_S", 60),
  telemetryS: intEnv("BENCH_FLEET_TELEMETRY_S", 10),
  storm: intEnv("BENCH_FLEET_STORM", 1, 0) !== 0,
  stormTimeoutS: intEnv("BENCH_FLEET_STORM_TIMEOUT_S", 900),
};

function printStorm(s: StormResult, use: Record<string, { cpuPercent: number; rssMb: number }>): boolean {
  const ok = s.retainedWrong.length === 0 && s.presenceWrong.length === 0 && Number.isFinite(s.presenceOnlineMs);
  process.stdout.write(
    `\nReconnect storm: gateway restarted with ${fmtInt(s.kiosks)} kiosks connected\n` +
      `  gateway listening again after      ${(s.gatewayUpMs / 1000).toFixed(1)} s\n` +
      `  every kiosk connected again after  ${(s.reconnectedMs / 1000).toFixed(1)} s\n` +
      `  cloud presence all online after    ${(s.presenceOnlineMs / 1000).toFixed(1)} s\n` +
      `  retained statuses online, current session: ${fmtInt(s.kiosks - s.retainedWrong.length)}/${fmtInt(s.kiosks)}` +
      `${s.retainedWrong.length ? ` (wrong: ${s.retainedWrong.slice(0, 5).join(", ")}…)` : ""}\n` +
      `  cloud presence online from a new birth:      ${fmtInt(s.kiosks - s.presenceWrong.length)}/${fmtInt(s.kiosks)}\n` +
      `  during the storm: gateway CPU ${pct(use.gateway!.cpuPercent)} (RSS ${mb(use.gateway!.rssMb)}), ` +
      `cloud CPU ${pct(use.cloud!.cpuPercent)} (RSS ${mb(use.cloud!.rssMb)})\n` +
      `  every status ends correct: ${ok ? "yes" : "NO"}\n`,
  );
  return ok;
}

async function main(): Promise<number> {
  const max = Math.max(...steps);
  process.stderr.write(
    `PayLane fleet benchmark: steps ${steps.join(", ")}; window ${cfg.windowS} s, telemetry every ${cfg.telemetryS} s, ` +
      `one check-in per kiosk per ${cfg.windowS} s; ${cfg.workers} kiosk workers; ${cpus().length} cores, ` +
      `load average ${loadavg()[0]!.toFixed(1)} at the start\n`,
  );
  const site = new FleetSite({
    maxKiosks: max,
    workers: cfg.workers,
    databaseUrl: process.env.DATABASE_URL || undefined,
    redisUrl: process.env.REDIS_URL || undefined,
    log: progress,
  });
  const results: StepResult[] = [];
  let stormOk = true;
  try {
    await site.start();
    site.load(cfg.telemetryS * 1000, cfg.windowS * 1000);
    results.push(...(await ramp(site, steps, cfg)));
    process.stdout.write("\nRamp (ack = publish of a check-in → the ack covering its seq; CPU in % of one core)\n");
    printSteps(results, cfg);
    const held = largestHeld(results);
    const top = results.at(-1)!;
    process.stdout.write(
      `\nLargest fleet held with ack p99 < 1 s: ${fmtInt(held)} kiosks` +
        ` = ${(held / TARGET).toFixed(2)}x the ${fmtInt(TARGET)} target, ${(held / BASELINE).toFixed(2)}x ThingsBoard Edge's ~${fmtInt(BASELINE)} per node` +
        `${top.held ? ` (the ramp ended at its last step, ${fmtInt(top.n)}, without reaching the limit)` : ` (next step ${fmtInt(top.n)}: ${top.why})`}\n`,
    );
    if (cfg.storm) {
      site.pause();
      await sleep(3000);
      progress(`reconnect storm: restarting the gateway with ${fmtInt(site.connected)} kiosks connected`);
      const end = meter({ cloud: site.cloud!.pid });
      const t0 = performance.now();
      const storm = await site.reconnectStorm(cfg.stormTimeoutS * 1000);
      const use = end();
      // The new gateway's whole life falls in the storm: all its CPU ticks are the storm's.
      const gw = site.gateway!.pid;
      use.gateway = {
        cpuPercent: (cpuTicks(gw) / 100 / ((performance.now() - t0) / 1000)) * 100,
        rssMb: (procMemory(gw)?.rssKb ?? Number.NaN) / 1024,
      };
      stormOk = printStorm(storm, use);
    }
    return results.some((r) => r.held) && stormOk ? 0 : 1;
  } finally {
    await site.close();
  }
}

runBench(main);
