/** The benchmark's kiosks (`Fleet`) in a process of their own (fleet-process.ts), seen from the parent. */
import { performance } from "node:perf_hooks";
import { Child } from "./child.ts";
import type { FleetOptions, FleetResult } from "./fleet.ts";
import type { FleetIn, FleetOut } from "./fleet-process.ts";

export type FleetChild = Child<FleetIn, FleetOut>;

/** Forks the Fleet and connects its devices; stallMs follows from ackTimeoutMs. A failed start stops the process. */
export async function startFleet(o: Omit<FleetOptions, "stallMs">): Promise<FleetChild> {
  const fleet: FleetChild = new Child("kiosks", new URL("./fleet-process.ts", import.meta.url));
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
    return fleet;
  } catch (err) {
    // the start's own failure is the one to report
    await fleet.stop({ type: "stop" }).catch(() => {});
    throw err;
  }
}

/** Runs the connected Fleet from first publish to last ack; `onTick` each second with the acks so far. */
export async function runFleet(
  fleet: FleetChild,
  onTick: (acked: number, seconds: number, perSecond: number) => void,
): Promise<FleetResult> {
  const t0 = performance.now();
  let prev = 0;
  const off = fleet.on((m) => {
    if (m.type !== "tick") return;
    onTick(m.acked, (performance.now() - t0) / 1000, m.acked - prev);
    prev = m.acked;
  });
  fleet.send({ type: "run" });
  return (await fleet.next("result").finally(off)).result;
}
