/**
 * Picks the GPIO backend the config asks for. "auto" uses onoff where this
 * machine has GPIO and otherwise the simulated backend, and logs which it
 * picked and why, once, at start.
 */
import type { Logger } from "pino";
import type { Timers } from "../../timers.ts";
import { type GpioBackend, GpioConfigError } from "./backend.ts";
import type { GpioConfig } from "./config.ts";
import { type FirmataIo, JohnnyFiveGpio } from "./johnny-five.ts";
import { loadOnoff, OnoffGpio, type OnoffModule } from "./onoff.ts";
import { SimulatedGpio } from "./simulated.ts";
import { SysfsGpio } from "./sysfs.ts";

export interface GpioBackendDeps {
  timers: Timers;
  logger: Logger;
  now?: () => Date;
  /** Loads onoff; injectable so tests can say "no GPIO here" on any machine. */
  loadOnoff?: () => Promise<OnoffModule>;
  /** The Firmata io for backend "johnny-five", opened by the daemon on gpio.johnnyFive.path. */
  io?: FirmataIo;
}

export async function createGpioBackend(config: GpioConfig, deps: GpioBackendDeps): Promise<GpioBackend> {
  const log = deps.logger.child({ component: "gpio" });
  const pick = (backend: GpioBackend, reason?: string): GpioBackend => {
    log.info({ backend: backend.kind, reason }, `GPIO backend: ${backend.describe()}`);
    return backend;
  };
  switch (config.backend) {
    case "simulated":
      return pick(new SimulatedGpio({ now: deps.now, reason: 'gpio.backend is "simulated"' }));
    case "sysfs":
      return pick(new SysfsGpio({ root: config.sysfsRoot, timers: deps.timers }));
    case "johnny-five": {
      if (!deps.io) {
        throw new GpioConfigError('gpio.backend "johnny-five" needs a Firmata io opened on gpio.johnnyFive.path');
      }
      return pick(
        new JohnnyFiveGpio({ io: deps.io, timers: deps.timers, readyTimeoutMs: config.johnnyFive?.readyTimeoutMs }),
      );
    }
    case "onoff":
    case "auto": {
      let onoff: OnoffModule | undefined;
      let unavailable: string;
      try {
        onoff = await (deps.loadOnoff ?? loadOnoff)();
        unavailable =
          "no GPIO on this machine (Gpio.accessible is false: /sys/class/gpio/export cannot be opened for writing)";
      } catch (err) {
        unavailable = `onoff cannot be loaded: ${(err as Error).message}`;
      }
      if (onoff?.Gpio.accessible) return pick(new OnoffGpio({ onoff, sysfsRoot: config.sysfsRoot }));
      if (config.backend === "onoff") {
        throw new GpioConfigError(
          `gpio.backend is "onoff" but ${unavailable}; use "auto" to fall back to the simulated backend`,
        );
      }
      const backend = new SimulatedGpio({ now: deps.now, reason: unavailable });
      log.warn({ backend: backend.kind, reason: unavailable }, `GPIO backend: ${backend.describe()}`);
      return backend;
    }
  }
}
