/**
 * What the kiosk's browser tests share: a suite with the built UI, the fake
 * daemon and Chromium set up, and waiting for a screen the way a user sees it.
 */
import { execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Browser, Page } from "playwright-core";
import { suite, type Test } from "uvu";
import * as assert from "uvu/assert";
import { launchChromium, screenshotDir } from "../../test/support/browser.ts";
import { loud } from "../../test/support/hooks.ts";
import { FakeDaemon } from "./fake-daemon.ts";

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

export interface KioskCtx {
  browser: Browser;
  daemon: FakeDaemon;
  /** The fake daemon's URL, serving this run's build. */
  base: string;
  /** A fresh page for each test. */
  page: Page;
  removeBuild: () => Promise<void>;
  /** Uncaught page errors and console errors (CSP violations among them). */
  errors: string[];
  /** This run's screenshot folder (see `screenshot`). */
  shots: string;
}

/**
 * A uvu suite of browser tests: once, a build of the current source (not
 * whatever dist was left behind) served by a FakeDaemon, and Chromium; for each
 * test a reset daemon and a new page whose errors are collected. `it` adds a
 * test that also fails on those errors. Console errors matching
 * `expectedConsoleErrors` are ones the suite provokes on purpose.
 */
export function kioskSuite(
  name: string,
  expectedConsoleErrors: RegExp,
): { test: Test<KioskCtx>; it: (name: string, fn: (ctx: KioskCtx) => Promise<void>) => void } {
  const test = suite<KioskCtx>(name);

  test.before(loud(`${name} test setup`, setUp));

  test.after(async (ctx) => {
    if (ctx.shots) console.log(`  screenshots: ${ctx.shots}`);
    await ctx.browser?.close();
    await ctx.daemon?.stop();
    await ctx.removeBuild?.();
  });

  test.before.each(async (ctx) => {
    ctx.daemon.reset();
    ctx.errors = [];
    ctx.page = await ctx.browser.newPage({ viewport: VIEWPORT });
    ctx.page.setDefaultTimeout(5000);
    ctx.page.on("pageerror", (err) => ctx.errors.push(err.message));
    ctx.page.on("console", (msg) => {
      if (msg.type() === "error" && !expectedConsoleErrors.test(msg.text())) ctx.errors.push(msg.text());
    });
  });

  test.after.each(async (ctx) => {
    await ctx.page.close();
  });

  /** Checked in the test, not in an after.each hook: uvu swallows errors thrown by hooks. */
  function it(name: string, fn: (ctx: KioskCtx) => Promise<void>): void {
    test(name, async (ctx) => {
      const started = Date.now();
      await fn(ctx);
      if (process.env.TIMINGS) console.log(`  ${Date.now() - started} ms  ${name}`);
      assert.equal(ctx.errors, [], "no page errors");
      assert.equal(ctx.daemon.refused, [], "every call carried the token, JSON and the page's own Origin");
      assert.equal(ctx.daemon.offContract, [], "every answer the test scripted is one the contract allows");
    });
  }

  return { test, it };
}

async function setUp(ctx: KioskCtx): Promise<void> {
  const build = await buildKiosk();
  ctx.removeBuild = build.remove;
  ctx.daemon = new FakeDaemon(build.dir);
  ctx.base = await ctx.daemon.start();
  ctx.browser = await launchChromium();
  ctx.shots = await screenshotDir("kiosk-ui");
}

/** Save what the page shows as `<name>.png` in this run's screenshot folder. */
export async function screenshot(ctx: KioskCtx, name: string): Promise<void> {
  await ctx.page.screenshot({ path: join(ctx.shots, `${name}.png`) });
}

/** A receipt's QR code as the daemon sends it when nothing was printed: an SVG data URL. */
export const RECEIPT_QR = `data:image/svg+xml;base64,${Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1"/>').toString("base64")}`;

/** A WS round trip: once the UI shows this backlog, every earlier message on the socket was handled. */
export async function syncLive(ctx: KioskCtx, backlog: number): Promise<void> {
  ctx.daemon.setState({ backlog });
  await ctx.page
    .getByTestId("backlog")
    .filter({ hasText: `Backlog ${backlog}` })
    .waitFor();
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
