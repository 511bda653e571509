#!/usr/bin/env -S npx tsx
/** `paylane-cloud`: the cloud API and MQTT bridge, configured from the environment. */
import { createCommand, createLogger, environmentHelp, runService } from "@paylane/protocol/service";
import { CloudService } from "./cloud.ts";
import { CloudEnvSchema, parseCloudEnv } from "./config.ts";

const NAME = "paylane-cloud";

const program = createCommand({
  name: NAME,
  packageJson: new URL("../package.json", import.meta.url),
  description:
    "The cloud API (Hono) and the MQTT → Postgres bridge, configured from the environment, " +
    "until SIGINT or SIGTERM; CLOUD_ROLE runs the API or the bridge alone (docs/scale-bridges.md). " +
    "A bad variable stops it before anything starts, named.",
  sections: [{ title: "Environment", body: environmentHelp(CloudEnvSchema) }],
  examples: [
    {
      command: `REGISTRY_PATH=registry.json ${NAME}`,
      does: "PGlite in memory, presence in process, broker on 127.0.0.1:1883",
    },
    {
      command: `REGISTRY_PATH=registry.json DATABASE_URL=postgres://db/paylane REDIS_URL=redis://cache ${NAME}`,
      does: "Postgres and Redis",
    },
    {
      command: `CLOUD_ROLE=bridge CLOUD_SITES=venue-1,venue-2 REGISTRY_PATH=registry.json DATABASE_URL=postgres://db/paylane ${NAME}`,
      does: "one of N bridges: ingest of two sites on $share/bridge/…, HTTP only /healthz /readyz /metrics",
    },
  ],
});

runService(program, async () => {
  const config = parseCloudEnv(process.env);
  const log = createLogger(NAME, config.LOG_LEVEL);
  const cloud = new CloudService({ config, logger: log, defaultMetrics: true });
  await cloud.start();
  return { service: cloud, log };
});
