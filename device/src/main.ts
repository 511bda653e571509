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

const USAGE = `
paylane-device --config kiosk.json

Runs one kiosk daemon (reader, printer, GPIO, journal, uplink, local API for the
touch UI) until SIGINT or SIGTERM. The config file is described in
docs/kiosk-config.md; \`reader.type\` is required.

  -c, --config FILE   the kiosk's JSON configuration
  -h, --help          this text

Environment: LOG_LEVEL (pino level, default info).
The local API's per-boot token is written to <dataDir>/local-api-token (0600).
`;

runService(
  log,
  async () => {
    const { values } = parseArgs({ options: { config: { type: "string", short: "c" } }, strict: true });
    if (!values.config) throw new Error("missing --config: path to the kiosk's JSON config file (see --help)");
    const daemon = new KioskDaemon({ config: await loadDeviceConfig(values.config), logger: log });
    await daemon.start();
    return daemon;
  },
  USAGE,
);
