#!/usr/bin/env -S node --import tsx
/**
 * `paylane-provision`: what an installer runs. Build a kiosk image from stock
 * Raspberry Pi OS, flash it with read-back verification, create the claim
 * codes kiosks enrol with, enrol a kiosk by hand, and manage enrolled devices.
 * This file is the composition: flags (commander, the shared createCommand),
 * then one module a sub-command under cli/.
 */
import { ConfigError, createCommand, EXIT, oneLine } from "@paylane/protocol/service";
import { bundleCommands } from "./cli/bundle.ts";
import { claimCommands } from "./cli/claim.ts";
import { deviceCommands } from "./cli/device.ts";
import { enrolCommand } from "./cli/enrol.ts";
import { ProvisionError } from "./cli/errors.ts";
import { flashCommand } from "./cli/flash.ts";
import { imageCommands } from "./cli/image.ts";

export const NAME = "paylane-provision";

// `npm run provision -- …` runs in the repository's top folder; paths the installer typed are relative to where
// they typed them (npm says where in INIT_CWD).
if (process.env.npm_lifecycle_event === "provision" && process.env.INIT_CWD) process.chdir(process.env.INIT_CWD);

const ENVIRONMENT = [
  "  PAYLANE_CLOUD_URL   the cloud API, when --cloud-url is not given (default http://127.0.0.1:8080)",
  "  PAYLANE_TOKEN       an admin operator token (JWT), when --token-file is not given",
  "  PAYLANE_DATA        npm start's data folder, where --token-file defaults to operator-token (default .paylane)",
  "  NO_COLOR            set: no colours",
].join("\n");

const program = createCommand({
  name: NAME,
  packageJson: new URL("../package.json", import.meta.url),
  description:
    "Turns a stock Raspberry Pi OS image into a kiosk image for one site, flashes it with progress and read-back " +
    "verification, and enrols kiosks with single-use claim codes (docs/install.md).",
  errorPrefix: `${NAME}:`,
  sections: [
    { title: "Environment", body: ENVIRONMENT },
    { title: "Exit codes", body: "  0 done · 1 failed · 2 bad usage (nothing was changed)" },
  ],
  examples: [
    {
      command: `${NAME} claim create --site demo --qr-dir claims/`,
      does: "a claim code for site demo, valid 24 hours, printed and as a QR code",
    },
    {
      command: `${NAME} image build --base raspios.img.xz --site demo --cloud-url https://cloud.example --mqtt-url mqtts://mqtt.example --claim 12345-67890-12345-67894 --out kiosk.img`,
      does: "a kiosk image for site demo that enrols itself on first boot",
    },
    { command: `${NAME} flash --image kiosk.img --device /dev/sdb`, does: "write it to an SD card and verify it" },
    { command: `${NAME} device list --site demo`, does: "the site's enrolled kiosks" },
  ],
});

imageCommands(program);
bundleCommands(program);
flashCommand(program);
claimCommands(program);
enrolCommand(program);
deviceCommands(program);

program.parseAsync().catch((err: unknown) => {
  const usage = err instanceof ConfigError;
  const code = usage ? EXIT.usage : err instanceof ProvisionError ? err.exitCode : EXIT.failed;
  process.stderr.write(`${NAME}: ${oneLine(err)}${usage ? ` (see ${NAME} --help)` : ""}\n`);
  process.exitCode = code;
});
