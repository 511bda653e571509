import type { DeviceAddress, Exposure } from "@paylane/protocol";

export interface DevicePresence extends DeviceAddress {
  state: "online" | "offline" | "unknown";
  /** When the device last said anything (status, events, telemetry). */
  lastSeen: string | null;
  /** When `state` last changed. */
  statusAt: string | null;
  version: string | null;
  bootedAt: string | null;
  /** The kiosk's offline payment exposure from its latest telemetry, with when it said so; null: never reported. */
  payments: (Exposure & { at: string }) | null;
}

export interface StatusUpdate {
  state: "online" | "offline";
  at: Date;
  version?: string;
  bootedAt?: string;
  /**
   * The device's connection counter (docs/status.md). A birth sets the
   * session in force (one without a session clears it: an older kiosk); an
   * offline whose session is older than the one in force is a late Will of a
   * replaced connection and changes nothing.
   */
  session?: number;
}

/**
 * Live presence of devices: Redis when REDIS_URL is set (shared by every API
 * instance), an in-process map otherwise. Both pass the same contract suite.
 */
export interface PresenceStore {
  readonly kind: "redis" | "memory";
  /** Applies a birth or an offline; false: a stale Will, ignored (see StatusUpdate.session). Atomic per device. */
  setStatus(device: DeviceAddress, update: StatusUpdate): Promise<boolean>;
  touch(device: DeviceAddress, at: Date): Promise<void>;
  /** Records the exposure a kiosk reported; an older report never replaces a newer one. */
  setExposure(device: DeviceAddress, exposure: Exposure, at: Date): Promise<void>;
  /** Presence of the given devices, in the same order; unknown devices come back as `unknown`. */
  get(devices: readonly DeviceAddress[]): Promise<DevicePresence[]>;
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

/** Whether `u` is an offline of an older session than the birth in force (`current`), to be ignored. */
export function isStaleOffline(u: StatusUpdate, current: number | undefined): boolean {
  return u.state === "offline" && u.session !== undefined && current !== undefined && u.session < current;
}

export function unknownPresence(d: DeviceAddress): DevicePresence {
  return { ...d, state: "unknown", lastSeen: null, statusAt: null, version: null, bootedAt: null, payments: null };
}
