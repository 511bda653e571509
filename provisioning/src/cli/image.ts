/**
 * `paylane-provision image build`: a kiosk image for one site from a stock
 * Raspberry Pi OS image, without root (docs/image-and-flash.md). The flags
 * become KioskImageOptions (image/options.ts), kiosk-image/ decides what goes
 * in, image/build.ts writes it; progress on stderr, the hashes on stdout.
 */
import { type Command, Option } from "commander";
import { buildImage, removePartialOutputs } from "../image/build.ts";
import {
  cloudUrlFlag,
  countryFlag,
  deviceFlag,
  type ImageBuildFlags,
  mqttUrlFlag,
  resolveImageOptions,
  siteFlag,
  timezoneFlag,
} from "../image/options.ts";
import { createProgress, mib } from "../progress.ts";

const EXAMPLES = `
Examples:
  # a kiosk image for site demo that enrols itself on first boot with a baked-in claim code
  $ paylane-provision image build --base 2025-05-13-raspios-bookworm-arm64.img.xz --site demo \\
      --cloud-url https://cloud.example.com --mqtt-url mqtts://mqtt.example.com \\
      --claim 12345-67890-12345-67894 --out kiosk-demo.img

  # compressed output, Wi-Fi, an SSH key for the admin login, a read-only root
  $ paylane-provision image build --base raspios.img.xz --site demo --cloud-url https://cloud.example.com \\
      --mqtt-url mqtts://mqtt.example.com --wifi-ssid Venue --wifi-password-file wifi.txt --wifi-country GB \\
      --ssh-key ~/.ssh/id_ed25519.pub --read-only-root --out kiosk-demo.img.xz

The base is raw (.img) or xz-compressed (.img.xz), told apart by its first bytes. Needs mtools and xz-utils
(Debian/Ubuntu: apt-get install mtools xz-utils); no root, no loop devices. Writes <out>.manifest.json beside
the image: what went in, versions and hashes, never the claim code or Wi-Fi password.`;

export function imageCommands(program: Command): void {
  const image = program.command("image").description("Kiosk images: build one from stock Raspberry Pi OS.");
  image
    .command("build")
    .description(
      "Writes a kiosk image for one site: a copy of the base with the kiosk bundle, systemd units and a first-boot " +
        "script added to its FAT boot partition and cmdline.txt edited to run it. Prints the image's SHA-256.",
    )
    .requiredOption("--base <file>", "stock Raspberry Pi OS image, .img or .img.xz")
    .requiredOption("--site <id>", "the site the kiosk belongs to", siteFlag)
    .requiredOption("--out <file>", "where the kiosk image goes; ending in .xz: compressed with xz")
    .option("--device <id>", "the kiosk's device id (default: derived from its key, kiosk-<8 hex>)", deviceFlag)
    .option("--cloud-url <url>", "the cloud the kiosk enrols with (env PAYLANE_CLOUD_URL)", cloudUrlFlag)
    .option("--mqtt-url <url>", "the broker the kiosk connects to, e.g. mqtts://mqtt.example.com", mqttUrlFlag)
    .option(
      "--claim <code>",
      'a claim code to enrol with, or "-" to read it from standard input (not seen in ps); default: the kiosk asks on screen',
    )
    .option("--ca <pem-file>", "a private CA certificate the kiosk trusts for the cloud and broker")
    .option("--hostname <name>", "the kiosk's host name")
    .option("--timezone <zone>", "e.g. Europe/Berlin", timezoneFlag)
    .option("--locale <locale>", "e.g. en_GB.UTF-8")
    .option("--keyboard <layout>", "XKB layout, e.g. gb or de")
    .option("--wifi-ssid <name>", "Wi-Fi network (with --wifi-password[-file] and --wifi-country)")
    .option("--wifi-password <passphrase>", "its passphrase (visible in ps and shell history: prefer the file)")
    .option("--wifi-password-file <file>", "a file holding the passphrase")
    .option("--wifi-country <code>", "regulatory country, e.g. GB (Wi-Fi stays off without it)", countryFlag)
    .option("--ssh-key <file>", "an OpenSSH public key (.pub) allowed to log in as the admin user; unset: SSH off")
    .option(
      "--update-key <pem-file>",
      "the Ed25519 public key kiosk update bundles must be signed with (kiosk-updates.md)",
    )
    .option("--user <login>", "the admin login created on first boot (default with --ssh-key: kiosk-admin)")
    .option("--read-only-root", "root file system as a read-only overlay (survives power cuts)", false)
    .option("--hardware <json-file>", "reader, printer, terminal and GPIO sections of kiosk.json")
    .addOption(new Option("--manifest <file>", "where the manifest goes").default(undefined, "<out>.manifest.json"))
    .addHelpText("after", EXAMPLES)
    .action(async (flags: ImageBuildFlags) => {
      const resolved = await resolveImageOptions(flags);
      for (const note of resolved.notes) process.stderr.write(`${note}\n`);
      const progress = createProgress();
      deletePartialOutputOnInterrupt();
      const result = await buildImage({
        base: flags.base,
        out: flags.out,
        manifest: flags.manifest,
        // Called once the base image has passed its checks: the bundle takes seconds to build.
        // Loaded only then too: it brings esbuild and the whole device daemon, which --help need not pay for.
        contents: async () => {
          const { kioskImageContents } = await import("../kiosk-image/index.ts");
          return kioskImageContents(resolved.kiosk, (step) => process.stderr.write(`${step}\n`));
        },
        options: resolved.recorded,
        secrets: resolved.secrets,
        tool: `paylane-provision ${program.version() ?? ""}`.trim(),
        progress,
      });
      const lines = [
        `wrote ${result.out} (${mib(result.bytes)} MiB${result.manifest.output.compressed ? `; ${mib(result.raw.bytes)} MiB raw` : ""})`,
        `sha256 ${result.sha256}  ${result.out}`,
        ...(result.manifest.output.compressed ? [`sha256 ${result.raw.sha256}  (raw image, what flash writes)`] : []),
        `manifest ${result.manifestPath}`,
        ...(resolved.secrets.length > 0
          ? [
              `the image holds ${resolved.kiosk.claim ? "a claim code" : "Wi-Fi credentials"}${resolved.kiosk.claim && resolved.kiosk.wifi ? " and Wi-Fi credentials" : ""}: ` +
                "it is readable by you only (0600); keep it so until the kiosk has enrolled",
            ]
          : []),
        `next: paylane-provision flash --image ${result.out} --device /dev/sdX`,
      ];
      process.stdout.write(`${lines.join("\n")}\n`);
    });
}

/**
 * Ctrl-C (or a SIGTERM) in the middle of a build: the half-written image and
 * the staged kiosk files (a claim code among them) are deleted before exiting.
 * xz, in the same process group, gets the Ctrl-C itself.
 */
export function deletePartialOutputOnInterrupt(): void {
  const interrupted = (signal: NodeJS.Signals) => {
    removePartialOutputs();
    process.stderr.write(`\npaylane-provision: interrupted (${signal}); the partial image was deleted\n`);
    process.exit(signal === "SIGINT" ? 130 : 143);
  };
  process.once("SIGINT", interrupted);
  process.once("SIGTERM", interrupted);
}
