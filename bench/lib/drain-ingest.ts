/**
 * The drain benchmark's yardstick, measured in the same run: the bridge's
 * ingest rate with the ingest benchmark's load — `Fleet` (simulated kiosks,
 * QoS 1, bounded window, in their own process via fleet-process.ts) through
 * the same gateway and cloud the drain then uses.
 */
import { performance } from "node:perf_hooks";
import { Child } from "./child.ts";
import type { FleetOptions, FleetResult } from "./fleet.ts";
import type { FleetIn, FleetOut } from "./fleet-process.ts";
import { fmtInt, progress } from "./stats.ts";

/** The Fleet's own options (stallMs is derived from ackTimeoutMs), and a CPU meter. */
export type IngestBaselineOptions = Omit<FleetOptions, "stallMs"> & {
  /** Starts counting CPU of the given processes (the Fleet's is passed as `kiosks`); the result ends it. */
  meter?: (pids: Record<string, number | undefined>) => Promise<() => Map<string, number>>;
};

export interface IngestBaseline extends FleetResult {
  events: number;
  /** CPU seconds by process group during the run. */
  cpu: Map<string, number>;
}

/** Runs the Fleet once, start to last ack, and takes its process down again whatever happens. */
export async function measureIngest(o: IngestBaselineOptions): Promise<IngestBaseline> {
  const events = o.eventsPerDevice * o.secrets.size;
  const fleet = new Child<FleetIn, FleetOut>("kiosks", new URL("./fleet-process.ts", import.meta.url));
  try {
    fleet.send({
      type: "connect",
      options: {
        url: o.url,
        site: o.site,
        secrets: [...o.secrets],
        eventsPerDevice: o.eventsPerDevice,
        history: o.history,
        batchSize: o.batchSize,
        window: o.window,
        ackTimeoutMs: o.ackTimeoutMs,
        stallMs: Math.max(60_000, o.ackTimeoutMs * 3),
      },
    });
    await fleet.next("connected");
    const cpu = await o.meter?.({ kiosks: fleet.pid });
    const t0 = performance.now();
    let prev = 0;
    const offTick = fleet.on((m) => {
      if (m.type !== "tick") return;
      const s = (performance.now() - t0) / 1000;
      progress(`ingest ${s.toFixed(0)}s: acked ${fmtInt(m.acked)}/${fmtInt(events)} (${fmtInt(m.acked - prev)}/s)`);
      prev = m.acked;
    });
    fleet.send({ type: "run" });
    const { result } = await fleet.next("result").finally(offTick);
    return { ...result, events, cpu: cpu?.() ?? new Map() };
  } finally {
    await fleet.stop({ type: "stop" }).catch(() => {});
  }
}
