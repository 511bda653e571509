/**
 * The site's identities in its data folder: `secrets.json` (each part's MQTT
 * secret, the operator-token and metrics keys) and `registry.json` (their
 * hashes, which the gateway and cloud check against). Made on the first run
 * and reused after, so the kiosks' journals stay valid across restarts.
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { hashSecret, Registry, type RegistryFile } from "@paylane/protocol";
import { ConfigError } from "@paylane/protocol/service";

export interface SiteSecrets {
  cloud: string;
  /** Signs operator tokens (CLOUD_JWT_SECRET); older data folders get one on the next start. */
  jwt?: string;
  /** The cloud's METRICS_TOKEN (`/metrics` needs it); older data folders get one on the next start. */
  metrics?: string;
  devices: Record<string, string>;
}

export interface Identities {
  secrets: SiteSecrets & { jwt: string; metrics: string };
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
      if (!secrets.jwt || !secrets.metrics) {
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
  };
  const file: RegistryFile = {
    version: 1,
    devices: await Promise.all(
      kiosks.map(async (device) => ({ site, device, secretHash: await hashSecret(secrets.devices[device]!) })),
    ),
    services: [{ id: "cloud", role: "bridge", secretHash: await hashSecret(secrets.cloud) }],
  };
  // Checked before it is written: a registry the gateway would refuse is never left behind.
  Registry.parse(file, registryPath);
  await writeAtomically(secretsPath, JSON.stringify(secrets, null, 2));
  await Registry.save(registryPath, file);
  return { secrets, registryPath };
}
