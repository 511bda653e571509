/**
 * The daemon's Peripherals for hardware tests, built as the daemon builds it:
 * a kiosk config with the hardware sections under test, a silent log and
 * real time (issue 17's "in health within 2 s" is wall-clock).
 */
import pino from "pino";
import { Signal } from "../../../test/support/signal.ts";
import { type DeviceConfig, type DeviceConfigInput, parseDeviceConfig } from "../../src/config.ts";
import { Peripherals, type PeripheralsHealth } from "../../src/peripherals.ts";
import { realTimers } from "../../src/timers.ts";

/** The kiosk's own fields; a test adds dataDir and its hardware sections. */
export const KIOSK = {
  site: "demo",
  device: "k1",
  secret: "0123456789abcdef0123",
  mqttUrl: "mqtt://127.0.0.1:9",
  cloudUrl: "http://127.0.0.1:9",
} as const;

/** Issue 17: every reader, printer or board change shows in Peripherals.health() within this long. */
export const HEALTH_MS = 2000;

export interface PeripheralsRig {
  config: DeviceConfig;
  peripherals: Peripherals;
  /** Notify on anything that may change what a test waits for: pass `signal.notify` as onChange. */
  signal: Signal;
  /**
   * Resolves with the ms it took until `check(health())` holds, re-checked on
   * every notify; fails past `ms`, naming `what` and the health it last saw.
   */
  healthWithin(check: (health: PeripheralsHealth) => boolean, what: string, ms?: number): Promise<number>;
}

export function peripheralsFor(
  dataDir: string,
  hardware: Omit<DeviceConfigInput, keyof typeof KIOSK | "dataDir">,
  signal = new Signal(),
): PeripheralsRig {
  const config = parseDeviceConfig({ ...KIOSK, dataDir, ...hardware });
  const peripherals = new Peripherals({
    config,
    logger: pino({ level: "silent" }),
    timers: realTimers,
    now: () => new Date(),
  });
  return {
    config,
    peripherals,
    signal,
    async healthWithin(check, what, ms = HEALTH_MS) {
      const t0 = performance.now();
      try {
        await signal.until(() => check(peripherals.health()), `${what} in Peripherals.health()`, ms);
      } catch (err) {
        throw new Error(`${(err as Error).message}; health: ${JSON.stringify(peripherals.health())}`);
      }
      return performance.now() - t0;
    },
  };
}
