/**
 * Per-kiosk series, exported by the cloud from what kiosks already tell it
 * (presence from `status`, the newest `telemetry` report): Prometheus scrapes
 * the cloud, never a kiosk. Labels are `site` and `device` (bounded by the
 * fleet), plus an enum's `state` or the exposure's `currency`; never a member
 * id or card UID. Read from the stores at each scrape, so every cloud
 * instance on one Redis exports the same values; a report this instance's
 * bridge has just heard counts at once, before the telemetry recorder has
 * written it to the latest-telemetry store (about a second later).
 */
import type { DeviceAddress, Telemetry } from "@paylane/protocol";
import type { Logger } from "pino";
import type { Gauge, Registry as MetricsRegistry } from "prom-client";
import type { DevicePresence, PresenceStore } from "../presence/presence-store.ts";
import type { LatestTelemetry, LatestTelemetryStore } from "../telemetry/latest-store.ts";
import { registeredGauge } from "./registered.ts";

export const PAPER_STATES = ["ok", "near-end", "out", "unknown"] as const;
export const READER_STATES = ["ok", "degraded", "disconnected"] as const;

export interface KioskMetricsOptions {
  metrics: MetricsRegistry;
  /** The enrolled devices (the registry in force). */
  devices: () => readonly DeviceAddress[];
  presence: PresenceStore;
  latestTelemetry: LatestTelemetryStore;
  now: () => Date;
  logger: Logger;
  /** Only this site's devices (a cloud serving one site of a shared broker, as in tests). */
  site?: string;
}

interface KioskSnapshot {
  device: DeviceAddress;
  presence: DevicePresence;
  latest: LatestTelemetry | null;
}

/** Two scrapes within this long share one read of the stores (each gauge's collect asks for it). */
const SNAPSHOT_REUSE_MS = 1000;

export interface KioskMetrics {
  /** The bridge's telemetry listener: the newest report heard here, until the store has it. */
  heard(device: DeviceAddress, telemetry: Telemetry): void;
}

export function registerKioskMetrics(o: KioskMetricsOptions): KioskMetrics {
  const heardHere = new Map<string, LatestTelemetry>();
  let snapshot: { at: number; value: Promise<KioskSnapshot[]> } | undefined;
  const read = (): Promise<KioskSnapshot[]> => {
    const at = performance.now();
    if (snapshot && at - snapshot.at < SNAPSHOT_REUSE_MS) return snapshot.value;
    const value = readKiosks(o, heardHere).catch((err: Error) => {
      o.logger.warn({ err: err.message }, "kiosk metrics: presence or telemetry could not be read");
      return [];
    });
    snapshot = { at, value };
    return value;
  };
  /** A gauge whose series are all set anew from the snapshot at each scrape (a kiosk removed disappears). */
  const gauge = <L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[],
    fill: (g: Gauge<L>, k: KioskSnapshot, now: number) => void,
  ) =>
    registeredGauge<L>(o.metrics, {
      name,
      help,
      labelNames,
      async collect() {
        const kiosks = await read();
        const now = o.now().getTime();
        this.reset();
        for (const k of kiosks) fill(this, k, now);
      },
    });
  const where = (k: KioskSnapshot) => ({ site: k.device.site, device: k.device.device });
  const telemetry = (k: KioskSnapshot): Telemetry | undefined => k.latest?.telemetry;

  gauge(
    "paylane_kiosk_up",
    "1 while the kiosk is online (its birth in force), 0 offline or never seen",
    ["site", "device"],
    (g, k) => g.set(where(k), k.presence.state === "online" ? 1 : 0),
  );
  gauge(
    "paylane_kiosk_last_seen_timestamp_seconds",
    "When the kiosk last said anything (status, events, telemetry), Unix time; absent if never",
    ["site", "device"],
    (g, k) => {
      if (k.presence.lastSeen) g.set(where(k), Date.parse(k.presence.lastSeen) / 1000);
    },
  );
  gauge(
    "paylane_kiosk_backlog_entries",
    "Journal entries the kiosk holds that the cloud has not acked, from its newest telemetry",
    ["site", "device"],
    (g, k) => {
      const t = telemetry(k);
      if (t) g.set(where(k), t.backlog);
    },
  );
  gauge(
    "paylane_kiosk_oldest_unacked_age_seconds",
    "How long the kiosk's oldest unacked entry has waited: its telemetry's figure, aged since the report arrived while entries wait (0: none)",
    ["site", "device"],
    (g, k, now) => {
      const t = telemetry(k);
      if (!t) return;
      const reported = t.oldestUnackedAgeSeconds ?? 0;
      // A kiosk gone quiet with a backlog: its oldest entry keeps waiting after its last report.
      const since = reported > 0 ? Math.max(0, (now - Date.parse(k.latest!.receivedAt)) / 1000) : 0;
      g.set(where(k), reported + since);
    },
  );
  gauge(
    "paylane_kiosk_printer_paper",
    "The receipt printer's paper, one series per state: 1 for the current state, 0 for the others; absent for kiosks without a printer",
    ["site", "device", "state"],
    (g, k) => {
      const printer = telemetry(k)?.printer;
      if (!printer) return;
      for (const state of PAPER_STATES) g.set({ ...where(k), state }, printer.paper === state ? 1 : 0);
    },
  );
  gauge(
    "paylane_kiosk_reader_state",
    "The card reader's state, one series per state: 1 for the current state, 0 for the others",
    ["site", "device", "state"],
    (g, k) => {
      const t = telemetry(k);
      if (!t) return;
      for (const state of READER_STATES) g.set({ ...where(k), state }, t.reader === state ? 1 : 0);
    },
  );
  gauge(
    "paylane_kiosk_ack_latency_seconds",
    "The slowest publish → ack round trip of an events batch the kiosk saw between its two newest telemetry reports; absent if none was acked",
    ["site", "device"],
    (g, k) => {
      const latency = telemetry(k)?.ackLatencySeconds;
      if (latency !== undefined) g.set(where(k), latency);
    },
  );
  const exposure = (k: KioskSnapshot) => telemetry(k)?.payments ?? k.presence.payments ?? undefined;
  gauge(
    "paylane_kiosk_offline_exposure_minor",
    "Offline payments approved at the kiosk and not yet reconciled by the cloud, in minor units of the currency",
    ["site", "device", "currency"],
    (g, k) => {
      const e = exposure(k);
      if (e) g.set({ ...where(k), currency: e.currency }, e.offlineExposure);
    },
  );
  gauge(
    "paylane_kiosk_offline_exposure_cap_minor",
    "The site's per-kiosk cap on offline exposure the kiosk counts against, in minor units of the currency",
    ["site", "device", "currency"],
    (g, k) => {
      const e = exposure(k);
      if (e) g.set({ ...where(k), currency: e.currency }, e.cap);
    },
  );
  return {
    heard(device, telemetry) {
      const key = `${device.site}/${device.device}`;
      if (!isNewer(telemetry, heardHere.get(key) ?? null)) return;
      heardHere.set(key, { telemetry, receivedAt: o.now().toISOString() });
      snapshot = undefined; // the next scrape reads it
    },
  };
}

/** Whether `t` is newer than `than` by the kiosk's own report time (what the store compares too). */
function isNewer(t: Telemetry, than: LatestTelemetry | null): boolean {
  return !than || Date.parse(t.at) > Date.parse(than.telemetry.at);
}

async function readKiosks(o: KioskMetricsOptions, heardHere: Map<string, LatestTelemetry>): Promise<KioskSnapshot[]> {
  const devices = o.devices().filter((d) => o.site === undefined || d.site === o.site);
  const [presences, latest] = await Promise.all([
    o.presence.get(devices),
    Promise.all(devices.map((d) => o.latestTelemetry.get(d))),
  ]);
  return devices.map((device, i) => {
    const stored = latest[i] ?? null;
    const here = heardHere.get(`${device.site}/${device.device}`);
    // The newer of the two: another instance may have heard a later report than this one.
    return { device, presence: presences[i]!, latest: here && isNewer(here.telemetry, stored) ? here : stored };
  });
}
