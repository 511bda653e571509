/** The device registry a bench's site runs on: its devices' secrets and the cloud's, hashed as in production. */
import { randomBytes } from "node:crypto";
import { Registry, type RegistryFile, siteRegistryFile } from "@paylane/protocol";

export async function saveBenchRegistry(
  path: string,
  site: string,
  devices: Iterable<[string, string]>,
  cloudSecret: string,
): Promise<RegistryFile> {
  const file = await siteRegistryFile(site, devices, cloudSecret);
  await Registry.save(path, file);
  return file;
}

/** `n` devices named `${prefix}01`, `${prefix}02`, …, each with a fresh secret. */
export function benchSecrets(prefix: string, n: number): Map<string, string> {
  return new Map(
    Array.from({ length: n }, (_, i) => [
      `${prefix}${String(i + 1).padStart(2, "0")}`,
      randomBytes(18).toString("base64url"),
    ]),
  );
}
