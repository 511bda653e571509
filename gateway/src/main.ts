#!/usr/bin/env tsx
/**
 * `paylane-gateway`: the MQTT gateway plus its health and metrics endpoints,
 * configured from the environment (`paylane-gateway --help`).
 *
 * A start that fails is one line on stderr and a non-zero exit; SIGINT and
 * SIGTERM stop the gateway cleanly. The registry file is watched: a device
 * removed from it, or given a new secret, is disconnected within a second and
 * cannot reconnect; SIGHUP reloads it too.
 *
 * Its sub-commands (`operator add|remove`, `mosquitto-config`; admin-cli.ts)
 * work on files and exit without starting anything.
 */
import { createCommand, createLogger, environmentHelp, runService } from "@paylane/protocol/service";
import { ADMIN_COMMANDS, addAdminCommands } from "./admin-cli.ts";
import { GatewayEnvSchema, parseGatewayEnv } from "./config.ts";
import { GatewayService } from "./service.ts";

const NAME = "paylane-gateway";

const program = createCommand({
  name: NAME,
  packageJson: new URL("../package.json", import.meta.url),
  description:
    "The MQTT gateway (aedes: device authentication against the registry, deny-by-default topic ACLs, " +
    "client limits) and its /healthz and /metrics endpoints, until SIGINT or SIGTERM. " +
    "Configured by environment variables; a bad one stops it before anything listens, named.",
  sections: [{ title: "Environment", body: environmentHelp(GatewayEnvSchema) }],
  examples: [
    { command: `REGISTRY_PATH=/etc/paylane/registry.json ${NAME}`, does: "MQTT on 127.0.0.1:1883, HTTP on 8070" },
    {
      command: `REGISTRY_PATH=registry.json MQTT_HOST=0.0.0.0 MQTT_TLS_CERT=cert.pem MQTT_TLS_KEY=key.pem MQTT_WSS_PORT=8884 ${NAME}`,
      does: "also mqtts on 8883 and MQTT over secure WebSocket on 8884, on every interface",
    },
  ],
});

addAdminCommands(program);
// The gateway itself takes no arguments: with none, commander runs this no-op and runService starts it.
program.action(() => {});

if (ADMIN_COMMANDS.has(process.argv[2] ?? "")) {
  await program.parseAsync();
} else {
  runService(program, async () => {
    const config = parseGatewayEnv(process.env);
    const log = createLogger(NAME, config.logLevel);
    const gateway = new GatewayService({ config, logger: log });
    await gateway.start();
    return { service: gateway, log };
  });
}
