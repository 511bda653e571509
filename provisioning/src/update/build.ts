/**
 * Build side of kiosk updates: the updater as one plain-JavaScript file for
 * the kiosk (esbuild, like the daemon), and the update bundle — the kiosk
 * bundle (kiosk-image/bundle.ts) plus that updater, with its manifest.
 */
import type { KeyObject } from "node:crypto";
import { join } from "node:path";
import * as esbuild from "esbuild";
import { REPO_ROOT } from "../kiosk-image/bundle.ts";
import type { BootFile } from "../kiosk-image/contents.ts";
import { type ReleaseManifest, releaseManifest, writeReleaseBundle } from "./release.ts";

/** Where a release carries the updater; a committed release's copy replaces /opt/paylane/updater's. */
export const UPDATER_PATH = "updater/paylane-update.mjs";

/** paylane-update (src/update/main.ts) bundled into one ESM file that needs only Node. */
export async function buildUpdater(repoRoot = REPO_ROOT): Promise<BootFile> {
  const result = await esbuild.build({
    absWorkingDir: repoRoot,
    entryPoints: [join(repoRoot, "provisioning/src/update/main.ts")],
    bundle: true,
    platform: "node",
    target: "node20",
    format: "esm",
    banner: {
      js: 'import { createRequire as __paylaneCreateRequire } from "node:module";\nconst require = __paylaneCreateRequire(import.meta.url);',
    },
    legalComments: "none",
    logLevel: "silent",
    write: false,
  });
  const out = result.outputFiles[0];
  if (!out) throw new Error("esbuild produced no updater");
  return { path: UPDATER_PATH, content: Buffer.from(out.contents) };
}

/** The release files of the image or an update bundle: the kiosk bundle and the updater. */
export async function releaseFiles(): Promise<{ files: BootFile[]; version: string }> {
  const { buildKioskBundle } = await import("../kiosk-image/bundle.ts");
  const [bundle, updater] = await Promise.all([buildKioskBundle(), buildUpdater()]);
  return { files: [...bundle.files, updater], version: bundle.versions["@paylane/device"] ?? "0.0.0" };
}

/** Writes an update bundle for `arch` (the image's arm64 by default) at `out`. */
export async function buildUpdateBundle(out: string, arch = "arm64", signKey?: KeyObject): Promise<ReleaseManifest> {
  const { files, version } = await releaseFiles();
  return writeReleaseBundle(files, { version, arch, platform: "linux" }, out, signKey);
}

export { releaseManifest };
