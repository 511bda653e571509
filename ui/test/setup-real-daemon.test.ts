/**
 * The setup screen against the real kiosk daemon in setup mode (device/src/setup),
 * in real Chromium at 800×480: a kiosk.json without a secret, a stand-in for
 * the cloud's enrolment endpoint, and a claim code scanned at the screen: a
 * refusal is shown in the daemon's words, and then the kiosk enrols, becomes
 * the daemon in the same process, and the page moves on to "Tap your card".
 *
 * The daemon serves the built UI from ui/dist/kiosk, as on a kiosk: `npm test`
 * builds it first (pretest); run alone, build it with `npm run build`.
 *
 *   node --import tsx ui/test/setup-real-daemon.test.ts
 */
import { mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { newClaimCode } from "@paylane/protocol";
import pino from "pino";
import type { Browser, Page } from "playwright-core";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { KioskRunner } from "../../device/src/setup/kiosk-runner.ts";
import { FakeCloud } from "../../device/test/enrol-fake-cloud.ts";
import { launchChromium } from "../../test/support/browser.ts";
import { loud } from "../../test/support/hooks.ts";
import { kioskDist } from "../dist.ts";
import { VIEWPORT } from "./kiosk-harness.ts";
import { layoutProblems, seePanel, seeScreen, text } from "./setup-harness.ts";

const it = suite("setup screen on the real daemon");
const CODE = newClaimCode();
let cloud: FakeCloud;
let dir: string;
let runner: KioskRunner;
let browser: Browser;
let page: Page;
const errors: string[] = [];

/** The newest modification time of the files under a folder. */
async function newest(folder: string): Promise<number> {
  let latest = 0;
  for (const entry of await readdir(folder, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) latest = Math.max(latest, (await stat(join(entry.parentPath, entry.name))).mtimeMs);
  }
  return latest;
}

/** A port free right now: setup mode and the daemon after it listen on the same one, as on a kiosk. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

it.before(
  loud("setup screen on the real daemon: test setup", async () => {
    const built = await stat(join(kioskDist, "app.js")).catch(() => undefined);
    const source = await newest(new URL("../src/", import.meta.url).pathname);
    if (!built || built.mtimeMs < source) {
      throw new Error("ui/dist/kiosk is missing or older than ui/src: run npm run build (npm test does it first)");
    }
    cloud = new FakeCloud();
    await cloud.start();
    cloud.claims.set(CODE.replaceAll("-", ""), "demo");
    dir = await mkdtemp(join(tmpdir(), "paylane-setup-ui-"));
    await writeFile(
      join(dir, "kiosk.json"),
      JSON.stringify({
        site: "demo",
        mqttUrl: "mqtt://127.0.0.1:9",
        cloudUrl: cloud.url,
        dataDir: join(dir, "data"),
        http: { host: "127.0.0.1", port: await freePort() },
        reader: { type: "pn532-simulator", pollIntervalMs: 5 },
        printer: { type: "simulator" },
      }),
    );
    runner = new KioskRunner({
      configPath: join(dir, "kiosk.json"),
      logger: pino({ level: "silent" }),
      setup: { addresses: () => ["192.0.2.7"], ntpSynchronized: async () => true },
    });
    await runner.start();
    browser = await launchChromium();
    page = await browser.newPage({ viewport: VIEWPORT });
    page.setDefaultTimeout(10_000);
    page.on("pageerror", (err) => errors.push(err.message));
    page.on("console", (msg) => {
      // Refused WebSockets and the 409/404s of setup mode are how the page learns where it is;
      // refused connections, the moment between setup mode stopping and the daemon listening.
      const expected = /^WebSocket connection|status of (409|404)|ERR_CONNECTION_REFUSED/;
      if (msg.type() === "error" && !expected.test(msg.text())) {
        errors.push(msg.text());
      }
    });
  }),
);

it.after(async () => {
  await browser?.close();
  await runner?.stop();
  await cloud?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

it("diagnostics from the setup screen: the daemon's checks, each ✓, and a test receipt printed", async () => {
  await page.goto(`http://127.0.0.1:${runner.port}/`);
  await seeScreen(page, "setup");
  await page.getByTestId("open-diagnostics").click();
  await seeScreen(page, "diagnostics");
  // The simulated reader may still be starting on the first look: Refresh until it is found.
  const reader = page.locator('[data-testid="check-reader"][data-ok="true"]');
  for (let i = 0; i < 50 && !(await reader.count()); i++) {
    await page.getByTestId("refresh-diagnostics").click();
    await page.locator('[data-testid="diagnostics"][aria-busy="false"]').waitFor();
  }
  for (const key of ["reader", "printer", "gpio", "cloud", "clock"]) {
    assert.is(await page.getByTestId(`check-${key}`).getAttribute("data-ok"), "true", await text(page, `check-${key}`));
  }
  await page.getByTestId("test-receipt").click();
  await page.getByTestId("receipt-result").filter({ hasText: "✓" }).waitFor();
  assert.is(await text(page, "receipt-result"), "✓ Test receipt printed");
  assert.equal(await layoutProblems(page), []);
  await page.getByTestId("close-diagnostics").click();
  await seePanel(page, "entry");
});

it("a code the cloud refuses: the daemon's reason and fix on screen, and Try again", async () => {
  await seeScreen(page, "setup");
  cloud.refuse = "claim-expired";
  // The keypad listens for keys once it is on the screen: typed before, a loaded machine loses them.
  await seePanel(page, "entry");
  await page.keyboard.type(`${CODE}\n`);
  await seePanel(page, "failed");
  assert.is(await text(page, "failure-message"), "This claim code has expired.");
  assert.match(await text(page, "failure-fix"), /^To fix: Create a new one \(paylane-provision claim create/);
  assert.equal(await layoutProblems(page), []);
  cloud.refuse = undefined;
  await page.getByTestId("try-again").click();
  assert.equal(errors, [], "no page errors");
});

it("a claim code scanned at the setup screen enrols the kiosk, and the page moves on to Tap your card", async () => {
  await seeScreen(page, "setup");
  await seePanel(page, "entry");
  assert.is(await text(page, "setup-site"), "demo");
  const device = await text(page, "setup-device");
  assert.match(device, /^kiosk-[0-9a-f]{8}$/);
  assert.is(await text(page, "setup-device"), `kiosk-${(await text(page, "setup-fingerprint")).slice(0, 8)}`);
  assert.is(await text(page, "setup-network"), "Online · 192.0.2.7");
  assert.is(await text(page, "setup-cloud"), cloud.url);
  assert.equal(await layoutProblems(page), []);

  await page.keyboard.type(`${CODE}\n`);
  await page.locator('[data-testid="screen"][data-screen="attract"]').waitFor({ timeout: 20_000 });
  assert.match(await text(page, "message"), /Tap your card/);
  assert.is(await text(page, "kiosk-id"), `demo / ${device}`);
  assert.is(cloud.enrolRequests.length, 2, "the refused enrolment and this one");
  assert.equal(errors, [], "no page errors");
});

it.run();
