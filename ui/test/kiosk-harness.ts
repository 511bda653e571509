/**
 * What the kiosk's browser tests share: a private build of the UI, and
 * waiting for a screen the way a user sees it.
 */
import { execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Page } from "playwright-core";

const BUILD = fileURLToPath(new URL("../build.mjs", import.meta.url));

/** Raspberry Pi 7" touch display. */
export const VIEWPORT = { width: 800, height: 480 };

/**
 * Build the current source into a folder of its own (test files run side by
 * side, and ui/dist is what other tests serve). `remove` deletes it.
 */
export async function buildKiosk(): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "paylane-kiosk-"));
  execFileSync(process.execPath, [BUILD, dir], { stdio: "inherit" });
  return { dir: `${dir}/`, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** Wait for a screen showing exactly this message (one wait, so a short-lived screen is not missed). */
export async function seeScreen(page: Page, screen: string, message?: string): Promise<void> {
  const el = page.locator(`[data-testid="screen"][data-screen="${screen}"]`);
  if (message === undefined) return el.waitFor();
  await el.filter({ has: page.getByTestId("message").filter({ hasText: exactly(message) }) }).waitFor();
}

export function exactly(text: string): RegExp {
  return new RegExp(`^\\s*${text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\s*$`);
}
