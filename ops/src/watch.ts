/**
 * `paylane-ops watch`: every kiosk of the sites the login may read, live.
 * On a terminal, a table redrawn in place (log-update) on each change and
 * every second (ages, staleness); otherwise, or with --json, one JSON line
 * per change of a kiosk's row or of the cloud's status.
 */
import { createLogUpdate } from "log-update";
import type { MqttClient } from "mqtt";
import { OpsError, retainedSnapshot, subscribe } from "./connection.ts";
import { FleetView } from "./fleet-view.ts";
import { fleetTable, jsonLine } from "./render.ts";

export interface WatchOptions {
  site: string;
  json: boolean;
  /** Print the fleet as the retained messages show it, then exit. */
  once: boolean;
}

export interface Output {
  write(text: string): unknown;
  isTTY?: boolean;
}

/** Redraws are at most this often; a fleet publishing telemetry all at once is one redraw. */
const REDRAW_MS = 100;
const TICK_MS = 1000;

export async function watch(
  client: MqttClient,
  who: string,
  o: WatchOptions,
  out: Output = process.stdout,
  now: () => number = Date.now,
): Promise<number> {
  const view = new FleetView(now());
  const filters = FleetView.filters(o.site);
  const live = !o.json && out.isTTY === true;

  if (o.once) {
    const retained = await retainedSnapshot(client, filters, who);
    for (const [topic, payload] of retained) view.apply(topic, payload, now(), true);
    const rows = view.rows(now());
    if (o.json) for (const row of rows) out.write(`${jsonLine({ type: "kiosk", ...row })}\n`);
    else out.write(`${fleetTable(rows, view.cloud(), now())}\n`);
    return 0;
  }

  const printed = new Map<string, string>();
  const emit = (key: string) => {
    const row = key === "cloud" ? undefined : view.row(key, now());
    const value =
      key === "cloud"
        ? { type: "cloud", ...view.cloud() }
        : row
          ? { type: "kiosk", ...row }
          : { type: "kiosk", kiosk: key, removed: true };
    const line = jsonLine(value);
    if (printed.get(key) === line) return;
    printed.set(key, line);
    out.write(`${line}\n`);
  };

  const screen = live ? createLogUpdate(out as NodeJS.WriteStream) : undefined;
  let redraw: NodeJS.Timeout | undefined;
  const draw = () => {
    redraw = undefined;
    screen?.(fleetTable(view.rows(now()), view.cloud(), now()));
  };
  const changed = (key: string) => {
    if (!live) emit(key);
    else redraw ??= setTimeout(draw, REDRAW_MS);
  };

  client.on("message", (topic, payload, packet) => {
    const key = view.apply(topic, payload, now(), packet.retain);
    if (key) changed(key);
  });
  await subscribe(client, filters, who);
  if (live) draw();
  // Staleness and ages move with the clock alone.
  const tick = setInterval(() => {
    if (live) draw();
    else for (const row of view.rows(now())) emit(row.kiosk);
  }, TICK_MS);

  return new Promise((_, reject) => {
    client.once("close", () => {
      clearInterval(tick);
      clearTimeout(redraw);
      screen?.done();
      reject(new OpsError("lost the connection to the broker"));
    });
  });
}
