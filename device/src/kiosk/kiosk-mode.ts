/**
 * The kiosk's operating mode (in service, maintenance, out of service) and
 * what its screen says in each: set by `cmd/set-mode` or by desired
 * configuration, kept across restarts, shown on the screen. Outside "in
 * service" a walk-up user is refused politely and nothing is journaled.
 */
import type { KioskMode } from "@paylane/protocol";
import type { ScreenSettings, TapResult } from "@paylane/protocol/kiosk-api";
import type { SettingsStore } from "../settings-store.ts";
import type { KioskKit } from "./kit.ts";

export type { KioskMode };

/** Texts an operator may set (desired configuration `screenTexts`); absent ones fall back to these. */
export const DEFAULT_SCREEN_TEXTS = {
  maintenance: "This kiosk is being serviced. Please ask at the desk.",
  outOfService: "This kiosk is out of service. Please ask at the desk.",
} as const;

const MODE_SETTING = "mode";

export class OperatingMode {
  readonly #k: KioskKit;
  readonly #store: SettingsStore;
  #mode: KioskMode;
  #texts: NonNullable<ScreenSettings["texts"]> = {};
  #idleTimeoutSeconds: number | undefined;

  private constructor(kit: KioskKit, store: SettingsStore, mode: KioskMode) {
    this.#k = kit;
    this.#store = store;
    this.#mode = mode;
  }

  /** The mode kept from before a restart ("in-service" on a new kiosk). */
  static async open(kit: KioskKit, store: SettingsStore): Promise<OperatingMode> {
    const kept = await store.get<KioskMode>(MODE_SETTING);
    const mode = kept === "maintenance" || kept === "out-of-service" ? kept : "in-service";
    if (mode !== "in-service") kit.log.warn({ mode }, "kiosk starts in the mode it was left in; taps are refused");
    return new OperatingMode(kit, store, mode);
  }

  get mode(): KioskMode {
    return this.#mode;
  }

  /** Walk-up users are served only in service. */
  get serving(): boolean {
    return this.#mode === "in-service";
  }

  /** What the screen shows beyond the kiosk's state: the mode, its texts, how long it waits on an idle screen. */
  get screen(): ScreenSettings {
    return {
      mode: this.#mode,
      texts: { ...this.#texts },
      ...(this.#idleTimeoutSeconds ? { idleTimeoutSeconds: this.#idleTimeoutSeconds } : {}),
    };
  }

  /** Persisted before it shows: after a restart the kiosk is in the mode it was told. */
  async set(mode: KioskMode, by: string): Promise<{ mode: KioskMode; previous: KioskMode }> {
    const previous = this.#mode;
    await this.#store.set(MODE_SETTING, mode, this.#k.now());
    this.#mode = mode;
    if (mode !== previous) this.#k.log.warn({ mode, previous, by }, "kiosk mode changed");
    this.#changed();
    return { mode, previous };
  }

  setTexts(texts: NonNullable<ScreenSettings["texts"]>): void {
    this.#texts = { ...texts };
    this.#changed();
  }

  setIdleTimeout(seconds: number): void {
    this.#idleTimeoutSeconds = seconds;
    this.#changed();
  }

  /** The polite answer to a tap or a code outside service: shown on the screen, journaled nowhere. */
  refusal(): TapResult {
    const message =
      this.#mode === "maintenance"
        ? (this.#texts.maintenance ?? DEFAULT_SCREEN_TEXTS.maintenance)
        : (this.#texts.outOfService ?? DEFAULT_SCREEN_TEXTS.outOfService);
    return { outcome: "refused", message, at: this.#k.now().toISOString() };
  }

  #changed(): void {
    this.#k.bus.emit("kiosk-mode-changed", this.screen);
  }
}
