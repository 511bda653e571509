/** A kiosk kit for tests of single parts: a real bus and work tracker, a fake clock, a silent log. */
import pino from "pino";
import { type DeviceConfigInput, parseDeviceConfig } from "../src/config.ts";
import { createKioskBus } from "../src/kiosk/events.ts";
import type { KioskKit } from "../src/kiosk/kit.ts";
import { WorkInProgress } from "../src/work.ts";
import { FakeTimers } from "./fake-timers.ts";

export function testKit(dataDir: string, config: Partial<DeviceConfigInput> = {}): KioskKit & { clock: FakeTimers } {
  const clock = new FakeTimers();
  return {
    clock,
    config: parseDeviceConfig({
      site: "s1",
      device: "k1",
      secret: "kit-secret-0123456789",
      mqttUrl: "mqtt://127.0.0.1:9",
      cloudUrl: "http://127.0.0.1:9",
      dataDir,
      reader: { type: "pn532-simulator" },
      ...config,
    }),
    bus: createKioskBus(),
    work: new WorkInProgress(),
    timers: clock,
    now: clock.now,
    log: pino({ level: "silent" }),
    bootedAt: clock.now(),
  };
}
