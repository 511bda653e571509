/** The kiosk's periodic `telemetry` message, built from what the daemon already knows. */
import { type Exposure, type KioskMode, PROTOCOL_VERSION, type Telemetry } from "@paylane/protocol";
import type { BoardHealth } from "./board-health.ts";
import type { GpioHealth } from "./hardware/gpio/gpio-roles.ts";
import type { Pn532Counters } from "./hardware/pn532/pn532-reader.ts";
import type { PrinterHealth } from "./hardware/printer/printer.ts";
import type { TerminalHealth } from "./hardware/terminal/factory.ts";
import type { JournalStats } from "./journal.ts";
import type { PeripheralsHealth } from "./peripherals.ts";
import type { ReplicaInfo } from "./replica.ts";
import type { StorageStatus } from "./storage-monitor.ts";

export interface TelemetryFacts {
  now: Date;
  bootedAt: Date;
  journal: JournalStats;
  replica: ReplicaInfo;
  peripherals: PeripheralsHealth;
  storage: StorageStatus["state"];
  /** Absent on a kiosk that has no offline limits yet. */
  payments: Exposure | undefined;
  /** Memory, disk and CPU temperature; absent: not read (tests of the rest). */
  board?: BoardHealth;
  /** The operating mode and the desired-configuration version in force. */
  mode?: KioskMode;
  configVersion?: number;
  /** This daemon's package version. */
  deviceVersion?: string;
  /** The card terminal; null: none configured; absent: not read (tests of the rest). */
  terminal?: TerminalHealth | null;
  /** The slowest publish → ack round trip since the previous report (seconds); absent: nothing acked meanwhile. */
  ackLatencySeconds?: number;
}

export function kioskTelemetry(f: TelemetryFacts): Telemetry {
  const { journal: stats, replica, peripherals } = f;
  const secondsSince = (iso: string) => Math.max(0, (f.now.getTime() - Date.parse(iso)) / 1000);
  return {
    at: f.now.toISOString(),
    backlog: stats.backlog,
    ackedUpTo: stats.ackedUpTo,
    lastSeq: stats.lastSeq,
    replicaVersion: replica.version,
    reader: peripherals.reader.state,
    readerStats: readerStats(peripherals.reader.counters),
    uptimeSeconds: (f.now.getTime() - f.bootedAt.getTime()) / 1000,
    oldestUnackedAgeSeconds: stats.oldestUnackedAt ? secondsSince(stats.oldestUnackedAt) : 0,
    ...(f.ackLatencySeconds !== undefined ? { ackLatencySeconds: f.ackLatencySeconds } : {}),
    replicaAgeSeconds: replica.syncedAt ? secondsSince(replica.syncedAt) : null,
    ...(stats.conflicts > 0 ? { journalConflicts: stats.conflicts } : {}),
    storage: f.storage,
    ...(f.payments ? { payments: f.payments } : {}),
    printer: peripherals.printer ? printerTelemetry(peripherals.printer) : null,
    ...(f.mode ? { mode: f.mode } : {}),
    ...(f.configVersion !== undefined ? { configVersion: f.configVersion } : {}),
    ...(f.board ? boardTelemetry(f.board) : {}),
    ...(f.deviceVersion
      ? { versions: { device: f.deviceVersion, node: process.versions.node, protocol: PROTOCOL_VERSION } }
      : {}),
    gpio: peripherals.gpio ? gpioTelemetry(peripherals.gpio) : null,
    // Not its link: a serial path or a host is the installer's business, not the fleet's.
    ...(f.terminal !== undefined
      ? {
          terminal: f.terminal && { type: f.terminal.type, state: f.terminal.state, reconnects: f.terminal.reconnects },
        }
      : {}),
  };
}

/** The backend's state, or "degraded" with the first role's error when a role is not working (a line's tool died). */
function gpioTelemetry(g: GpioHealth): NonNullable<Telemetry["gpio"]> {
  const failing = Object.values(g.roles).find((r) => r && r.state !== "ok");
  const state = g.state === "ok" && failing ? "degraded" : g.state;
  const lastError = g.lastError ?? failing?.lastError;
  return {
    backend: g.backend,
    state,
    ...(lastError ? { lastError } : {}),
    ...(g.board ? { board: g.board } : {}),
  };
}

function printerTelemetry(h: PrinterHealth): NonNullable<Telemetry["printer"]> {
  return { state: h.state, paper: h.paper, ...(h.lastError ? { lastError: h.lastError } : {}) };
}

function readerStats(c: Pn532Counters): NonNullable<Telemetry["readerStats"]> {
  const discarded = Object.values(c.discarded).reduce((a, b) => a + b, 0);
  return {
    reads: c.reads,
    timeouts: c.timeouts,
    nacksSent: c.nacksSent,
    reinits: c.reinits,
    reconnects: c.reconnects,
    discarded,
  };
}

function boardTelemetry(b: BoardHealth): Pick<Telemetry, "memory" | "disk" | "cpuTemperatureC"> {
  return { memory: b.memory, ...(b.disk ? { disk: b.disk } : {}), cpuTemperatureC: b.cpuTemperatureC };
}
