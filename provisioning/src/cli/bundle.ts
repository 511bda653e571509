/**
 * `paylane-provision bundle build`: an update bundle for kiosks already in the
 * field (docs/kiosk-updates.md): the same release an image carries, as one
 * .tar.gz that `paylane-update apply` installs on the kiosk.
 */

import { createPrivateKey, type KeyObject } from "node:crypto";
import { readFile } from "node:fs/promises";
import { ConfigError } from "@paylane/protocol/service";
import type { Command } from "commander";
import { InvalidArgumentError } from "commander";
import { mib } from "../progress.ts";

async function readSigningKey(path: string): Promise<KeyObject> {
  const pem = await readFile(path, "utf8").catch(() => {
    throw new ConfigError(`--sign-key ${path}: cannot read it`);
  });
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch {
    throw new ConfigError(`--sign-key ${path}: not a PEM private key`);
  }
  if (key.asymmetricKeyType !== "ed25519") {
    throw new ConfigError(
      `--sign-key ${path}: a ${key.asymmetricKeyType} key; expected Ed25519 (openssl genpkey -algorithm ed25519)`,
    );
  }
  return key;
}

const EXAMPLES = `
Examples:
  # the update bundle for the sources in this repository, for the Pi (linux-arm64)
  $ paylane-provision bundle build --out paylane-kiosk-1.1.0-linux-arm64.tar.gz

  # signed: kiosks holding the public key in /etc/paylane/update-signing.pub accept only signed bundles
  $ openssl genpkey -algorithm ed25519 -out update-signing.pem
  $ openssl pkey -in update-signing.pem -pubout -out update-signing.pub
  $ paylane-provision bundle build --sign-key update-signing.pem --out paylane-kiosk-1.1.0-linux-arm64.tar.gz

  # then on the kiosk (as root), with the SHA-256 printed here
  $ paylane-update apply paylane-kiosk-1.1.0-linux-arm64.tar.gz --sha256 <hex>`;

function archFlag(value: string): string {
  if (!/^(arm64|arm|x64)$/.test(value)) throw new InvalidArgumentError(`expected arm64, arm or x64, got ${value}`);
  return value;
}

export function bundleCommands(program: Command): void {
  const bundle = program.command("bundle").description("Kiosk update bundles: build one for paylane-update.");
  bundle
    .command("build")
    .description(
      "Builds the kiosk release (device daemon, touch UI, native-module lockfile, the updater) from this repository " +
        "and writes it as an update bundle with a manifest of every file's SHA-256. Prints the release id and the " +
        "bundle's SHA-256.",
    )
    .requiredOption("--out <file>", "where the bundle goes, e.g. paylane-kiosk-1.1.0-linux-arm64.tar.gz")
    .option("--arch <arch>", "the kiosks' architecture (Raspberry Pi OS 64-bit: arm64)", archFlag, "arm64")
    .option("--sign-key <pem-file>", "an Ed25519 private key (PEM) to sign the bundle's manifest with")
    .addHelpText("after", EXAMPLES)
    .action(async (flags: { out: string; arch: string; signKey?: string }) => {
      const key = flags.signKey ? await readSigningKey(flags.signKey) : undefined;
      process.stderr.write("building the kiosk release (device daemon, touch UI, updater)\n");
      // Loaded only now: esbuild and the whole daemon, which --help need not pay for.
      const { buildUpdateBundle } = await import("../update/build.ts");
      const { sha256File } = await import("../update/release.ts");
      const { stat } = await import("node:fs/promises");
      const manifest = await buildUpdateBundle(flags.out, flags.arch, key);
      const sha = await sha256File(flags.out);
      const bytes = (await stat(flags.out)).size;
      process.stdout.write(
        `${[
          `wrote ${flags.out} (${mib(bytes)} MiB, ${manifest.files.length} files)`,
          `release ${manifest.id} for ${manifest.platform}-${manifest.arch}${key ? ", signed (Ed25519)" : ", unsigned"}`,
          `sha256 ${sha}  ${flags.out}`,
          `next: on the kiosk, sudo paylane-update apply ${flags.out} --sha256 ${sha}`,
        ].join("\n")}\n`,
      );
    });
}
