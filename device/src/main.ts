#!/usr/bin/env -S npx tsx
/** `paylane-device --config kiosk.json`: runs one kiosk daemon until SIGINT/SIGTERM. */
import {
  ConfigError,
  createCommand,
  createLogger,
  EXIT_RESTART,
  environmentHelp,
  LogLevelSchema,
  parseEnv,
  runService,
} from "@paylane/protocol/service";
import { z } from "zod";

const NAME = "paylane-device";

/** Everything else is in the config file. */
const DeviceEnvSchema = z.object({ LOG_LEVEL: LogLevelSchema });

const program = createCommand({
  name: NAME,
  packageJson: new URL("../package.json", import.meta.url),
  description:
    "Runs one kiosk daemon (reader, printer, GPIO, journal, uplink, local API for the touch UI) until SIGINT or SIGTERM. " +
    "The config file is described in docs/kiosk-config.md; reader.type is required, and an unknown key is refused. " +
    "A kiosk.json without secret starts setup mode: the touch UI's setup screen, diagnostics, and enrolment with " +
    "the claim code in kiosk.json (claim) or typed on the screen; once enrolled the daemon starts, without a restart. " +
    "The local API's per-boot token is written to <dataDir>/local-api-token (0600).",
  sections: [{ title: "Environment", body: environmentHelp(DeviceEnvSchema) }],
  examples: [
    { command: `${NAME} --config /etc/paylane/kiosk.json`, does: "run the kiosk this file describes" },
    { command: `LOG_LEVEL=debug ${NAME} -c kiosk.json`, does: "the same, logging every step" },
  ],
}).option("-c, --config <file>", "the kiosk's JSON configuration (required; docs/kiosk-config.md)");

runService<{ config?: string }>(program, async ({ config }) => {
  // Not a commander requiredOption: that check comes first, and would hide a mistyped flag behind it.
  if (!config) throw new ConfigError(`missing --config: the kiosk's JSON config file (see ${NAME} --help)`);
  const env = parseEnv(DeviceEnvSchema, process.env);
  const log = createLogger(NAME, env.LOG_LEVEL);
  // Loaded only to run: `--help`, `--version` and a bad flag answer without the daemon's dependencies.
  const { KioskRunner } = await import("./setup/kiosk-runner.ts");
  const kiosk: InstanceType<typeof KioskRunner> = new KioskRunner({
    configPath: config,
    logger: log,
    // cmd/reboot, once the customer at the kiosk is done: a clean stop, then an exit its supervisor restarts.
    restart: () => {
      log.warn({ exitCode: EXIT_RESTART }, "restarting as asked: stopping, then exiting for the supervisor to restart");
      void kiosk
        .stop()
        .catch((err: Error) => log.error({ err: err.message }, "stop before the restart failed"))
        .finally(() => process.exit(EXIT_RESTART));
    },
  });
  await kiosk.start();
  // Under systemd (Type=notify, WatchdogSec): ready once serving, then a ping every half watchdog period, so a
  // hung event loop is restarted. Outside systemd these do nothing.
  const { startSystemdNotify } = await import("./systemd/index.ts");
  const systemd = startSystemdNotify({ log });
  systemd.ready();
  const service = {
    stop: async () => {
      systemd.stopping();
      await kiosk.stop();
      systemd.stop();
    },
  };
  return { service, log };
});
