#!/usr/bin/env tsx
/**
 * `paylane-gateway`: the MQTT gateway plus its health and metrics endpoints.
 *
 *   MQTT_PORT          MQTT listen port (default 1883)
 *   MQTT_HOST          listen address for MQTT and HTTP (default 0.0.0.0)
 *   GATEWAY_HTTP_PORT  /healthz and /metrics port (default 8070)
 *   REGISTRY_PATH      device registry JSON (required); SIGHUP reloads it
 *   LOG_LEVEL          pino level (default info)
 *
 * Startup errors are one line on stderr and a non-zero exit; SIGINT and
 * SIGTERM stop the gateway cleanly.
 */
import { createServer, type Server } from "node:http";
import { getRequestListener } from "@hono/node-server";
import { Registry } from "@paylane/protocol";
import { pino } from "pino";
import { collectDefaultMetrics, Registry as MetricsRegistry } from "prom-client";
import { ConfigError, type GatewayConfig, listenErrorMessage, parseEnv } from "./config.ts";
import { Gateway } from "./gateway.ts";
import { createGatewayHttp } from "./http.ts";

const NAME = "paylane-gateway";

/** Exit codes: 1 = could not start, 2 = bad configuration. */
class StartupError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

function closeHttp(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    // Keep-alive connections would hold close() open.
    server.closeAllConnections();
  });
}

async function loadRegistry(path: string): Promise<Registry> {
  try {
    return await Registry.load(path);
  } catch (err) {
    throw new StartupError(`REGISTRY_PATH: ${(err as Error).message}`);
  }
}

async function run(config: GatewayConfig): Promise<void> {
  const logger = pino({ name: NAME, level: config.logLevel, timestamp: pino.stdTimeFunctions.isoTime });
  const registry = await loadRegistry(config.registryPath);
  const metrics = new MetricsRegistry();
  collectDefaultMetrics({ register: metrics });

  const gateway = new Gateway({ registry, port: config.mqttPort, host: config.mqttHost, logger, metrics });
  try {
    await gateway.start();
  } catch (err) {
    throw new StartupError(
      listenErrorMessage(err, {
        what: "MQTT",
        host: config.mqttHost,
        port: config.mqttPort,
        portVariable: "MQTT_PORT",
        hostVariable: "MQTT_HOST",
      }),
    );
  }

  const http = createServer(getRequestListener(createGatewayHttp({ gateway, metrics, logger }).fetch));
  try {
    await listen(http, config.httpPort, config.mqttHost);
  } catch (err) {
    await gateway.stop();
    throw new StartupError(
      listenErrorMessage(err, {
        what: "HTTP",
        host: config.mqttHost,
        port: config.httpPort,
        portVariable: "GATEWAY_HTTP_PORT",
        hostVariable: "MQTT_HOST",
      }),
    );
  }
  const httpAddress = http.address();
  logger.info(
    { port: typeof httpAddress === "object" && httpAddress ? httpAddress.port : config.httpPort },
    "health and metrics listening",
  );

  // New devices are enrolled by rewriting the registry file; SIGHUP picks them up.
  const reload = () => {
    Registry.load(config.registryPath).then(
      (next) => {
        gateway.replaceRegistry(next);
        logger.info({ devices: next.devices.length }, "registry reloaded");
      },
      (err: unknown) => logger.error({ err }, "registry reload failed; keeping the previous registry"),
    );
  };
  process.on("SIGHUP", reload);

  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  logger.info({ signal }, "stopping");
  // A second signal while stopping means "now".
  const force = () => process.exit(1);
  process.once("SIGINT", force);
  process.once("SIGTERM", force);
  process.off("SIGHUP", reload);
  await Promise.all([gateway.stop(), closeHttp(http)]);
  process.off("SIGINT", force);
  process.off("SIGTERM", force);
  logger.info("stopped");
}

async function main(): Promise<number> {
  try {
    await run(parseEnv(process.env));
    return 0;
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${NAME}: ${err.message}\n`);
      return 2;
    }
    if (err instanceof StartupError) {
      process.stderr.write(`${NAME}: ${err.message}\n`);
      return err.exitCode;
    }
    process.stderr.write(`${NAME}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return 1;
  }
}

process.exitCode = await main();
