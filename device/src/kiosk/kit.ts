/** What every part of the kiosk is built with: its config, the bus, the clock, the log, and the work tracker. */
import type { Logger } from "pino";
import type { DeviceConfig } from "../config.ts";
import type { Timers } from "../timers.ts";
import type { WorkInProgress } from "../work.ts";
import type { KioskBus } from "./events.ts";

export interface KioskKit {
  config: DeviceConfig;
  bus: KioskBus;
  /** Work that uses the stores: stopping waits for it before closing them. */
  work: WorkInProgress;
  timers: Timers;
  now: () => Date;
  log: Logger;
  bootedAt: Date;
}
