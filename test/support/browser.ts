import { existsSync } from "node:fs";
import { mkdir, mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Browser, chromium } from "playwright-core";

export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

/**
 * Debian's Chromium, headless, with nothing that reaches for the network.
 * `extraArgs`: more switches, e.g. `--host-resolver-rules=MAP rebind.test 127.0.0.1`.
 */
export async function launchChromium(extraArgs: string[] = []): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}: apt-get install chromium, or set CHROMIUM`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--no-first-run",
      ...extraArgs,
    ],
  });
}

/**
 * A folder for one run's screenshots, for a person to look at afterwards (so
 * it is kept): `$SCREENSHOTS/<name>` when set, else a new temp folder, never a
 * fixed path another run could overwrite.
 */
export async function screenshotDir(name: string): Promise<string> {
  if (process.env.SCREENSHOTS) {
    const dir = join(process.env.SCREENSHOTS, name);
    await mkdir(dir, { recursive: true });
    return dir;
  }
  return mkdtemp(join(tmpdir(), `paylane-${name}-screenshots-`));
}
