/**
 * The tap benchmark's kiosk, in its own process as on a Pi: either the real
 * `KioskDaemon` (PN532 on a pty, replica, journal, uplink, local API and UI)
 * or the floor (the same PN532 driver forwarding pre-made results to a bare
 * WebSocket). The gateway, the cloud and the simulator stay in the parent, so
 * their work never shares this event loop.
 */
import { type DeviceConfigInput, KioskDaemon, parseDeviceConfig } from "@paylane/device";
import type { KioskState } from "@paylane/protocol/kiosk-api";
import pino from "pino";
import { reportFailures } from "./child.ts";
import { FloorKiosk, type FloorOptions } from "./tap-floor.ts";

export type TapKioskIn =
  | { type: "daemon"; config: DeviceConfigInput }
  | { type: "floor"; options: Omit<FloorOptions, "names"> & { names: [string, string][] } }
  | { type: "stop" };

export type TapKioskOut =
  | { type: "ready"; port: number }
  | { type: "state"; online: boolean; reader: KioskState["reader"]["state"] }
  | { type: "error"; message: string }
  | { type: "exit" };

const send = (m: TapKioskOut) => process.send?.(m);

/** Starts the daemon and waits until it is online, its reader ready and its replica pulled. */
async function startDaemon(config: DeviceConfigInput): Promise<KioskDaemon> {
  const daemon = new KioskDaemon({ config: parseDeviceConfig(config), logger: pino({ level: "silent" }) });
  let ready: () => void = () => {};
  const settled = new Promise<void>((resolve) => {
    ready = resolve;
  });
  const onState = (s: KioskState) => {
    send({ type: "state", online: s.online, reader: s.reader.state });
    if (s.online && s.reader.state === "ok") ready();
  };
  const changed = () => void daemon.state().then(onState, () => {});
  daemon.events.on("cloud-link-changed", changed);
  daemon.events.on("peripheral-changed", changed);
  await daemon.start();
  onState(await daemon.state());
  await settled;
  // The first replica pull runs at start; this one makes sure every member is in before the first tap.
  await daemon.replicaSync.syncNow();
  if (daemon.replicaSync.lastError) throw new Error(`replica pull failed: ${daemon.replicaSync.lastError}`);
  return daemon;
}

reportFailures();
let running: { stop(): Promise<void> } | undefined;
process.on("message", async (m: TapKioskIn) => {
  if (m.type === "daemon") {
    const daemon = await startDaemon(m.config);
    running = daemon;
    send({ type: "ready", port: daemon.port });
  } else if (m.type === "floor") {
    const floor = new FloorKiosk({ ...m.options, names: new Map(m.options.names) });
    running = floor;
    await floor.start();
    send({ type: "ready", port: floor.port });
  } else if (m.type === "stop") {
    await running?.stop();
    running = undefined;
    process.disconnect?.();
  }
});
