#!/usr/bin/env tsx
/**
 * `paylane-gateway`: the MQTT gateway plus its health and metrics endpoints.
 * The environment it reads is `HELP` below (`paylane-gateway --help`).
 *
 * Startup errors are one line on stderr and a non-zero exit; SIGINT and
 * SIGTERM stop the gateway cleanly. The registry file is watched: a device
 * removed from it, or given a new secret, is disconnected within a second and
 * cannot reconnect; SIGHUP reloads it too.
 */
import { createServer, type Server } from "node:http";
import { getRequestListener } from "@hono/node-server";
import { Registry, watchRegistry } from "@paylane/protocol";
import { pino } from "pino";
import { collectDefaultMetrics, Registry as MetricsRegistry } from "prom-client";
import { ConfigError, type GatewayConfig, listenErrorMessage, loadTlsFiles, parseEnv } from "./config.ts";
import { Gateway, type Transport } from "./gateway.ts";
import { createGatewayHttp } from "./http.ts";

const NAME = "paylane-gateway";

const HELP = `Usage: ${NAME}   (configured by environment variables)

  REGISTRY_PATH               device registry JSON (required); watched, and SIGHUP reloads it
  MQTT_PORT                   plain MQTT port (default 1883)
  MQTT_HOST                   listen address for every listener and HTTP (default 127.0.0.1)
  MQTT_TLS_CERT, MQTT_TLS_KEY PEM certificate chain and key; set, they turn on mqtts
  MQTT_TLS_PORT               mqtts port (default 8883 when the certificate is set)
  MQTT_WSS_PORT               MQTT over secure WebSocket port (same certificate; unset: off)
  MQTT_MAX_PACKET_BYTES       largest MQTT packet, header included (default 262144)
  MQTT_CONNECT_TIMEOUT_MS     close a connection with no CONNECT by then (default 10000)
  MQTT_CONNECTS_PER_ADDRESS   new connections per source address per window (default 100)
  MQTT_CONNECT_WINDOW_S       that window, seconds (default 10)
  MQTT_AUTH_CHECKS_PER_ADDRESS  password checks running at once per source address (default 2)
  MQTT_AUTH_FAILURES_PER_ADDRESS  failed password checks per source address per minute (default 10)
  MQTT_MESSAGES_PER_SECOND    PUBLISH packets per second per device; more closes it (default 1000)
  GATEWAY_HTTP_PORT           /healthz and /metrics port (default 8070)
  LOG_LEVEL                   pino level (default info)
`;

/** The variables that set each listener's port, for a listen error. */
const PORT_VARIABLES: Record<Transport, { what: string; portVariable: string }> = {
  mqtt: { what: "MQTT", portVariable: "MQTT_PORT" },
  mqtts: { what: "MQTT over TLS", portVariable: "MQTT_TLS_PORT" },
  wss: { what: "MQTT over secure WebSocket", portVariable: "MQTT_WSS_PORT" },
};

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

  const tls = config.tls ? await loadTlsFiles(config.tls) : undefined;

  const gateway = new Gateway({
    registry,
    port: config.mqttPort,
    host: config.mqttHost,
    logger,
    metrics,
    limits: config.limits,
    tls,
    tlsPort: config.tls?.port,
    wssPort: config.tls?.wssPort,
  });
  try {
    await gateway.start();
  } catch (err) {
    const failed = (err as { transport?: Transport; port?: number }).transport ?? "mqtt";
    throw new StartupError(
      listenErrorMessage(err, {
        ...PORT_VARIABLES[failed],
        host: config.mqttHost,
        port: (err as { port?: number }).port ?? config.mqttPort,
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

  // Devices are enrolled, removed and rotated by rewriting the registry file: the watch
  // applies it at once (revoked sessions are closed), SIGHUP forces a reload.
  const stopWatching = watchRegistry(config.registryPath, (next) => gateway.replaceRegistry(next), logger);
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
  stopWatching();
  await Promise.all([gateway.stop(), closeHttp(http)]);
  process.off("SIGINT", force);
  process.off("SIGTERM", force);
  logger.info("stopped");
}

async function main(): Promise<number> {
  if (process.argv.includes("--help") || process.argv.includes("-h")) {
    process.stdout.write(HELP);
    return 0;
  }
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
