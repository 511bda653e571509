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

const USAGE = `
paylane-cloud

The cloud API (Hono) and the MQTT → Postgres bridge, configured from the
environment, until SIGINT or SIGTERM. The full list is in the README
("Cloud (paylane-cloud, environment)"); the main ones:

  REGISTRY_PATH        device registry JSON (required; watched, SIGHUP reloads it)
  MQTT_URL             broker (default mqtt://127.0.0.1:1883)
  CLOUD_MQTT_SECRET    the bridge's secret (username svc:cloud)
  DATABASE_URL         Postgres (unset: PGlite, in PGLITE_DIR or in memory)
  REDIS_URL            presence and rate limits in Redis (unset: in process)
  CLOUD_PORT / CLOUD_HOST   HTTP listener (default 8080 / 127.0.0.1)
  CLOUD_JWT_SECRET     verifies operator tokens (with CLOUD_JWT_ISSUER, CLOUD_JWT_AUDIENCE)
  METRICS_TOKEN        bearer token for /metrics (or CLOUD_METRICS_PORT for a local listener)
  LOG_LEVEL            pino level (default info)

  -h, --help           this text
`;

runService(
  log,
  async () => {
    const cloud = new CloudService({ config: parseCloudEnv(process.env), logger: log, defaultMetrics: true });
    await cloud.start();
    return cloud;
  },
  USAGE,
);
