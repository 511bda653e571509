/**
 * Desired configuration in, reported state out (AWS IoT shadow style): the
 * retained `config` is decoded, each setting checked on its own, what can
 * be applied is applied live, and `state` says which version is answered,
 * what is in force and every field refused with why. The last good settings
 * are kept in the journal's file and applied at start, before the broker is
 * reached. A config that cannot be read changes nothing: the last good one
 * stays and the error is reported. An older version than the one in force
 * is ignored (a stale retained message must not undo a newer one).
 */
import {
  boundRejected,
  CONFIG_SETTING_NAMES,
  type ConfigSettingName,
  type ConfigSettings,
  checkSettings,
  DesiredConfigSchema,
  decode,
  type ReportedState,
} from "@paylane/protocol";
import type { Level } from "pino";
import type { SettingsStore } from "../settings-store.ts";
import type { Uplink } from "../uplink.ts";
import type { OperatingMode } from "./kiosk-mode.ts";
import type { KioskKit } from "./kit.ts";
import type { Part } from "./lifecycle.ts";
import type { OfflineCaps } from "./offline-caps.ts";

const KEPT_SETTING = "desired-config";

/** The last good settings, as kept across restarts. */
interface KeptConfig {
  version: number;
  settings: ConfigSettings;
}

export interface ConfigDeskDeps {
  store: SettingsStore;
  mode: OperatingMode;
  offlineCaps: OfflineCaps;
  telemetry: { setIntervalMs(ms: number): void };
  uplink: Pick<Uplink, "publishState" | "setCloudLivenessMs">;
}

export class ConfigDesk implements Part {
  readonly name = "config desk";
  readonly #k: KioskKit;
  readonly #d: ConfigDeskDeps;
  #version = 0;
  #settings: ConfigSettings = {};
  /** Configs are applied one at a time, in arrival order. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(kit: KioskKit, deps: ConfigDeskDeps) {
    this.#k = kit;
    this.#d = deps;
  }

  /** The version in force (0: none received yet). */
  get version(): number {
    return this.#version;
  }

  /** Applies the last good settings kept from before the restart; the mode keeps its own (it may have changed since). */
  async start(): Promise<void> {
    const kept = await this.#d.store.get<KeptConfig>(KEPT_SETTING);
    if (!kept || typeof kept.version !== "number") return;
    const { accepted, rejected } = checkSettings(kept.settings ?? {});
    const { mode: _mode, ...live } = accepted;
    const failed = await this.#apply(live);
    this.#version = kept.version;
    this.#settings = { ...accepted };
    for (const r of [...rejected, ...failed]) delete this.#settings[r.field as ConfigSettingName];
    this.#k.log.info({ version: kept.version, settings: Object.keys(accepted) }, "kept configuration applied");
  }

  stop(): void {}

  /** The uplink's `onDesiredConfig`: applied as tracked work, one after another. */
  readonly onDesiredConfig = (payload: Buffer): void => {
    this.#k.work
      .track(this.receive(payload))
      .catch((err: Error) => this.#k.log.error({ err: err.message }, "desired configuration not handled"));
  };

  /** Handles one delivery of `config`; resolves with the state reported (undefined: nothing to report). */
  receive(payload: Buffer): Promise<ReportedState | undefined> {
    const run = this.#queue.then(() => this.#receive(payload));
    this.#queue = run.catch(() => {});
    return run;
  }

  /** What is in force now, as `state` reports it. */
  state(extra: Pick<ReportedState, "rejected"> & { error?: string } = { rejected: [] }): ReportedState {
    return {
      version: this.#version,
      applied: { ...this.#settings, mode: this.#d.mode.mode },
      rejected: extra.rejected,
      ...(extra.error ? { error: extra.error } : {}),
      at: this.#k.now().toISOString(),
    };
  }

  async #receive(payload: Buffer): Promise<ReportedState | undefined> {
    const log = this.#k.log;
    if (payload.length === 0) {
      log.info({ version: this.#version }, "desired configuration cleared: the settings in force stay");
      return undefined;
    }
    const desired = decode(DesiredConfigSchema, payload);
    if (!desired.ok) {
      const error = `desired configuration refused, nothing applied: ${desired.error.slice(0, 500)}`;
      log.error({ error: desired.error, version: this.#version }, "desired configuration unreadable: last good kept");
      return this.#report({ rejected: [], error });
    }
    const { version, settings, by } = desired.value;
    if (version < this.#version) {
      log.warn({ version, inForce: this.#version }, "desired configuration older than the one in force: ignored");
      return this.#report();
    }
    if (version === this.#version) return this.#report(); // the retained copy again (a reconnect): already answered
    const { accepted, rejected } = checkSettings(settings);
    const failed = await this.#apply(accepted, by);
    const applied: ConfigSettings = { ...this.#settings, ...accepted };
    for (const f of failed) {
      // Refused while applying: the previous value stays in force.
      if (f.field in this.#settings)
        (applied as Record<string, unknown>)[f.field] = this.#settings[f.field as ConfigSettingName];
      else delete applied[f.field as ConfigSettingName];
    }
    await this.#d.store.set(KEPT_SETTING, { version, settings: applied } satisfies KeptConfig, this.#k.now());
    this.#version = version;
    this.#settings = applied;
    const allRejected = [...rejected, ...failed];
    if (allRejected.length > 0) {
      log.warn({ version, rejected: boundRejected(allRejected) }, "desired configuration partly refused");
    }
    log.info(
      { version, applied: Object.keys(accepted).filter((k) => !failed.some((f) => f.field === k)) },
      "desired configuration applied",
    );
    return this.#report({ rejected: boundRejected(allRejected) });
  }

  #report(extra?: Parameters<ConfigDesk["state"]>[0]): ReportedState {
    const state = this.state(extra);
    this.#d.uplink.publishState(state);
    return state;
  }

  /** Applies each setting live; returns those that could not be, with why. */
  async #apply(settings: ConfigSettings, by = "config"): Promise<Array<{ field: string; reason: string }>> {
    const failed: Array<{ field: string; reason: string }> = [];
    for (const field of CONFIG_SETTING_NAMES) {
      if (settings[field] === undefined) continue;
      try {
        await this.#applyOne(field, settings, by);
      } catch (err) {
        failed.push({ field, reason: (err as Error).message });
      }
    }
    return failed;
  }

  async #applyOne(field: ConfigSettingName, s: ConfigSettings, by: string): Promise<void> {
    const { mode, offlineCaps, telemetry, uplink } = this.#d;
    switch (field) {
      case "idleTimeoutSeconds":
        mode.setIdleTimeout(s.idleTimeoutSeconds as number);
        return;
      case "telemetryIntervalSeconds":
        telemetry.setIntervalMs((s.telemetryIntervalSeconds as number) * 1000);
        return;
      case "cloudLivenessSeconds":
        uplink.setCloudLivenessMs((s.cloudLivenessSeconds as number) * 1000);
        return;
      case "offlineCaps":
        offlineCaps.set(s.offlineCaps ?? {});
        return;
      case "screenTexts":
        mode.setTexts(s.screenTexts ?? {});
        return;
      case "mode":
        if (s.mode && s.mode !== mode.mode) await mode.set(s.mode, by);
        return;
      case "logLevel":
        this.#k.log.level = s.logLevel as Level;
        return;
    }
  }
}
