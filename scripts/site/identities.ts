/**
 * The site's identities in its data folder: `secrets.json` (each part's MQTT
 * secret, the operator-token and metrics keys, the demo operators' passwords)
 * and `registry.json` (their hashes, which the gateway and cloud check
 * against). Made on the first run and reused after, so the kiosks' journals
 * stay valid across restarts; what a newer version adds (the operators) is
 * added to an older folder on its next start.
 *
 * `ops-credentials.json` hands the demo operators' logins to a person or a
 * tool (`paylane-ops`, Node-RED, mosquitto_sub), readable by the user only.
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  hashSecret,
  type OperatorRole,
  operatorUsername,
  Registry,
  type RegistryFile,
  verifySecret,
} from "@paylane/protocol";
import { ConfigError } from "@paylane/protocol/service";

export interface SiteSecrets {
  cloud: string;
  /** Signs operator tokens (CLOUD_JWT_SECRET); older data folders get one on the next start. */
  jwt?: string;
  /** The cloud's METRICS_TOKEN (`/metrics` needs it); older data folders get one on the next start. */
  metrics?: string;
  devices: Record<string, string>;
  /** MQTT passwords of the demo operators (DEMO_OPERATORS); older data folders get them on the next start. */
  operators?: Record<string, string>;
}

/** The demo site's operators on the broker: a read-only one and one that may steer the kiosks. */
export const DEMO_OPERATORS = { viewer: "viewer", operator: "operator" } as const satisfies Record<
  string,
  OperatorRole
>;
type DemoOperator = keyof typeof DEMO_OPERATORS;

/** `ops-credentials.json`: exactly what a tool needs to log in as each demo operator. */
export type OpsCredentials = Record<DemoOperator, { username: string; password: string }>;

export interface Identities {
  secrets: SiteSecrets & { jwt: string; metrics: string; operators: Record<DemoOperator, string> };
  registryPath: string;
}

const newSecret = (bytes: number) => randomBytes(bytes).toString("base64url");

/** Writes `text` whole or not at all (temp file + rename): a Ctrl-C mid-write leaves the old file. */
async function writeAtomically(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, text, { mode: 0o600 });
  await rename(tmp, path);
}

/**
 * The registry in `path`, checked to be one this site can run on: valid, and
 * naming `site`'s kiosks. Errors name the file and what to do.
 */
async function loadRegistry(path: string, site: string, kiosks: string[]): Promise<Registry> {
  const remedy = `delete it and secrets.json beside it (or set PAYLANE_DATA to another folder) to start over`;
  let registry: Registry;
  try {
    registry = await Registry.load(path);
  } catch (err) {
    throw new ConfigError(`${(err as Error).message}; ${remedy}`);
  }
  const missing = kiosks.filter((device) => !registry.hasDevice({ site, device }));
  if (missing.length > 0) {
    const sites = [...new Set(registry.devices.map((d) => d.site))];
    throw new ConfigError(
      `${path} has no kiosk ${missing.join(", ")} of site ${site}` +
        (sites.length > 0 ? ` (it was made for SITE_ID=${sites.join(", ")})` : "") +
        `; set SITE_ID to match, or ${remedy}`,
    );
  }
  return registry;
}

/** First run: make secrets and the registry; later runs check and reuse them. */
export async function ensureIdentities(dataDir: string, site: string, kiosks: string[]): Promise<Identities> {
  const secretsPath = join(dataDir, "secrets.json");
  const registryPath = join(dataDir, "registry.json");
  if (existsSync(secretsPath) && existsSync(registryPath)) {
    const secrets = JSON.parse(await readFile(secretsPath, "utf8")) as SiteSecrets;
    if (kiosks.every((k) => secrets.devices?.[k])) {
      await loadRegistry(registryPath, site, kiosks);
      const operatorsAdded = await ensureOperators(secrets, registryPath, site);
      if (!secrets.jwt || !secrets.metrics || operatorsAdded) {
        secrets.jwt ??= newSecret(32);
        secrets.metrics ??= newSecret(24);
        await writeAtomically(secretsPath, JSON.stringify(secrets, null, 2));
      }
      return { secrets: secrets as Identities["secrets"], registryPath };
    }
  }
  const secrets = {
    cloud: newSecret(24),
    jwt: newSecret(32),
    metrics: newSecret(24),
    devices: Object.fromEntries(kiosks.map((k) => [k, newSecret(24)])),
    operators: { viewer: newSecret(24), operator: newSecret(24) },
  };
  const file: RegistryFile = {
    version: 1,
    devices: await Promise.all(
      kiosks.map(async (device) => ({ site, device, secretHash: await hashSecret(secrets.devices[device]!) })),
    ),
    services: [{ id: "cloud", role: "bridge", secretHash: await hashSecret(secrets.cloud) }],
    operators: await Promise.all(
      (Object.keys(DEMO_OPERATORS) as DemoOperator[]).map(async (id) => ({
        id,
        role: DEMO_OPERATORS[id],
        sites: [site],
        secretHash: await hashSecret(secrets.operators[id]),
      })),
    ),
  };
  // Checked before it is written: a registry the gateway would refuse is never left behind.
  Registry.parse(file, registryPath);
  await writeAtomically(secretsPath, JSON.stringify(secrets, null, 2));
  await Registry.save(registryPath, file);
  return { secrets, registryPath };
}

/**
 * Gives `secrets` and the registry the demo operators they lack (a data
 * folder made before operators existed, or one whose operator was removed or
 * whose password no longer matches). Returns whether `secrets` changed; the
 * registry is saved here when it changed.
 */
async function ensureOperators(secrets: SiteSecrets, registryPath: string, site: string): Promise<boolean> {
  const file = JSON.parse(await readFile(registryPath, "utf8")) as RegistryFile;
  const operators = [...(file.operators ?? [])];
  secrets.operators ??= {};
  let changed = false;
  for (const id of Object.keys(DEMO_OPERATORS) as DemoOperator[]) {
    const entry = operators.find((o) => o.id === id);
    const password = secrets.operators[id];
    if (entry && password && (await verifySecret(password, entry.secretHash))) continue;
    const fresh = newSecret(24);
    secrets.operators[id] = fresh;
    const next = { id, role: DEMO_OPERATORS[id], sites: [site], secretHash: await hashSecret(fresh) };
    if (entry) operators[operators.indexOf(entry)] = next;
    else operators.push(next);
    changed = true;
  }
  if (changed) {
    const next: RegistryFile = { ...file, operators };
    Registry.parse(next, registryPath);
    await Registry.save(registryPath, next);
  }
  return changed;
}

/** Writes `ops-credentials.json` (mode 0600, replaced whole) into `dataDir`; returns its path. */
export async function writeOpsCredentials(dataDir: string, passwords: Record<DemoOperator, string>): Promise<string> {
  const credentials: OpsCredentials = {
    viewer: { username: operatorUsername("viewer"), password: passwords.viewer },
    operator: { username: operatorUsername("operator"), password: passwords.operator },
  };
  const path = join(dataDir, "ops-credentials.json");
  // A new file renamed over the old: its mode is 0600 even if the old one had been opened up.
  await writeAtomically(path, `${JSON.stringify(credentials, null, 2)}\n`);
  return path;
}
