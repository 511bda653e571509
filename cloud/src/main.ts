#!/usr/bin/env -S npx tsx
/** `paylane-cloud`: the cloud API and MQTT bridge, configured from the environment. */
import pino from "pino";
import { CloudService } from "./cloud.ts";
import { parseCloudEnv } from "./config.ts";

const log = pino({ name: "paylane-cloud", level: process.env.LOG_LEVEL ?? "info" });

async function main(): Promise<void> {
  const cloud = new CloudService({ config: parseCloudEnv(process.env), logger: log, defaultMetrics: true });
  await cloud.start();
  const shutdown = (signal: string) => {
    log.info({ signal }, "stopping");
    cloud.stop().then(
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
  log.fatal({ err: (err as Error).message }, "cloud failed to start");
  process.exitCode = 1;
});
