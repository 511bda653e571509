/** The benchmark's kiosks (`Fleet`) in their own process, driven over IPC. */
import { reportFailures } from "./child.ts";
import { Fleet, type FleetOptions, type FleetResult } from "./fleet.ts";

export type FleetIn =
  | { type: "connect"; options: Omit<FleetOptions, "secrets"> & { secrets: Array<[string, string]> } }
  | { type: "run" }
  | { type: "stop" };
export type FleetOut =
  | { type: "connected" }
  | { type: "tick"; acked: number }
  | { type: "result"; result: FleetResult }
  | { type: "error"; message: string }
  | { type: "exit" };

reportFailures();
const send = (m: FleetOut) => process.send?.(m);
let fleet: Fleet | undefined;
process.on("message", async (m: FleetIn) => {
  if (m.type === "connect") {
    fleet = new Fleet({ ...m.options, secrets: new Map(m.options.secrets) });
    await fleet.connect();
    send({ type: "connected" });
  } else if (m.type === "run") {
    const result = await fleet!.run((acked) => send({ type: "tick", acked }));
    send({ type: "result", result });
  } else if (m.type === "stop") {
    await fleet?.close();
    process.disconnect?.();
  }
});
