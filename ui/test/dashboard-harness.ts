/**
 * The ops dashboard in real Chromium against a real site (test/support/site.ts:
 * broker, cloud on Postgres, own schema, kiosk daemons with simulated readers). Operators
 * are real accounts made through the users API, and each signs in through the
 * login form. Every page's console errors and CSP violations fail the test:
 * the dashboard must run under the cloud's strict CSP with nothing blocked.
 */
import { randomBytes } from "node:crypto";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import type { ConsoleRole } from "@paylane/protocol";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { suite, type Test } from "uvu";
import { launchChromium, screenshotDir } from "../../test/support/browser.ts";
import { loud } from "../../test/support/hooks.ts";
import { TestSite, type TestSiteOptions } from "../../test/support/site.ts";
import { dashboardDist } from "../dist.ts";

export interface Operator {
  username: string;
  password: string;
  role: ConsoleRole;
}

export interface DashboardCtx {
  site: TestSite;
  browser: Browser;
  /** The dashboard's URL on the site's cloud. */
  base: string;
  shots: string;
  operators: Record<ConsoleRole, Operator>;
  /** Console errors and CSP violations of every page opened (each test expects none). */
  problems: string[];
  contexts: BrowserContext[];
}

/** A uvu suite with a started site, one account per role, and Chromium. */
export function dashboardSuite(
  name: string,
  o: Partial<TestSiteOptions> = {},
): { test: Test<DashboardCtx>; ctx: DashboardCtx } {
  const ctx = { problems: [], contexts: [] } as unknown as DashboardCtx;
  const test = suite<DashboardCtx>(name, ctx);
  test.before(
    loud(`${name}: site and browser`, async () => {
      const built = await stat(join(dashboardDist, "index.html")).catch(() => undefined);
      if (!built) throw new Error(`the dashboard is not built (${dashboardDist}): run npm run build`);
      ctx.site = new TestSite({ db: "pg", presence: "memory", broker: "aedes", probes: [], ...o });
      const [, browser, shots] = await Promise.all([
        ctx.site.start(),
        launchChromium(),
        screenshotDir(name.replace(/\W+/g, "-")),
      ]);
      ctx.browser = browser;
      ctx.shots = shots;
      ctx.base = `${ctx.site.cloud!.url}/dashboard/`;
      ctx.operators = {} as DashboardCtx["operators"];
      for (const role of ["viewer", "operator", "finance", "admin"] as const) {
        const op = {
          username: `${role}-${randomBytes(2).toString("hex")}`,
          password: randomBytes(12).toString("base64url"),
          role,
        };
        const res = await ctx.site.operator("POST", "/api/v1/users", { ...op, sites: null });
        if (res.status !== 201 && res.status !== 200) {
          throw new Error(`could not create the ${role} account: ${res.status} ${JSON.stringify(res.body)}`);
        }
        ctx.operators[role] = op;
      }
      console.log(`  screenshots: ${shots}`);
    }),
  );
  test.after.each(async () => {
    ctx.problems.length = 0;
    for (const c of ctx.contexts.splice(0)) await c.close();
  });
  test.after(async () => {
    await ctx.browser?.close();
    await ctx.site?.stop();
  });
  return { test, ctx };
}

/** A fresh browser profile (no cookies) with the dashboard open, watched for errors. */
export async function openDashboard(ctx: DashboardCtx, viewport = { width: 1280, height: 860 }): Promise<Page> {
  const context = await ctx.browser.newContext({ viewport });
  ctx.contexts.push(context);
  const page = await context.newPage();
  // A step that does not happen fails within the file's budget, naming what it waited for.
  page.setDefaultTimeout(10_000);
  page.on("console", (m) => {
    // A refused call is logged by Chromium as "Failed to load resource" (the boot's refresh without a
    // cookie is one): those are judged by their status below. CSP violations and script errors stay.
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource"))
      ctx.problems.push(`console: ${m.text()}`);
  });
  page.on("response", (r) => {
    if (r.status() >= 500) ctx.problems.push(`${r.status()} from ${r.request().method()} ${r.url()}`);
  });
  page.on("requestfailed", (r) => {
    // A call cut short by a reload (ERR_ABORTED) or a WebSocket closed by a test stopping the site is
    // not the page's fault; anything else is.
    if (r.resourceType() !== "websocket" && r.failure()?.errorText !== "net::ERR_ABORTED")
      ctx.problems.push(`request failed: ${r.method()} ${r.url()} ${r.failure()?.errorText}`);
  });
  page.on("pageerror", (e) => ctx.problems.push(`page error: ${e.message}`));
  await page.goto(ctx.base);
  return page;
}

/** Signs in through the login form as `role`'s account; resolves when the navigation shows. */
export async function signIn(ctx: DashboardCtx, role: ConsoleRole, viewport?: { width: number; height: number }) {
  const page = await openDashboard(ctx, viewport);
  const op = ctx.operators[role];
  await page.getByLabel("Username").fill(op.username);
  await page.getByLabel("Password").fill(op.password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("navigation", { name: "Sections" }).waitFor();
  return page;
}

/** Saves a full-page screenshot under the run's folder; returns its path. */
export async function screenshot(ctx: DashboardCtx, page: Page, name: string): Promise<string> {
  const path = join(ctx.shots, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** The visible text of the page's main region. */
export async function mainText(page: Page): Promise<string> {
  // biome-ignore lint/performance/useDomNodeTextContent: the rendered text (cells apart, hidden parts left out) is what is asserted
  return (await page.locator("main").innerText()).replace(/\s+/g, " ");
}
