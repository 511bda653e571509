/**
 * The fleet as an operator sees it, built from what the broker delivers:
 * each kiosk's retained status (birth / Will), its telemetry, its retained
 * desired config and reported state, and the cloud's own status. Pure: the
 * caller hands in each message with the time it arrived, and asks for rows
 * at a time of its choosing, so tests drive it without a broker or a clock.
 */
import {
  type CloudStatus,
  CloudStatusSchema,
  configDrift,
  type DesiredConfig,
  DesiredConfigSchema,
  parseTopic,
  type ReportedState,
  ReportedStateSchema,
  type Status,
  StatusSchema,
  type Telemetry,
  TelemetrySchema,
  topics,
} from "@paylane/protocol";

/** A kiosk's telemetry pace unless its reported configuration or its own pace says otherwise (the daemon's default, telemetryMs). */
export const DEFAULT_TELEMETRY_SECONDS = 30;
/** A kiosk online but silent for this many telemetry intervals is stale (a hung daemon keeps its session). */
export const STALE_INTERVALS = 3;

interface Kiosk {
  site: string;
  device: string;
  status?: Status;
  /** When the status took its current state, if known (a retained status from before the watch is not). */
  statusSince?: number;
  /** When anything last came from the kiosk itself (status, telemetry, state). */
  lastSeen?: number;
  telemetry?: Telemetry;
  telemetryAt?: number;
  /** The gap between the last two telemetry messages: the kiosk's own pace. */
  observedIntervalMs?: number;
  desired?: DesiredConfig;
  reported?: ReportedState;
}

/** One kiosk, ready to print or to serialise (`--json`): times are ISO strings, ages seconds. */
export interface KioskRow {
  kiosk: string;
  site: string;
  device: string;
  status: "online" | "offline" | "unknown";
  /** Online, but no telemetry for STALE_INTERVALS intervals. */
  stale: boolean;
  since: string | null;
  session: number | null;
  lastSeen: string | null;
  backlog: number | null;
  oldestUnackedSeconds: number | null;
  reader: string | null;
  printer: string | null;
  paper: string | null;
  mode: string | null;
  cloudLink: string | null;
  desiredVersion: number | null;
  reportedVersion: number | null;
  /** Desired settings the kiosk has not applied (refused, or not reached it yet). */
  drift: string[];
  rejected: string[];
}

export interface CloudRow {
  state: "online" | "offline" | "unknown";
  instance: string | null;
  heartbeatAt: string | null;
}

const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());

export class FleetView {
  readonly #kiosks = new Map<string, Kiosk>();
  #cloud: CloudStatus | undefined;
  /** When the view started: a kiosk online since before it counts its silence from here. */
  readonly #startedAt: number;

  constructor(startedAt: number) {
    this.#startedAt = startedAt;
  }

  /** The filters that feed the view, for one site or every site (`+`) the login may read. */
  static filters(site = "+"): string[] {
    return [
      topics.fleet("status", site),
      topics.fleet("telemetry", site),
      topics.fleet("state", site),
      topics.fleetConfig(site),
      topics.cloudStatus,
    ];
  }

  /**
   * Takes one message. Returns the kiosk key it changed ("site/device",
   * "cloud"), or null when the message is not for the view or does not
   * parse (a bad payload is skipped, never fatal: the fleet is not ours to
   * validate).
   */
  apply(topic: string, payload: Buffer | string, at: number, retained = false): string | null {
    const text = payload.toString();
    if (topic === topics.cloudStatus) {
      if (text === "") {
        this.#cloud = undefined;
        return "cloud";
      }
      const cloud = safeJson(text, CloudStatusSchema);
      if (!cloud) return null;
      this.#cloud = cloud;
      return "cloud";
    }
    const parsed = parseTopic(topic);
    if (!parsed) return null;
    const key = `${parsed.site}/${parsed.device}`;
    const kiosk = this.#kiosks.get(key) ?? { site: parsed.site, device: parsed.device };
    switch (parsed.channel) {
      case "status": {
        // An empty retained payload clears the status: the kiosk was removed.
        if (text === "") {
          this.#kiosks.delete(key);
          return key;
        }
        const status = safeJson(text, StatusSchema);
        if (!status) return null;
        // A new session is a reconnect: its status starts afresh even if it was online before.
        if (kiosk.status?.state !== status.state || kiosk.status?.session !== status.session) {
          kiosk.statusSince =
            status.state === "offline" && status.at ? Date.parse(status.at) : retained ? undefined : at;
        }
        kiosk.status = status;
        if (!retained) kiosk.lastSeen = at;
        break;
      }
      case "telemetry": {
        const telemetry = safeJson(text, TelemetrySchema);
        if (!telemetry) return null;
        if (kiosk.telemetryAt !== undefined) kiosk.observedIntervalMs = at - kiosk.telemetryAt;
        kiosk.telemetry = telemetry;
        kiosk.telemetryAt = at;
        kiosk.lastSeen = at;
        break;
      }
      case "state": {
        const reported = safeJson(text, ReportedStateSchema);
        if (!reported) return null;
        kiosk.reported = reported;
        if (!retained) kiosk.lastSeen = at;
        break;
      }
      case "config": {
        if (text === "") kiosk.desired = undefined;
        else {
          const desired = safeJson(text, DesiredConfigSchema);
          if (!desired) return null;
          kiosk.desired = desired;
        }
        break;
      }
      default:
        return null;
    }
    this.#kiosks.set(key, kiosk);
    return key;
  }

  /** Every kiosk, sorted by site then device. */
  rows(now: number): KioskRow[] {
    return [...this.#kiosks.values()]
      .sort((a, b) => a.site.localeCompare(b.site) || a.device.localeCompare(b.device))
      .map((k) => this.#row(k, now));
  }

  row(key: string, now: number): KioskRow | undefined {
    const k = this.#kiosks.get(key);
    return k && this.#row(k, now);
  }

  cloud(): CloudRow {
    const c = this.#cloud;
    if (!c) return { state: "unknown", instance: null, heartbeatAt: null };
    if (c.state === "offline") return { state: "offline", instance: null, heartbeatAt: null };
    return { state: "online", instance: c.instance, heartbeatAt: c.heartbeatAt ?? null };
  }

  /** How long a kiosk may stay silent before it is stale: STALE_INTERVALS of its telemetry interval. */
  staleAfterMs(k: Kiosk): number {
    const configured = k.reported?.applied.telemetryIntervalSeconds;
    const intervalMs =
      typeof configured === "number" && configured > 0
        ? configured * 1000
        : (k.observedIntervalMs ?? DEFAULT_TELEMETRY_SECONDS * 1000);
    return STALE_INTERVALS * intervalMs;
  }

  #row(k: Kiosk, now: number): KioskRow {
    const t = k.telemetry;
    const state = k.status?.state ?? "unknown";
    const silentSince = k.telemetryAt ?? Math.max(this.#startedAt, k.statusSince ?? 0);
    const stale = state === "online" && now - silentSince > this.staleAfterMs(k);
    const drift = configDrift(k.desired ?? null, k.reported ?? null);
    return {
      kiosk: `${k.site}/${k.device}`,
      site: k.site,
      device: k.device,
      status: state,
      stale,
      since: iso(k.statusSince),
      session: k.status?.session ?? null,
      lastSeen: iso(k.lastSeen),
      backlog: t?.backlog ?? null,
      oldestUnackedSeconds: t?.oldestUnackedAgeSeconds ?? null,
      reader: t?.reader ?? null,
      printer: t ? (t.printer?.state ?? "none") : null,
      paper: t?.printer?.paper ?? null,
      mode: t?.mode ?? (typeof k.reported?.applied.mode === "string" ? k.reported.applied.mode : null),
      cloudLink: t?.cloudLink ?? null,
      desiredVersion: k.desired?.version ?? null,
      reportedVersion: k.reported?.version ?? null,
      drift,
      rejected: k.reported?.rejected.map((r) => r.field) ?? [],
    };
  }
}

function safeJson<T>(text: string, schema: { safeParse(v: unknown): { success: true; data: T } | { success: false } }) {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  const result = schema.safeParse(value);
  return result.success ? result.data : undefined;
}
