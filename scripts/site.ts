/**
 * `npm start`: a whole PayLane site on one machine with embedded defaults —
 * the aedes gateway, the cloud (PGlite + in-process presence) and two kiosks
 * with simulated hardware (a PN532 simulator on a pty, a printer simulator,
 * simulated GPIO), each its own process, as they would be in the field.
 *
 * MQTT_URL, DATABASE_URL and REDIS_URL swap in external services.
 * State (registry, kiosk journals, cloud database) lives in PAYLANE_DATA (.paylane/).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { createConnection } from "node:net";
import { join, resolve } from "node:path";
import { formatMoney, hashSecret, Registry, type RegistryFile } from "@paylane/protocol";
import { mintOperatorToken } from "../cloud/src/api/auth.ts";
import { DEMO_MEMBERS } from "../cloud/src/seed.ts";
import type { DeviceConfigInput } from "../device/src/config.ts";

const root = resolve(import.meta.dirname, "..");
// An empty variable (`MQTT_URL= npm start`) means unset, as in a shell script.
const env = Object.fromEntries(Object.entries(process.env).filter(([, v]) => v !== "")) as NodeJS.ProcessEnv;
const dataDir = resolve(env.PAYLANE_DATA ?? join(root, ".paylane"));
const SITE = env.SITE_ID ?? "demo";
const KIOSKS = ["k1", "k2"];

function portVar(name: string, def: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`${name}=${raw}: expected a port number 1-65535`);
  return n;
}

interface SiteSecrets {
  cloud: string;
  /** Signs operator tokens (CLOUD_JWT_SECRET); older data folders get one on the next start. */
  jwt?: string;
  /** The cloud's METRICS_TOKEN (`/metrics` needs it); older data folders get one on the next start. */
  metrics?: string;
  devices: Record<string, string>;
}

/** First run: make secrets and the registry; later runs reuse them, so journals stay valid. */
async function ensureIdentities(): Promise<SiteSecrets> {
  const secretsPath = join(dataDir, "secrets.json");
  const registryPath = join(dataDir, "registry.json");
  if (existsSync(secretsPath) && existsSync(registryPath)) {
    const secrets = JSON.parse(await readFile(secretsPath, "utf8")) as SiteSecrets;
    if (KIOSKS.every((k) => secrets.devices[k])) {
      if (!secrets.jwt || !secrets.metrics) {
        secrets.jwt ??= randomBytes(32).toString("base64url");
        secrets.metrics ??= randomBytes(24).toString("base64url");
        await writeFile(secretsPath, JSON.stringify(secrets, null, 2), { mode: 0o600 });
      }
      return secrets;
    }
  }
  const secrets: SiteSecrets = {
    cloud: randomBytes(24).toString("base64url"),
    jwt: randomBytes(32).toString("base64url"),
    metrics: randomBytes(24).toString("base64url"),
    devices: Object.fromEntries(KIOSKS.map((k) => [k, randomBytes(24).toString("base64url")])),
  };
  const file: RegistryFile = {
    version: 1,
    devices: await Promise.all(
      KIOSKS.map(async (device) => ({ site: SITE, device, secretHash: await hashSecret(secrets.devices[device]!) })),
    ),
    services: [{ id: "cloud", role: "bridge", secretHash: await hashSecret(secrets.cloud) }],
  };
  await writeFile(secretsPath, JSON.stringify(secrets, null, 2), { mode: 0o600 });
  await Registry.save(registryPath, file);
  return secrets;
}

const children: Array<{ name: string; child: ChildProcess }> = [];
let stopping = false;
/** Set once the whole site answers: from then on a child that exits is news, not a failed start. */
let siteUp = false;

const running = (child: ChildProcess) => child.exitCode === null && child.signalCode === null;

function run(name: string, script: string, args: string[], extraEnv: Record<string, string>): ChildProcess {
  // a Ctrl-C during start must not leave a child spawned after the stop went past it
  if (stopping) throw new Error(`stopped before starting ${name}`);
  const child = spawn(process.execPath, ["--import", "tsx", join(root, script), ...args], {
    cwd: root,
    env: { ...env, LOG_LEVEL: env.LOG_LEVEL ?? "warn", ...extraEnv },
    stdio: ["ignore", "inherit", "inherit"],
    // Its own process group: a Ctrl-C in the terminal reaches this runner only, which stops the
    // parts in order (kiosks, cloud, gateway) instead of all of them at once.
    detached: true,
  });
  children.push({ name, child });
  child.on("exit", (code, signal) => {
    if (stopping) return;
    // A part that could not start has said why in one line of its own; anything else is said here.
    if (siteUp || signal !== null || code === 0) {
      console.error(`npm start: ${name} exited (${signal ?? `code ${code}`}); stopping the site.`);
    }
    void shutdown(1);
  });
  return child;
}

async function waitForHttp(name: string, url: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (stopping) throw new Error(`stopped while waiting for ${name}`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      if (res.status < 500 || res.status === 503) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${name} did not answer on ${url} within ${timeoutMs / 1000} s`);
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

async function shutdown(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  // Kiosks first, so their goodbye reaches the broker; the gateway last.
  for (const { child } of [...children].reverse()) {
    if (!running(child)) continue;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    await exited;
  }
  process.exit(code);
}

/** A second Ctrl-C while stopping: whatever still runs is killed now. */
function stopNow(): void {
  for (const { child } of children) if (running(child)) child.kill("SIGKILL");
  process.exit(1);
}

function onSignal(): void {
  if (stopping) stopNow();
  else void shutdown(0);
}

async function main(): Promise<void> {
  const mqttPort = portVar("MQTT_PORT", 1883);
  const gatewayHttpPort = portVar("GATEWAY_HTTP_PORT", 8070);
  const cloudPort = portVar("CLOUD_PORT", 8080);
  const kioskBase = portVar("KIOSK_PORT_BASE", 8081);
  const embeddedBroker = !env.MQTT_URL;
  const mqttUrl = env.MQTT_URL ?? `mqtt://127.0.0.1:${mqttPort}`;

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

  await mkdir(dataDir, { recursive: true });
  const secrets = await ensureIdentities();
  const registryPath = join(dataDir, "registry.json");

  if (embeddedBroker) {
    run("gateway", "gateway/src/main.ts", [], {
      MQTT_PORT: String(mqttPort),
      MQTT_HOST: "127.0.0.1",
      GATEWAY_HTTP_PORT: String(gatewayHttpPort),
      REGISTRY_PATH: registryPath,
    });
    await waitForHttp("gateway", `http://127.0.0.1:${gatewayHttpPort}/healthz`);
  }

  const cloudEnv: Record<string, string> = {
    CLOUD_PORT: String(cloudPort),
    MQTT_URL: mqttUrl,
    CLOUD_MQTT_SECRET: secrets.cloud,
    REGISTRY_PATH: registryPath,
    SEED_DEMO_SITE: SITE,
    CLOUD_JWT_SECRET: secrets.jwt!,
    METRICS_TOKEN: secrets.metrics!,
  };
  if (!env.DATABASE_URL) cloudEnv.PGLITE_DIR = join(dataDir, "cloud-db");
  run("cloud", "cloud/src/main.ts", [], cloudEnv);
  const cloudUrl = `http://127.0.0.1:${cloudPort}`;
  await waitForHttp("cloud", `${cloudUrl}/healthz`, 60_000);

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
      // The hardware a kiosk carries, simulated: the real PN532 and ESC/POS drivers talk to
      // simulated peers (the PN532 over a pty pair), and the GPIO roles drive simulated lines.
      reader: { type: "pn532-simulator" },
      printer: { type: "simulator" },
      // a simulated ZVT card terminal (on TCP, in the kiosk's process) for wallet top-ups
      terminal: { type: "zvt-simulator" },
      gpio: {
        backend: "simulated",
        button: { line: { bcm: 27 } },
        led: { line: { bcm: 18 } },
        buzzer: { line: { bcm: 22 } },
        relay: { line: { bcm: 17 }, pulseMs: 3000 },
      },
    };
    const configPath = join(dataDir, `${device}.json`);
    await writeFile(configPath, JSON.stringify(config, null, 2), { mode: 0o600 });
    run(`kiosk ${device}`, "device/src/main.ts", ["--config", configPath], {});
    kioskUrls.push(`http://127.0.0.1:${port}/`);
  }
  for (const [i, url] of kioskUrls.entries()) await waitForHttp(`kiosk ${KIOSKS[i]}`, `${url}healthz`);
  // An operator token for the money routes (wallets, ledger, refunds, top-ups), valid 8 hours.
  // Written to a file only the user can read, never printed: a token is a credential.
  const token = await mintOperatorToken(secrets.jwt!, { sub: "demo-operator", role: "admin" });
  const tokenPath = join(dataDir, "operator-token");
  await writeFile(tokenPath, `${token}\n`, { mode: 0o600 });
  const metricsTokenPath = join(dataDir, "metrics-token");
  await writeFile(metricsTokenPath, `${secrets.metrics!}\n`, { mode: 0o600 });

  const lines = [
    "",
    "PayLane site is running",
    `  MQTT broker      ${mqttUrl}${embeddedBroker ? " (embedded aedes gateway)" : ""}`,
    `  Cloud API        ${cloudUrl}  (/api/v1/checkins, /api/v1/devices, /api/v1/alerts, /api/v1/conflicts; /healthz)`,
    `  Money API        ${cloudUrl}/api/v1/wallets?site=${SITE}, /api/v1/ledger?site=${SITE}, /api/v1/exposure?site=${SITE}`,
    `                   Authorization: Bearer $(cat ${tokenPath})   (an admin token, valid 8 hours)`,
    `  Metrics          ${cloudUrl}/metrics   Authorization: Bearer $(cat ${metricsTokenPath})`,
    `  Cloud database   ${env.DATABASE_URL ? "Postgres (DATABASE_URL)" : `PGlite in ${join(dataDir, "cloud-db")}`}`,
    `  Presence         ${env.REDIS_URL ? "Redis (REDIS_URL)" : "in-process store"}`,
    ...KIOSKS.map((k, i) => `  Kiosk ${k}         ${kioskUrls[i]}`),
    "",
    "Demo members (tap with the page's simulated reader, or `npm run tap -- --kiosk k1 --uid UID`):",
    ...DEMO_MEMBERS.map(
      (m) =>
        `  ${m.cardUid.padEnd(16)} ${m.name.padEnd(18)} ${m.status === "revoked" ? "(blocked)" : `wallet ${formatMoney(m.openingBalance ?? 0, "EUR")}`}`,
    ),
    "Pay or top up from a kiosk page: choose Pay or Top up, then tap a card.",
    "",
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
main().then(
  () => {
    siteUp = true;
  },
  (err: unknown) => {
    // while stopping (Ctrl-C during start, or a part that failed and said so), waits end quietly
    if (stopping) return;
    console.error(`npm start: ${(err as Error).message}`);
    void shutdown(1);
  },
);
