/**
 * `npm start`: a whole PayLane site on one machine with embedded defaults —
 * the aedes gateway, the cloud (PGlite + in-process presence) and two kiosks
 * with simulated hardware (a PN532 simulator on a pty, a printer simulator,
 * simulated GPIO), each its own process, as they would be in the field.
 *
 * MQTT_URL, DATABASE_URL and REDIS_URL swap in external services.
 * State (registry, kiosk journals, cloud database) lives in PAYLANE_DATA (.paylane/).
 *
 * This file is the composition: the environment (site/env.ts), the data
 * folder's identities (site/identities.ts), and the parts started in order
 * under a supervisor (site/supervisor.ts) that restarts or stops per part.
 */
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { createConnection } from "node:net";
import { join, resolve } from "node:path";
import { formatMoney } from "@paylane/protocol";
import { ConfigError, createCommand, EXIT, environmentHelp } from "@paylane/protocol/service";
import { InvalidArgumentError } from "commander";
import { mintOperatorToken } from "../cloud/src/api/auth.ts";
import { DEMO_MEMBERS } from "../cloud/src/seed.ts";
import type { DeviceConfigInput } from "../device/src/config.ts";
import { DEMO_HARDWARE } from "./site/demo-hardware.ts";
import { parseSiteEnv, SiteEnvSchema } from "./site/env.ts";
import { httpReady } from "./site/http-ready.ts";
import { ensureIdentities, writeOpsCredentials } from "./site/identities.ts";
import { findPrometheus, PROMETHEUS_MISSING, portFreeOr, prometheusPart } from "./site/prometheus.ts";
import { type ChildSpec, Supervisor } from "./site/supervisor.ts";

const root = resolve(import.meta.dirname, "..");
// An empty variable (`MQTT_URL= npm start`) means unset, as in a shell script.
const env = Object.fromEntries(Object.entries(process.env).filter(([, v]) => v !== "")) as NodeJS.ProcessEnv;
const KIOSKS = ["k1", "k2"];

const say = (line: string) => console.error(`npm start: ${line}`);

const command = createCommand({
  name: "npm start",
  // the root package has no version; the parts share one (device, cloud, gateway, protocol)
  packageJson: new URL("../cloud/package.json", import.meta.url),
  errorPrefix: "npm start:",
  helpCommand: "npm start -- --help",
  description:
    "A whole PayLane site on this machine: the aedes gateway, the cloud (PGlite, in-process presence) and " +
    "kiosks k1 and k2 with simulated hardware, each its own process, supervised: a part that crashes is " +
    "restarted (the gateway's crash stops the site), a part stopped with `kill <pid>` stays stopped until " +
    "`kill -USR2 <runner pid>`, Ctrl-C stops the kiosks, the cloud, then the gateway. State lives in PAYLANE_DATA.",
  sections: [{ title: "Environment", body: environmentHelp(SiteEnvSchema) }],
  examples: [
    { command: "npm start", does: "the site on 1883 (MQTT), 8070, 8080 (cloud), 8081 and 8082 (kiosks)" },
    {
      command: "MQTT_URL=mqtt://127.0.0.1:1883 npm start",
      does: "on a Mosquitto already running, no embedded gateway",
    },
    {
      command:
        "PAYLANE_DATA=/tmp/site2 MQTT_PORT=1884 GATEWAY_HTTP_PORT=9070 CLOUD_PORT=9080 KIOSK_PORT_BASE=9081 npm start",
      does: "a second site beside the first",
    },
    {
      command: "npm start -- --prometheus",
      does: "also Debian's Prometheus with the project's alert rules, scraping this site (its URL is printed)",
    },
  ],
})
  .option(
    "--prometheus",
    "also run Prometheus (Debian's /usr/bin/prometheus) with ops/prometheus/rules.yml, scraping the gateway and " +
      "the cloud, its data in PAYLANE_DATA/prometheus; stopped with the site",
  )
  .option(
    "--prometheus-port <port>",
    "Prometheus' port (default: 9090, or a free one when 9090 is taken)",
    (v: string) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 65535) {
        throw new InvalidArgumentError(`"${v}" is not a port: give a number from 1 to 65535`);
      }
      return n;
    },
  )
  .parse();
const options = command.opts<{ prometheus?: boolean; prometheusPort?: number }>();

let stopping = false;
const supervisor = new Supervisor({ report: say, onFatal: () => void shutdown(EXIT.failed) });

/** A part of the site: a Node script run with tsx, at LOG_LEVEL warn unless told otherwise. */
function part(
  name: string,
  script: string,
  args: string[],
  extraEnv: Record<string, string>,
  policy: ChildSpec["policy"],
  healthUrl: string,
  readyWithinMs: number,
): ChildSpec {
  return {
    name,
    command: process.execPath,
    args: ["--import", "tsx", join(root, script), ...args],
    cwd: root,
    env: { ...env, LOG_LEVEL: env.LOG_LEVEL ?? "warn", ...extraEnv },
    policy,
    ready: (signal) => httpReady(name, healthUrl, signal, readyWithinMs),
  };
}

/** Fails early, before spawning anything, when a port is taken. */
function assertPortFree(port: number, setting: string, hint?: string): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const socket = createConnection({ port, host: "127.0.0.1" });
    socket.once("connect", () => {
      socket.destroy();
      reject(new Error(`port ${port} is already in use; set ${setting} to another port${hint ? ` (${hint})` : ""}`));
    });
    socket.once("error", () => resolvePromise());
  });
}

/** Kiosks first, so their clean goodbye reaches the broker; the gateway last. */
async function shutdown(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  await supervisor.stop();
  process.exit(code);
}

function onSignal(): void {
  if (!stopping) {
    void shutdown(0);
    return;
  }
  // A second Ctrl-C while stopping: whatever still runs is killed now.
  supervisor.kill();
  process.exit(EXIT.failed);
}

async function main(): Promise<void> {
  // Everything is checked before anything is written or spawned.
  const config = parseSiteEnv(env);
  const SITE = config.SITE_ID;
  const dataDir = resolve(config.PAYLANE_DATA ?? join(root, ".paylane"));
  const { MQTT_PORT: mqttPort, GATEWAY_HTTP_PORT: gatewayHttpPort, CLOUD_PORT: cloudPort } = config;
  const kioskBase = config.KIOSK_PORT_BASE;
  const embeddedBroker = !config.MQTT_URL;
  const mqttUrl = config.MQTT_URL ?? `mqtt://127.0.0.1:${mqttPort}`;
  // --prometheus without Prometheus: said before anything starts
  const prometheusBinary = options.prometheus ? findPrometheus() : undefined;
  if (options.prometheus && !prometheusBinary) throw new ConfigError(PROMETHEUS_MISSING);
  if (options.prometheusPort && !options.prometheus) {
    throw new ConfigError("--prometheus-port is Prometheus' port: give --prometheus too");
  }

  // The data folder next: an old bad registry is named before anything listens.
  await mkdir(dataDir, { recursive: true });
  const { secrets, registryPath } = await ensureIdentities(dataDir, SITE, KIOSKS);

  if (embeddedBroker) {
    await assertPortFree(
      mqttPort,
      "MQTT_PORT",
      "an MQTT broker such as Mosquitto may already be running there: set MQTT_URL=mqtt://127.0.0.1:1883 to use it instead of the embedded gateway",
    );
    await assertPortFree(gatewayHttpPort, "GATEWAY_HTTP_PORT");
  }
  await assertPortFree(cloudPort, "CLOUD_PORT");
  for (const [i, k] of KIOSKS.entries()) await assertPortFree(kioskBase + i, "KIOSK_PORT_BASE", `kiosk ${k}`);

  // Crash policies: the broker is what every other part talks through, so its death stops the
  // site; the cloud and the kiosks are restarted (the kiosks work offline meanwhile).
  if (embeddedBroker) {
    await supervisor.start(
      part(
        "gateway",
        "gateway/src/main.ts",
        [],
        {
          MQTT_PORT: String(mqttPort),
          MQTT_HOST: "127.0.0.1",
          GATEWAY_HTTP_PORT: String(gatewayHttpPort),
          REGISTRY_PATH: registryPath,
        },
        "stop-site",
        `http://127.0.0.1:${gatewayHttpPort}/healthz`,
        30_000,
      ),
    );
  }

  const cloudEnv: Record<string, string> = {
    CLOUD_PORT: String(cloudPort),
    MQTT_URL: mqttUrl,
    CLOUD_MQTT_SECRET: secrets.cloud,
    REGISTRY_PATH: registryPath,
    SEED_DEMO_SITE: SITE,
    CLOUD_JWT_SECRET: secrets.jwt,
    METRICS_TOKEN: secrets.metrics,
  };
  if (!config.DATABASE_URL) cloudEnv.PGLITE_DIR = join(dataDir, "cloud-db");
  // The console's first admin: made by the cloud when its database has no account yet (never printed).
  const adminPath = join(dataDir, "admin-credentials.json");
  cloudEnv.CLOUD_ADMIN_CREDENTIALS_FILE = adminPath;
  const cloudUrl = `http://127.0.0.1:${cloudPort}`;
  await supervisor.start(part("cloud", "cloud/src/main.ts", [], cloudEnv, "restart", `${cloudUrl}/healthz`, 60_000));

  const kioskUrls: string[] = [];
  for (const [i, device] of KIOSKS.entries()) {
    const port = kioskBase + i;
    const config: DeviceConfigInput = {
      site: SITE,
      device,
      secret: secrets.devices[device]!,
      mqttUrl,
      cloudUrl,
      dataDir: join(dataDir, "kiosks", device),
      http: { host: "127.0.0.1", port },
      ...DEMO_HARDWARE,
    };
    const configPath = join(dataDir, `${device}.json`);
    await writeFile(configPath, JSON.stringify(config, null, 2), { mode: 0o600 });
    const url = `http://127.0.0.1:${port}/`;
    kioskUrls.push(url);
    await supervisor.start(
      part(`kiosk ${device}`, "device/src/main.ts", ["--config", configPath], {}, "restart", `${url}healthz`, 30_000),
    );
  }
  // An operator token for the money routes (wallets, ledger, refunds, top-ups), valid 8 hours.
  // Written to a file only the user can read, never printed: a token is a credential.
  const token = await mintOperatorToken(secrets.jwt, { sub: "demo-operator", role: "admin" });
  const tokenPath = join(dataDir, "operator-token");
  await writeFile(tokenPath, `${token}\n`, { mode: 0o600 });
  const metricsTokenPath = join(dataDir, "metrics-token");
  await writeFile(metricsTokenPath, `${secrets.metrics}\n`, { mode: 0o600 });
  // Prometheus last, so its first scrape finds every part up; stopped first.
  let prometheusUrl: string | undefined;
  if (prometheusBinary) {
    if (options.prometheusPort) await assertPortFree(options.prometheusPort, "--prometheus-port");
    const prometheus = await prometheusPart({
      binary: prometheusBinary,
      dataDir,
      port: options.prometheusPort ?? (await portFreeOr(9090)),
      targets: {
        gateway: embeddedBroker ? `127.0.0.1:${gatewayHttpPort}` : undefined,
        cloud: `127.0.0.1:${cloudPort}`,
        metricsTokenFile: metricsTokenPath,
      },
      ready: (signal, url) => httpReady("prometheus", url, signal, 30_000),
    });
    await supervisor.start(prometheus.spec);
    prometheusUrl = prometheus.url;
  }
  // The ops logins on the broker (paylane-ops, Node-RED, mosquitto_sub): in a file, never printed.
  const opsPath = await writeOpsCredentials(dataDir, secrets.operators);
  const broker = new URL(mqttUrl);
  const pids = supervisor.pids();
  const pid = (name: string) => `(pid ${pids[name]})`;

  const lines = [
    "",
    "PayLane site is running",
    `  MQTT broker      ${mqttUrl}${embeddedBroker ? ` (embedded aedes gateway) ${pid("gateway")}` : ""}`,
    `  Cloud API        ${cloudUrl}  ${pid("cloud")}  (/api/v1/checkins, /api/v1/devices, /api/v1/alerts, /api/v1/conflicts; /healthz)`,
    `  Dashboard        ${cloudUrl}/dashboard/   (the ops console in a browser: fleet, live feed, alerts, money, users)`,
    existsSync(adminPath)
      ? `                   log in as admin: the password is in ${adminPath} (never printed; docs/console-accounts.md)`
      : "                   log in with an account of yours: npm run admin -- user add <name> --role admin",
    `  Money API        ${cloudUrl}/api/v1/wallets?site=${SITE}, /api/v1/ledger?site=${SITE}, /api/v1/exposure?site=${SITE}`,
    `                   Authorization: Bearer $(cat ${tokenPath})   (an admin token, valid 8 hours)`,
    `  Metrics          ${cloudUrl}/metrics   Authorization: Bearer $(cat ${metricsTokenPath})`,
    ...(prometheusUrl
      ? [
          `  Prometheus       ${prometheusUrl}  ${pid("prometheus")}  (/alerts, /targets; rules ops/prometheus/rules.yml, docs/operations.md)`,
        ]
      : []),
    `  Cloud database   ${config.DATABASE_URL ? "Postgres (DATABASE_URL)" : `PGlite in ${join(dataDir, "cloud-db")}`}`,
    `  Presence         ${config.REDIS_URL ? "Redis (REDIS_URL)" : "in-process store"}`,
    `  Ops on MQTT      ${opsPath}  (viewer: reads every kiosk; operator: also commands and config)`,
    `                   mosquitto_sub -h ${broker.hostname} -p ${broker.port || 1883} -u ops:viewer -P "$(jq -r .viewer.password ${opsPath})" -t 'paylane/v1/+/+/status' -v`,
    ...KIOSKS.map((k, i) => `  Kiosk ${k}         ${kioskUrls[i]}  ${pid(`kiosk ${k}`)}`),
    `  Installers       PAYLANE_DATA=${dataDir} PAYLANE_CLOUD_URL=${cloudUrl} npx paylane-provision claim create --site ${SITE}`,
    "                   a claim code another kiosk enrols with (docs/install.md)",
    "",
    "Demo members (tap with the page's simulated reader, or `npm run tap -- --kiosk k1 --uid UID`):",
    ...DEMO_MEMBERS.map(
      (m) =>
        `  ${m.cardUid.padEnd(16)} ${m.name.padEnd(18)} ${m.status === "revoked" ? "(blocked)" : `wallet ${formatMoney(m.openingBalance ?? 0, "EUR")}`}`,
    ),
    "Pay or top up from a kiosk page: choose Pay or Top up, then tap a card.",
    "",
    `A part that crashes is restarted${embeddedBroker ? " (the gateway's crash stops the site)" : ""}.`,
    `To stop one part alone, kill its pid: without the cloud the kiosks go on offline; \`kill -USR2 ${process.pid}\` starts it again.`,
    "Ctrl-C stops the site.",
  ];
  console.log(lines.join("\n"));
  await writeFile(
    join(dataDir, "site.json"),
    JSON.stringify({ cloudUrl, kiosks: Object.fromEntries(KIOSKS.map((k, i) => [k, kioskUrls[i]])) }, null, 2),
  );
}

process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);
// the terminal went away: the parts are in their own process groups and would not hear of it
process.on("SIGHUP", onSignal);
// `kill -USR2 <runner pid>`: the parts stopped on purpose (`kill <part pid>`) start again.
process.on("SIGUSR2", () => void supervisor.startStopped());
main().catch((err: Error & { exit?: { code: number | null } }) => {
  // while stopping (Ctrl-C during start, or a part that failed), waits end quietly
  if (stopping) return;
  // A part that could not start has said why in one line of its own (a non-zero exit); anything else is said here.
  if (!(err.exit && err.exit.code !== null && err.exit.code !== 0)) say(err.message);
  void shutdown(err instanceof ConfigError ? EXIT.usage : EXIT.failed);
});
