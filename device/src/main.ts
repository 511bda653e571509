#!/usr/bin/env -S npx tsx
/** `paylane-device --config kiosk.json`: runs one kiosk daemon until SIGINT/SIGTERM. */
import { parseArgs } from "node:util";
import pino from "pino";
import { loadDeviceConfig } from "./config.ts";
import { KioskDaemon } from "./daemon.ts";

const log = pino({ name: "paylane-device", level: process.env.LOG_LEVEL ?? "info" });

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { config: { type: "string", short: "c" } }, strict: true });
  if (!values.config) throw new Error("missing --config: path to the kiosk's JSON config file");
  const config = await loadDeviceConfig(values.config);
  const daemon = new KioskDaemon({ config, logger: log });
  await daemon.start();
  const shutdown = (signal: string) => {
    log.info({ signal }, "stopping");
    daemon.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, "stop failed");
        process.exit(1);
      },
    );
  };
  process.once("SIGINT", () => shutdown("SIGINT"));
  process.once("SIGTERM", () => shutdown("SIGTERM"));
}

main().catch((err: unknown) => {
  log.fatal({ err: (err as Error).message }, "kiosk daemon failed to start");
  process.exitCode = 1;
});
