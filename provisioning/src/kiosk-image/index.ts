/**
 * What goes into a kiosk image (docs/kiosk-image.md), as files for the boot
 * partition: firstrun.sh at its root, everything else under paylane/:
 *
 *   paylane/opt/        the kiosk bundle (a release: paylane-release.json names it), installed as
 *                       /opt/paylane/releases/<id> with /opt/paylane/current pointing at it; bin/ (the
 *                       helper scripts) and updater/ (paylane-update) go beside, outside every release
 *   paylane/systemd/    the units: daemon, touch UI, storage check, first-boot install
 *   paylane/pam/        the touch UI's PAM service (a logind session for cage)
 *   paylane/config/     kiosk.json (with the claim code), firstboot.env, and when asked
 *                       for: wifi.nmconnection, authorized_keys, cloud-ca.pem
 *
 * firstrun.sh deletes paylane/ once it has copied it, claim code included.
 */

import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ConfigError } from "@paylane/protocol/service";
import { buildUpdater } from "../update/build.ts";
import { MANIFEST_NAME, releaseManifest } from "../update/release.ts";
import { buildKioskBundle, type KioskBundle } from "./bundle.ts";
import type { BootFile, KioskImageContents, KioskImageOptions } from "./contents.ts";
import { editCmdline, firstBootEnv, kioskJson } from "./first-boot.ts";
import { networkManagerKeyfile } from "./wifi.ts";

export type { BootFile, KioskImageContents, KioskImageOptions } from "./contents.ts";
export { editCmdline, FIRST_BOOT_HOOK } from "./first-boot.ts";
export { wpaPsk } from "./wifi.ts";

/** Steps, for a progress line: the bundle takes a few seconds, the rest is instant. */
export type ContentsProgress = (step: string) => void;

export const ASSETS = fileURLToPath(new URL("../../assets/", import.meta.url));

// The bundle depends on the repository, not on the options: one build a process.
let bundle: Promise<KioskBundle> | undefined;
function kioskBundle(): Promise<KioskBundle> {
  bundle ??= buildKioskBundle().catch((err: unknown) => {
    bundle = undefined;
    throw err;
  });
  return bundle;
}

async function assetFiles(folder: string, to: string): Promise<BootFile[]> {
  const names = (await readdir(join(ASSETS, folder))).sort();
  return Promise.all(
    names.map(async (name) => ({ path: `${to}/${name}`, content: await readFile(join(ASSETS, folder, name)) })),
  );
}

export async function kioskImageContents(
  options: KioskImageOptions,
  progress?: ContentsProgress,
): Promise<KioskImageContents> {
  // Options first: a bad one is refused before seconds of building.
  const env = firstBootEnv(options);
  const config = kioskJson(options);
  // The daemon's own check, so a config it would refuse at first boot is refused now, in its words.
  const { parseKioskFile } = await import("@paylane/device");
  parseKioskFile(config, "kiosk.json (from the image options)");
  const wifi = options.wifi ? networkManagerKeyfile(options.wifi) : undefined;
  if (options.cloudCa !== undefined && !options.cloudCa.includes("-----BEGIN CERTIFICATE-----")) {
    throw new ConfigError("cloud CA: expected a PEM certificate (-----BEGIN CERTIFICATE-----)");
  }

  progress?.("building the kiosk bundle (device daemon and touch UI)");
  const built = await kioskBundle();
  // The image's release is the same thing an update bundle carries (docs/kiosk-updates.md).
  const release = [...built.files, await buildUpdater()];
  const manifest = releaseManifest(release, { version: built.versions["@paylane/device"] ?? "0.0.0" });
  progress?.("adding units and the first-boot script");

  const files: BootFile[] = [
    { path: "firstrun.sh", content: await readFile(join(ASSETS, "first-boot/firstrun.sh")) },
    ...release.map((f) => ({ path: `paylane/opt/${f.path}`, content: f.content })),
    { path: `paylane/opt/${MANIFEST_NAME}`, content: `${JSON.stringify(manifest, null, 2)}\n` },
    ...(await assetFiles("bin", "paylane/opt/bin")),
    ...(await assetFiles("systemd", "paylane/systemd")),
    ...(await assetFiles("pam", "paylane/pam")),
    { path: "paylane/config/firstboot.env", content: env },
    { path: "paylane/config/kiosk.json", content: `${JSON.stringify(config, null, 2)}\n` },
  ];
  if (wifi) files.push({ path: "paylane/config/wifi.nmconnection", content: wifi });
  if (options.sshAuthorizedKey)
    files.push({ path: "paylane/config/authorized_keys", content: `${options.sshAuthorizedKey.trim()}\n` });
  if (options.cloudCa) files.push({ path: "paylane/config/cloud-ca.pem", content: options.cloudCa });
  if (options.updateSigningKey)
    files.push({ path: "paylane/config/update-signing.pub", content: options.updateSigningKey });

  return { files, editCmdline, versions: { ...built.versions, release: manifest.id } };
}
