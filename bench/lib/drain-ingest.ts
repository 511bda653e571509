/**
 * The drain benchmark's yardstick, measured in the same run: the bridge's
 * ingest rate with the ingest benchmark's load — `Fleet` (simulated kiosks,
 * QoS 1, bounded window, in their own process via fleet-process.ts) through
 * the same gateway and cloud the drain then uses.
 */
import type { FleetOptions, FleetResult } from "./fleet.ts";
import { runFleet, startFleet } from "./fleet-child.ts";
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
  const fleet = await startFleet(o);
  try {
    const cpu = await o.meter?.({ kiosks: fleet.pid });
    const result = await runFleet(fleet, (acked, s, perSecond) =>
      progress(`ingest ${s.toFixed(0)}s: acked ${fmtInt(acked)}/${fmtInt(events)} (${fmtInt(perSecond)}/s)`),
    );
    return { ...result, events, cpu: cpu?.() ?? new Map() };
  } finally {
    await fleet.stop({ type: "stop" }).catch(() => {});
  }
}
