#!/usr/bin/env -S npx tsx
/** `paylane-cloud`: the cloud API and MQTT bridge, configured from the environment. */
import { runService } from "@paylane/protocol/service";
import pino from "pino";
import { CloudService } from "./cloud.ts";
import { parseCloudEnv } from "./config.ts";

const log = pino({
  name: "paylane-cloud",
  level: process.env.LOG_LEVEL ?? "info",
  timestamp: pino.stdTimeFunctions.isoTime,
});

runService(log, async () => {
  const cloud = new CloudService({ config: parseCloudEnv(process.env), logger: log, defaultMetrics: true });
  await cloud.start();
  return cloud;
});
