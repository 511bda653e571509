/**
 * Picks the GPIO backend the config asks for, and logs which it picked and
 * why, once, at start. "auto" takes the kernel's character device where one
 * opens (and gpiod is installed), then sysfs where export is writable; with
 * neither it refuses to start on a Raspberry Pi (a relay that silently does
 * nothing is worse than a kiosk that says it cannot run), and anywhere else
 * it simulates with a warning.
 */
import type { Logger } from "pino";
import type { Timers } from "../../timers.ts";
import { type GpioBackend, GpioConfigError } from "./backend.ts";
import { type Chardev, ChardevGpio } from "./chardev.ts";
import type { GpioConfig } from "./config.ts";
import { GpiodTools } from "./gpiod-tools.ts";
import { type FirmataIo, JohnnyFiveGpio } from "./johnny-five.ts";
import { loadOnoff, OnoffGpio, type OnoffModule } from "./onoff.ts";
import { isRaspberryPi, openableChips, readBoardModel, sysfsExportWritable } from "./probe.ts";
import { SimulatedGpio } from "./simulated.ts";
import { SysfsGpio } from "./sysfs.ts";

export interface GpioBackendDeps {
  timers: Timers;
  logger: Logger;
  now?: () => Date;
  /** Loads onoff; injectable so tests can say "no GPIO here" on any machine. */
  loadOnoff?: () => Promise<OnoffModule>;
  /** The character device driver; default: the gpiod tools on PATH. Tests pass a fake chip or fake tools. */
  chardev?: Chardev;
  /** The Firmata io for backend "johnny-five", opened by the daemon on gpio.johnnyFive.path. */
  io?: FirmataIo;
  /** Opens the board's io again after it was lost (the daemon's openFirmata): with it, the board is reopened. */
  openIo?: () => FirmataIo;
  /** Closes an io given up on (its serial port). */
  closeIo?: (io: FirmataIo) => void;
}

export async function createGpioBackend(config: GpioConfig, deps: GpioBackendDeps): Promise<GpioBackend> {
  const log = deps.logger.child({ component: "gpio" });
  const pick = (backend: GpioBackend, reason?: string): GpioBackend => {
    log.info({ backend: backend.kind, reason }, `GPIO backend: ${backend.describe()}`);
    return backend;
  };
  const chardev = () =>
    new ChardevGpio({
      chardev: deps.chardev ?? new GpiodTools({ timers: deps.timers }),
      timers: deps.timers,
      logger: log,
    });
  switch (config.backend) {
    case "simulated":
      return pick(new SimulatedGpio({ now: deps.now, reason: 'gpio.backend is "simulated"' }));
    case "sysfs":
      return pick(new SysfsGpio({ root: config.sysfsRoot, timers: deps.timers }));
    case "chardev":
      return pick(chardev());
    case "johnny-five": {
      const io = deps.io ?? deps.openIo?.();
      if (!io) {
        throw new GpioConfigError('gpio.backend "johnny-five" needs a Firmata io opened on gpio.johnnyFive.path');
      }
      return pick(
        new JohnnyFiveGpio({
          io,
          ownsIo: deps.io === undefined,
          openIo: deps.openIo,
          closeIo: deps.closeIo,
          timers: deps.timers,
          readyTimeoutMs: config.johnnyFive?.readyTimeoutMs,
          logger: log,
        }),
      );
    }
    case "onoff":
    case "auto": {
      const reasons: string[] = [];
      if (config.backend === "auto") {
        const why = await chardevUnavailable(
          config.chardevDir,
          deps.chardev ?? new GpiodTools({ timers: deps.timers }),
        );
        if (!why) return pick(chardev());
        reasons.push(why);
      }
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
      // Without onoff's epoll addon, plain sysfs still works where export is writable.
      if (!onoff && (await sysfsExportWritable(config.sysfsRoot))) {
        return pick(new SysfsGpio({ root: config.sysfsRoot, timers: deps.timers }), unavailable);
      }
      reasons.push(
        onoff
          ? "sysfs GPIO is not usable (Gpio.accessible is false: /sys/class/gpio/export cannot be opened for writing)"
          : `${unavailable}, and ${config.sysfsRoot}/export is not writable`,
      );
      const model = await readBoardModel(config.deviceTreeModel);
      if (isRaspberryPi(model)) throw new GpioConfigError(piRefusal(model as string, reasons));
      const reason = reasons.join("; ");
      const backend = new SimulatedGpio({ now: deps.now, reason });
      log.warn({ backend: backend.kind, reason }, `GPIO backend: ${backend.describe()}`);
      return backend;
    }
  }
}

/** Why the character device cannot be used here, or undefined when it can. */
async function chardevUnavailable(dir: string, chardev: Chardev): Promise<string | undefined> {
  const { why } = await openableChips(dir);
  if (why) return `no GPIO character device opens (${why})`;
  try {
    if ((await chardev.chips()).length > 0) return undefined;
    return "gpiodetect lists no chips";
  } catch (err) {
    return `GPIO character devices are there but ${chardev.describe()} cannot list them: ${(err as Error).message}`;
  }
}

/** The one line a Pi without working GPIO stops with. */
function piRefusal(model: string, reasons: string[]): string {
  return (
    `gpio.backend "auto": this is a ${model} but no GPIO backend works (${reasons.join("; ")}); ` +
    `add the daemon's user to the "gpio" group (sudo usermod -aG gpio <user>) and restart it, ` +
    `or set gpio.backend to "simulated" to run this kiosk without GPIO on purpose`
  );
}
