import type { DeviceAddress, Exposure } from "@paylane/protocol";
import {
  type DevicePresence,
  isStaleOffline,
  type PresenceStore,
  type StatusUpdate,
  unknownPresence,
} from "./presence-store.ts";

const key = (d: DeviceAddress) => `${d.site}/${d.device}`;

/** The in-process stand-in for Redis used by `npm start`. */
export class MemoryPresence implements PresenceStore {
  readonly kind = "memory" as const;
  readonly #devices = new Map<string, DevicePresence>();
  /** The session of the birth in force, per device (none: no birth yet, or one without a session). */
  readonly #sessions = new Map<string, number>();

  #entry(d: DeviceAddress): DevicePresence {
    let p = this.#devices.get(key(d));
    if (!p) {
      p = unknownPresence(d);
      this.#devices.set(key(d), p);
    }
    return p;
  }

  async setStatus(d: DeviceAddress, u: StatusUpdate): Promise<boolean> {
    if (isStaleOffline(u, this.#sessions.get(key(d)))) return false;
    if (u.state === "online") {
      if (u.session === undefined) this.#sessions.delete(key(d));
      else this.#sessions.set(key(d), u.session);
    }
    const p = this.#entry(d);
    p.state = u.state;
    p.statusAt = u.at.toISOString();
    if (!p.lastSeen || p.lastSeen < p.statusAt) p.lastSeen = p.statusAt;
    if (u.version !== undefined) p.version = u.version;
    if (u.bootedAt !== undefined) p.bootedAt = u.bootedAt;
    return true;
  }

  async touch(d: DeviceAddress, at: Date): Promise<void> {
    const p = this.#entry(d);
    if (!p.lastSeen || p.lastSeen < at.toISOString()) p.lastSeen = at.toISOString();
  }

  async setExposure(d: DeviceAddress, exposure: Exposure, at: Date): Promise<void> {
    const p = this.#entry(d);
    if (!p.payments || p.payments.at < at.toISOString()) p.payments = { ...exposure, at: at.toISOString() };
  }

  async get(devices: readonly DeviceAddress[]): Promise<DevicePresence[]> {
    return devices.map((d) => ({ ...(this.#devices.get(key(d)) ?? unknownPresence(d)) }));
  }

  async ping(): Promise<boolean> {
    return true;
  }

  async close(): Promise<void> {}
}
