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
  /** Print the fleet once and exit: false: live; 0: retained only; n: also up to n s for online kiosks' telemetry. */
  once: false | number;
}

/**
 * The fleet once: what is retained (status, config, state, the cloud), plus
 * one round of telemetry (not retained) from the kiosks that are online,
 * waited for at most `telemetrySeconds`.
 */
async function snapshot(
  client: MqttClient,
  who: string,
  view: FleetView,
  filters: string[],
  now: () => number,
  telemetrySeconds: number,
) {
  client.on("message", (topic, payload, packet) => view.apply(topic, payload, now(), packet.retain));
  const retained = await retainedSnapshot(client, filters, who);
  for (const [topic, payload] of retained) view.apply(topic, payload, now(), true);
  const deadline = Date.now() + telemetrySeconds * 1000;
  const waiting = () => view.rows(now()).some((r) => r.status === "online" && r.backlog === null);
  while (waiting() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
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

  if (o.once !== false) {
    await snapshot(client, who, view, filters, now, o.once);
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
    // The cloud's heartbeat is not news: only its state and instance are.
    const identity = key === "cloud" ? jsonLine({ ...value, heartbeatAt: undefined }) : line;
    if (printed.get(key) === identity) return;
    printed.set(key, identity);
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
