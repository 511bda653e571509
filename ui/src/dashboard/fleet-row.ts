/**
 * One kiosk as the fleet overview shows it, from a `GET /api/v1/devices`
 * item. The listing grew fields over time (presence first; backlog, paper,
 * reader, mode, drift with the fleet read model), so each is read where it
 * is and shown as "—" when this cloud does not send it.
 */
export interface FleetRow {
  site: string;
  device: string;
  name: string | null;
  state: "online" | "offline" | "unknown";
  statusAt: string | null;
  lastSeen: string | null;
  version: string | null;
  backlog: number | null;
  /** How long the oldest unacked entry has waited, seconds. */
  ackLatency: number | null;
  paper: string | null;
  reader: string | null;
  mode: string | null;
  drift: boolean | null;
  revoked: boolean;
}

type Raw = Record<string, unknown>;

const obj = (v: unknown): Raw | undefined => (v && typeof v === "object" ? (v as Raw) : undefined);
const str = (v: unknown): string | null => (typeof v === "string" ? v : null);
const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);

export function fleetRow(raw: Raw): FleetRow {
  const t = obj(raw.telemetry) ?? obj(raw.latest) ?? {};
  const printer = obj(raw.printer) ?? obj(t.printer);
  const driftValue = raw.drift ?? raw.configDrift;
  const drift =
    typeof driftValue === "boolean"
      ? driftValue
      : Array.isArray(driftValue)
        ? driftValue.length > 0
        : obj(driftValue)
          ? Object.keys(obj(driftValue)!).length > 0
          : null;
  const state = str(raw.state) ?? str(raw.status);
  return {
    site: String(raw.site ?? ""),
    device: String(raw.device ?? raw.id ?? ""),
    name: str(raw.name),
    state: state === "online" || state === "offline" ? state : "unknown",
    statusAt: str(raw.statusAt) ?? str(raw.since),
    lastSeen: str(raw.lastSeen),
    version: str(raw.version),
    backlog: num(raw.backlog) ?? num(t.backlog),
    ackLatency: num(raw.ackLatencySeconds) ?? num(t.oldestUnackedAgeSeconds),
    // printer null with telemetry: the kiosk has none; without telemetry nothing is known yet.
    paper: str(raw.paper) ?? str(printer?.paper) ?? (raw.printer === null && raw.telemetryAt ? "no printer" : null),
    reader: str(raw.reader) ?? str(obj(raw.reader)?.state) ?? str(t.reader),
    mode: str(raw.mode) ?? str(t.mode),
    drift,
    revoked: Boolean(obj(raw.enrolment)?.revokedAt),
  };
}
