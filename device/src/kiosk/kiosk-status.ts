/**
 * What the kiosk says about itself: the screen's state, `/healthz` for
 * supervisors, and the `/status` page a technician reads. Read from the
 * parts on each call, so it cannot go stale.
 */

import type { KioskState, ScreenSettings } from "@paylane/protocol/kiosk-api";
import type { HealthReport } from "@paylane/protocol/service";
import type { TerminalHealth } from "../hardware/terminal/factory.ts";
import type { Journal } from "../journal.ts";
import type { Peripherals } from "../peripherals.ts";
import type { Replica } from "../replica.ts";
import type { ReplicaSync } from "../replica-sync.ts";
import type { StatusFacts } from "../status-page.ts";
import type { StorageMonitor } from "../storage-monitor.ts";
import type { Uplink } from "../uplink.ts";
import type { KioskKit } from "./kit.ts";

export interface KioskStatusSources {
  journal: Journal;
  replica: Replica;
  sync: ReplicaSync;
  uplink: Uplink;
  peripherals: Peripherals;
  storage: StorageMonitor;
  /** The operating mode and what the screen shows with it (kiosk-mode.ts). */
  screen?: () => ScreenSettings;
  /** The card terminal's health; null: none configured. */
  terminal?: () => TerminalHealth | null;
}

export class KioskStatus {
  readonly #s: KioskStatusSources & Pick<KioskKit, "config" | "now">;

  constructor(kit: KioskKit, sources: KioskStatusSources) {
    this.#s = { ...sources, config: kit.config, now: kit.now };
  }

  async state(): Promise<KioskState> {
    const { config, uplink, peripherals, journal, storage } = this.#s;
    return {
      site: config.site,
      device: config.device,
      online: uplink.online,
      broker: uplink.brokerConnected,
      cloud: uplink.cloudOnline,
      reader: {
        kind: config.reader.type === "pcsc" ? "pcsc" : "pn532",
        simulated: config.reader.type === "pn532-simulator",
        state: peripherals.readerState,
      },
      ...(this.#s.terminal ? { terminal: this.#s.terminal()?.state ?? null } : {}),
      backlog: (await journal.stats()).backlog,
      storage: storage.status.state,
      ...(this.#s.screen ? { screen: this.#s.screen() } : {}),
    };
  }

  async health(): Promise<HealthReport> {
    const { uplink, sync, peripherals, storage, journal } = this.#s;
    return {
      status: uplink.online ? "ok" : "degraded",
      broker: uplink.brokerConnected,
      cloud: uplink.cloudOnline,
      mqttError: uplink.lastError ?? null,
      replicaError: sync.lastError ?? null,
      peripherals: peripherals.health(),
      terminal: this.#s.terminal?.() ?? null,
      storage: storage.status,
      ...(await journal.stats()),
    };
  }

  async page(): Promise<StatusFacts> {
    const { config, uplink, sync, storage } = this.#s;
    const stats = await this.#s.journal.stats();
    const info = await this.#s.replica.info();
    const now = this.#s.now().getTime();
    const age = (iso: string | null) => (iso ? `${Math.round((now - Date.parse(iso)) / 1000)} s` : null);
    const peripherals = this.#s.peripherals.health();
    const mode = this.#s.screen?.().mode;
    const rows: StatusFacts["rows"] = [
      ...(mode
        ? [["Mode", mode === "in-service" ? "in service" : `${mode}: taps are refused`] as [string, string]]
        : []),
      ["Cloud", uplink.online ? "online" : uplink.brokerConnected ? "broker up, cloud away" : "offline"],
      ["Journal backlog", `${stats.backlog} entries (last seq ${stats.lastSeq}, acked ${stats.ackedUpTo})`],
    ];
    if (stats.conflicts > 0) {
      rows.push(["Journal conflicts", `${stats.conflicts} entries held by the cloud under other ids: ask ops`]);
    }
    rows.push(
      ["Oldest unacked entry", age(stats.oldestUnackedAt) ?? "none waiting"],
      ["Storage", storage.status.state === "ok" ? "ok" : `failing: ${storage.status.lastError ?? ""}`],
      [
        "Member replica",
        `version ${info.version}, ${info.members} members, synced ${age(info.syncedAt) ?? "never"} ago`,
      ],
      ["Card reader", peripherals.reader],
      ["Printer", peripherals.printer ?? "none"],
      ["GPIO", peripherals.gpio ?? "none"],
      ["Card terminal", this.#s.terminal?.() ?? "none"],
      ["Last MQTT error", uplink.lastError ?? null],
      ["Last replica error", sync.lastError ?? null],
    );
    return { site: config.site, device: config.device, rows };
  }
}
