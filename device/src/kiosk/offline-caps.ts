/**
 * Offline payment caps set by ops (desired configuration `offlineCaps`):
 * they lower the site's offline limits at this kiosk, never raise them, so
 * a kiosk in a risky spot can take less while it cannot reach the cloud.
 */
import type { ConfigSettings, OfflineLimits } from "@paylane/protocol";

export type OfflineCapsSetting = NonNullable<ConfigSettings["offlineCaps"]>;

export class OfflineCaps {
  #caps: OfflineCapsSetting = {};

  get caps(): OfflineCapsSetting {
    return { ...this.#caps };
  }

  set(caps: OfflineCapsSetting): void {
    this.#caps = { ...caps };
  }

  /** The site's limits with this kiosk's caps applied: each the lower of the two. */
  readonly lower = (limits: OfflineLimits): OfflineLimits => {
    const { perCardMinor, perKioskMinor } = this.#caps;
    return {
      ...limits,
      ...(perCardMinor !== undefined ? { perCardDaily: Math.min(limits.perCardDaily, perCardMinor) } : {}),
      ...(perKioskMinor !== undefined ? { kioskExposure: Math.min(limits.kioskExposure, perKioskMinor) } : {}),
    };
  };
}
