#!/usr/bin/env -S npx tsx
/** `paylane-device --config kiosk.json`: runs one kiosk daemon until SIGINT/SIGTERM. */
import { parseArgs } from "node:util";
import { runService } from "@paylane/protocol/service";
import pino from "pino";
import { loadDeviceConfig } from "./config.ts";
import { KioskDaemon } from "./daemon.ts";

const log = pino({
  name: "paylane-device",
  level: process.env.LOG_LEVEL ?? "info",
  timestamp: pino.stdTimeFunctions.isoTime,
});

runService(log, async () => {
  const { values } = parseArgs({ options: { config: { type: "string", short: "c" } }, strict: true });
  if (!values.config) throw new Error("missing --config: path to the kiosk's JSON config file");
  const daemon = new KioskDaemon({ config: await loadDeviceConfig(values.config), logger: log });
  await daemon.start();
  return daemon;
});
