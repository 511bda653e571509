/**
 * What goes into a kiosk image (docs/kiosk-image.md), as files for the boot
 * partition: firstrun.sh at its root, everything else under paylane/:
 *
 *   paylane/opt/        the kiosk bundle and its helper scripts, installed as /opt/paylane
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
  progress?.("adding units and the first-boot script");

  const files: BootFile[] = [
    { path: "firstrun.sh", content: await readFile(join(ASSETS, "first-boot/firstrun.sh")) },
    ...built.files.map((f) => ({ path: `paylane/opt/${f.path}`, content: f.content })),
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

  return { files, editCmdline, versions: { ...built.versions } };
}
