/**
 * What the setup screen's browser tests share: a suite with the built UI, a
 * fake daemon in setup mode (SetupDaemon) and Chromium at the Pi touch
 * display's 800×480, and a check that nothing on a screen is cut off.
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Browser, Page } from "playwright-core";
import { suite, type Test } from "uvu";
import * as assert from "uvu/assert";
import { launchChromium } from "../../test/support/browser.ts";
import { loud } from "../../test/support/hooks.ts";
import { buildKiosk, VIEWPORT } from "./kiosk-harness.ts";
import { SetupDaemon } from "./setup-daemon.ts";

/** Where the docs' screenshots go (docs/install.md shows them). */
export const DOCS_IMG = fileURLToPath(new URL("../../docs/img/", import.meta.url));

export interface SetupCtx {
  browser: Browser;
  daemon: SetupDaemon;
  base: string;
  page: Page;
  removeBuild: () => Promise<void>;
  errors: string[];
}

/**
 * Chromium logs each refused WebSocket (the live view is closed in setup
 * mode), each 409 of `/api/state` (how setup mode is told), the 404 of the
 * price list the payment side asks for at start (no kiosk routes in setup
 * mode) and the 400s some tests provoke.
 */
const EXPECTED_CONSOLE = /^WebSocket connection|status of (409|404|400)/;

export function setupSuite(name: string): {
  test: Test<SetupCtx>;
  it: (name: string, fn: (ctx: SetupCtx) => Promise<void>) => void;
} {
  const test = suite<SetupCtx>(name);

  test.before(
    loud(`${name} test setup`, async (ctx) => {
      const build = await buildKiosk();
      ctx.removeBuild = build.remove;
      ctx.daemon = new SetupDaemon(build.dir);
      ctx.base = await ctx.daemon.start();
      ctx.browser = await launchChromium();
    }),
  );

  test.after(async (ctx) => {
    await ctx.browser?.close();
    await ctx.daemon?.stop();
    await ctx.removeBuild?.();
  });

  test.before.each(async (ctx) => {
    ctx.daemon.reset();
    ctx.errors = [];
    // Fixed time zone and locale: the docs' screenshots come out the same on every machine.
    ctx.page = await ctx.browser.newPage({ viewport: VIEWPORT, timezoneId: "UTC", locale: "en-GB" });
    ctx.page.setDefaultTimeout(5000);
    ctx.page.on("pageerror", (err) => ctx.errors.push(err.message));
    ctx.page.on("console", (msg) => {
      if (msg.type() === "error" && !EXPECTED_CONSOLE.test(msg.text())) ctx.errors.push(msg.text());
    });
    // The setup state is asked for every 100 ms rather than every second, from the first poll on:
    // the attribute is set as the page is parsed, before the app's module runs.
    await ctx.page.addInitScript(() => {
      new MutationObserver((_, observer) => {
        const kiosk = document.querySelector("paylane-kiosk");
        if (!kiosk) return;
        kiosk.setAttribute("setup-poll-ms", "100");
        observer.disconnect();
      }).observe(document, { childList: true, subtree: true });
    });
  });

  test.after.each(async (ctx) => {
    await ctx.page.close();
  });

  function it(name: string, fn: (ctx: SetupCtx) => Promise<void>): void {
    test(name, async (ctx) => {
      const started = Date.now();
      await fn(ctx);
      if (process.env.TIMINGS) console.log(`  ${Date.now() - started} ms  ${name}`);
      assert.equal(ctx.errors, [], "no page errors");
      assert.equal(ctx.daemon.refused, [], "every POST carried the token and JSON");
      assert.equal(ctx.daemon.offContract, [], "every answer the test scripted is one the contract allows");
    });
  }

  return { test, it };
}

/** Wait for this screen (`data-screen` of the app's main). */
export function seeScreen(page: Page, screen: string): Promise<void> {
  return page.locator(`[data-testid="screen"][data-screen="${screen}"]`).waitFor();
}

/** Wait for the setup screen's right-hand panel to be this one. */
export function seePanel(page: Page, panel: "entry" | "enrolling" | "failed" | "enrolled"): Promise<void> {
  return page.locator(`[data-testid="setup-panel"][data-panel="${panel}"]`).waitFor();
}

/** The visible text of an element, spaces collapsed. */
export async function text(page: Page, testId: string): Promise<string> {
  // biome-ignore lint/performance/useDomNodeTextContent: the text as laid out is what a person reads
  return ((await page.getByTestId(testId).innerText()) ?? "").replace(/\s+/g, " ").trim();
}

/**
 * What is wrong with the layout as shown, in words: an element (shadow roots
 * included) reaching outside the screen, content wider than its box, or a
 * button less than 48 px high (a fingertip). Empty when all is well.
 */
export function layoutProblems(page: Page): Promise<string[]> {
  // No named functions inside: tsx would wrap them in a helper the page does not have.
  return page.evaluate(({ width, height }) => {
    const problems: string[] = [];
    const roots: (Document | ShadowRoot)[] = [document];
    for (let root = roots.pop(); root; root = roots.pop()) {
      for (const el of root.querySelectorAll<HTMLElement>("*")) {
        if (el.shadowRoot) roots.push(el.shadowRoot);
        const r = el.getBoundingClientRect();
        if (r.width === 0 && r.height === 0) continue;
        const name = `<${el.tagName.toLowerCase()}${el.dataset?.testid ? ` data-testid=${el.dataset.testid}` : ""}>`;
        if (r.left < -0.5 || r.top < -0.5 || r.right > width + 0.5 || r.bottom > height + 0.5) {
          const at = [r.left, r.top, r.right, r.bottom].map(Math.round);
          problems.push(`${name} reaches outside the screen: ${at[0]},${at[1]} to ${at[2]},${at[3]}`);
        }
        if (el.scrollWidth > el.clientWidth + 1 && el.clientWidth > 0) {
          problems.push(`${name} overflows horizontally: ${el.scrollWidth} px of content in ${el.clientWidth} px`);
        }
        if (el.tagName === "BUTTON" && r.height < 47.5) {
          problems.push(`${name} is ${Math.round(r.height)} px high`);
        }
      }
    }
    return problems;
  }, VIEWPORT);
}

/** Save what the page shows as docs/img/<name>.png. */
export async function docsScreenshot(page: Page, name: string): Promise<void> {
  await mkdir(DOCS_IMG, { recursive: true });
  await page.screenshot({ path: join(DOCS_IMG, `${name}.png`) });
}
