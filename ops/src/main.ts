#!/usr/bin/env -S node --import tsx
/**
 * `paylane-ops`: the fleet over MQTT, with an operator's own login: watch
 * every kiosk, send a command and see its result, tail one kiosk, read and
 * set desired configuration, follow alerts. This file is the composition:
 * flags (commander, the shared createCommand), then one module a sub-command.
 */
import { COMMAND_NAMES } from "@paylane/protocol";
import { ConfigError, createCommand, EXIT, oneLine } from "@paylane/protocol/service";
import { type Command, InvalidArgumentError, Option } from "commander";
import type { MqttClient } from "mqtt";
import { alerts } from "./alerts.ts";
import { collect, parseKiosk } from "./arguments.ts";
import { configGet, configSet, parseSettings } from "./config.ts";
import {
  type ConnectionOptions,
  connect,
  DEFAULT_URL,
  type LoginRole,
  OpsError,
  ROLES,
  resolveLogin,
  whoOf,
} from "./connection.ts";
import { buildCommand, send } from "./send.ts";
import { tail } from "./tail.ts";
import { watch } from "./watch.ts";

const NAME = "paylane-ops";

const ENVIRONMENT = [
  `  MQTT_URL              the broker, when --url is not given (default ${DEFAULT_URL})`,
  "  PAYLANE_OPS_USERNAME  the operator login (ops:{id}), when --username is not given",
  "  PAYLANE_OPS_PASSWORD  its password, when --password is not given (safer than the flag: not in ps or history)",
  "  PAYLANE_DATA          npm start's data folder, where --credentials defaults to ops-credentials.json (default .paylane)",
  "  NO_COLOR              set: no colours",
].join("\n");

const program = createCommand({
  name: NAME,
  packageJson: new URL("../package.json", import.meta.url),
  description:
    "Operates the PayLane fleet over MQTT with an operator login (viewer: read; operator: also send commands and " +
    "configuration to its sites). Works against the PayLane gateway (aedes) or any MQTT broker with the same topics, " +
    "such as Mosquitto.",
  errorPrefix: `${NAME}:`,
  sections: [
    { title: "Environment", body: ENVIRONMENT },
    {
      title: "Exit codes",
      body: "  0 done · 1 failed (refused login, refused publish, command failed or expired) · 2 bad usage · 3 timed out waiting",
    },
  ],
  examples: [
    {
      command: `${NAME} watch`,
      does: "a live table of the demo site's kiosks (npm start's ops-credentials.json, as viewer)",
    },
    {
      command: `${NAME} send demo/k1 self-test --wait`,
      does: "run a self-test on kiosk k1 and print its result (as operator)",
    },
    {
      command: `${NAME} config set demo/k1 mode=maintenance --wait`,
      does: "put k1 in maintenance and wait for it to apply",
    },
    { command: `${NAME} alerts --once --json`, does: "the alerts firing now, one JSON line each" },
  ],
});

const seconds = (what: string, max: number) => (value: string) => {
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > max) {
    throw new InvalidArgumentError(`expected ${what}, whole seconds from 1 to ${max}`);
  }
  return Number(value);
};
const waitSeconds = seconds("how long to wait", 3600);
const DEFAULT_WAIT_S = 30;
const DEFAULT_EXPIRY_S = 120;

/** The connection flags, on every sub-command so each one's --help shows them. */
function withConnection(cmd: Command, defaultRole: LoginRole): Command {
  return cmd
    .option("--url <url>", `the broker (env MQTT_URL; default ${DEFAULT_URL})`)
    .option("--credentials <file>", "an ops-credentials.json (default: npm start's, in PAYLANE_DATA, when it exists)")
    .addOption(new Option("--as <role>", `which login of the credentials file (default ${defaultRole})`).choices(ROLES))
    .option("--username <user>", "the operator login, e.g. ops:alice (env PAYLANE_OPS_USERNAME)")
    .option("--password <password>", "its password (env PAYLANE_OPS_PASSWORD; never printed)")
    .option("--json", "one JSON object a line, for scripts", false);
}

interface CommonOptions extends ConnectionOptions {
  json: boolean;
}

/** The operator id the login stands for, for `by` (the gateway stamps the real one anyway). */
const operatorId = (username?: string) => (username?.startsWith("ops:") ? username.slice(4) : undefined);

/** Connects with the flags' login, runs `body`, closes, and exits with its code. */
async function run(
  o: CommonOptions,
  defaultRole: LoginRole,
  body: (client: MqttClient, who: string, by?: string) => Promise<number>,
) {
  const login = resolveLogin(o, defaultRole);
  const client = await connect(login);
  let code: number;
  try {
    code = await body(client, whoOf(login), operatorId(login.username));
  } finally {
    // endAsync on a connection the broker already closed never settles.
    if (client.connected) await client.endAsync().catch(() => {});
    else client.end(true);
  }
  process.exitCode = code;
}

const waitOption = () =>
  new Option("--wait [seconds]", `wait for the final answer (default ${DEFAULT_WAIT_S} s)`).argParser(waitSeconds);
const waitValue = (w: number | boolean | undefined) =>
  w === undefined || w === false ? undefined : w === true ? DEFAULT_WAIT_S : w;

withConnection(
  program
    .command("watch")
    .description(
      "A live table of every kiosk: status and since, last seen, backlog, oldest unacked, peripherals, mode, cloud link, config drift. Kiosks silent for 3 telemetry intervals are marked stale.",
    )
    .option("--site <id>", "one site (default: every site the login may read)", "+")
    .option(
      "--once [seconds]",
      "print the fleet once and exit: what the broker retains (status, config, state); with seconds, also up to that long for online kiosks' telemetry",
      waitSeconds,
    )
    .addHelpText(
      "after",
      `\nExamples:\n  $ ${NAME} watch --site demo\n  $ ${NAME} watch --json | jq 'select(.status == "offline")'`,
    ),
  "viewer",
).action((o: CommonOptions & { site: string; once?: number | boolean }) => {
  const once = o.once === undefined || o.once === false ? false : o.once === true ? 0 : o.once;
  return run(o, "viewer", (client, who) => watch(client, who, { site: o.site, json: o.json, once }));
});

withConnection(
  program
    .command("send")
    .description(
      "Sends a command to a kiosk (a fresh id and an expiry); with --wait, prints its results until the final one. Exit 0 done, 1 failed or expired, 3 no answer in time.",
    )
    .argument("<kiosk>", "site/device, e.g. demo/k1")
    .argument("<command>", `one of ${COMMAND_NAMES.join(", ")}`)
    .option(
      "--arg <key=value>",
      "an argument of the command, repeatable; values are JSON when they parse (seconds=10)",
      collect,
      [],
    )
    .option(
      "--expires <seconds>",
      "the kiosk ignores it after this long",
      seconds("an expiry", 86_400),
      DEFAULT_EXPIRY_S,
    )
    .addOption(waitOption())
    .addHelpText(
      "after",
      `\nExamples:\n  $ ${NAME} send demo/k1 unlock --arg seconds=10 --wait\n  $ ${NAME} send demo/k1 set-mode --arg mode=maintenance --wait 60 --json`,
    ),
  "operator",
).action(
  (kiosk: string, name: string, o: CommonOptions & { arg: string[]; expires: number; wait?: number | boolean }) => {
    const address = parseKiosk(kiosk);
    buildCommand(name, o.arg, o.expires); // a bad argument is refused before connecting
    return run(o, "operator", (client, who, by) =>
      send(client, who, address, name, {
        args: o.arg,
        expiresSeconds: o.expires,
        waitSeconds: waitValue(o.wait),
        json: o.json,
        by,
      }),
    );
  },
);

withConnection(
  program
    .command("tail")
    .description(
      "One kiosk as it happens: the entries the cloud committed (kind and seq, never bodies), its status changes and its command results, one line each.",
    )
    .argument("<kiosk>", "site/device, e.g. demo/k1")
    .addHelpText("after", `\nExamples:\n  $ ${NAME} tail demo/k1\n  $ ${NAME} tail demo/k1 --json`),
  "viewer",
).action((kiosk: string, o: CommonOptions) => {
  const address = parseKiosk(kiosk);
  return run(o, "viewer", (client, who) => tail(client, who, address, o.json));
});

const config = program
  .command("config")
  .description("A kiosk's desired configuration, what it reports having applied, and the drift.");
withConnection(
  config
    .command("get")
    .description("Prints the desired configuration (retained config), the reported state and the drift between them.")
    .argument("<kiosk>", "site/device, e.g. demo/k1")
    .addHelpText("after", `\nExamples:\n  $ ${NAME} config get demo/k1`),
  "viewer",
).action((kiosk: string, o: CommonOptions) => {
  const address = parseKiosk(kiosk);
  return run(o, "viewer", (client, who) => configGet(client, who, address, o.json));
});
withConnection(
  config
    .command("set")
    .description(
      "Merges settings into the kiosk's desired configuration, bumps its version and publishes it retained. Each setting is checked first. Exit 0 applied, 1 refused by the kiosk, 3 no report in time (with --wait).",
    )
    .argument("<kiosk>", "site/device, e.g. demo/k1")
    .argument(
      "<key=value...>",
      "settings: idleTimeoutSeconds, telemetryIntervalSeconds, cloudLivenessSeconds, offlineCaps, screenTexts, mode, logLevel (values are JSON when they parse; screenTexts.welcome=Hi sets one field)",
    )
    .addOption(waitOption())
    .addHelpText(
      "after",
      `\nExamples:\n  $ ${NAME} config set demo/k1 mode=maintenance --wait\n  $ ${NAME} config set demo/k1 telemetryIntervalSeconds=5 'screenTexts.welcome=Good morning'`,
    ),
  "operator",
).action((kiosk: string, pairs: string[], o: CommonOptions & { wait?: number | boolean }) => {
  const address = parseKiosk(kiosk);
  parseSettings(pairs); // a bad setting is refused before connecting
  return run(o, "operator", (client, who, by) =>
    configSet(client, who, address, pairs, { json: o.json, waitSeconds: waitValue(o.wait), by }),
  );
});

withConnection(
  program
    .command("alerts")
    .description("The alerts firing now (retained), then alerts as they fire and resolve.")
    .option("--site <id>", "one site (default: every site the login may read)", "+")
    .option("--once", "print the firing alerts and exit", false)
    .addHelpText("after", `\nExamples:\n  $ ${NAME} alerts\n  $ ${NAME} alerts --once --json`),
  "viewer",
).action((o: CommonOptions & { site: string; once: boolean }) =>
  run(o, "viewer", (client, who) => alerts(client, who, { site: o.site, json: o.json, once: o.once })),
);

// Ctrl-C ends watch, tail and alerts: that is how they are meant to stop.
process.once("SIGINT", () => process.exit(0));
process.once("SIGTERM", () => process.exit(0));

program.parseAsync().catch((err: unknown) => {
  const usage = err instanceof ConfigError;
  const code = usage ? EXIT.usage : err instanceof OpsError ? err.exitCode : EXIT.failed;
  process.stderr.write(`${NAME}: ${oneLine(err)}${usage ? ` (see ${NAME} --help)` : ""}\n`);
  process.exitCode = code;
});
