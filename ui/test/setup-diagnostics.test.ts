/**
 * The kiosk's first boot in real Chromium at 800×480, continued: a code baked
 * into the image enrols without the keypad (offered again after a failure),
 * no network is said with what to do, and the diagnostics page a technician
 * opens from the setup screen, or later from `#diagnostics` or a long press
 * on the kiosk id: a row per check with ✓ or ✗ and its detail, Refresh, and
 * the test receipt's result. Saves docs/img/diagnostics-screen.png.
 *
 *   node --import tsx ui/test/setup-diagnostics.test.ts
 */
import { claimCheckDigit } from "@paylane/protocol/setup-api";
import type { Page } from "playwright-core";
import * as assert from "uvu/assert";
import { docsScreenshot, layoutProblems, seePanel, seeScreen, setupSuite, text } from "./setup-harness.ts";

const { test, it } = setupSuite("kiosk setup diagnostics");

const BODY = "2718281828459045235";
const CODE = BODY + claimCheckDigit(BODY);

async function open(page: Page, base: string): Promise<void> {
  await page.goto(base);
  await seeScreen(page, "setup");
}

/** Each check's row as shown: its mark, name and detail. */
async function rows(page: Page): Promise<string[]> {
  const out: string[] = [];
  for (const key of ["reader", "printer", "gpio", "cloud", "clock"]) out.push(await text(page, `check-${key}`));
  return out;
}

it("no network is said with what to do; a code in the image enrols without the keypad, which comes back after a failure", async (ctx) => {
  ctx.daemon.setup = {
    ...ctx.daemon.setup,
    claimInImage: true,
    network: { online: false, addresses: [] },
    enrolment: { state: "failed", reason: "no-network" },
  };
  await open(ctx.page, ctx.base);
  await seePanel(ctx.page, "failed");
  assert.is(
    await text(ctx.page, "setup-network"),
    "No network: plug in Ethernet or check the Wi-Fi settings in the image",
  );
  assert.is(await text(ctx.page, "failure-message"), "This kiosk has no network.");
  assert.is(await text(ctx.page, "failure-fix"), "To fix: Plug in Ethernet or check the Wi-Fi settings in the image.");
  assert.equal(await layoutProblems(ctx.page), []);

  // The cable is in: the kiosk tries its image's code again by itself.
  ctx.daemon.setup = {
    ...ctx.daemon.setup,
    network: { online: true, addresses: ["10.0.0.7"] },
    enrolment: { state: "enrolling", step: "request" },
  };
  await seePanel(ctx.page, "enrolling");
  assert.is(await text(ctx.page, "setup-status"), "Enrolling with the code from the image…");
  assert.is(await ctx.page.getByTestId("key-1").count(), 0, "no keypad while the image's code is tried");
  assert.is(await text(ctx.page, "setup-network"), "Online · 10.0.0.7");

  ctx.daemon.enrolment({
    state: "failed",
    reason: "clock-skew",
    message: "This kiosk's clock is 2 hours behind the cloud's.",
  });
  await seePanel(ctx.page, "failed");
  assert.is(await text(ctx.page, "failure-message"), "This kiosk's clock is 2 hours behind the cloud's.");
  assert.match(await text(ctx.page, "failure-fix"), /time server \(NTP\)/);
  await ctx.page.getByTestId("try-again").click();
  await seePanel(ctx.page, "entry");
  await ctx.page.keyboard.type(CODE);
  await ctx.page.getByTestId("enrol").click();
  await seePanel(ctx.page, "enrolling");
  assert.equal(ctx.daemon.claims, [CODE]);
});

it("diagnostics from the setup screen: a row per check with ✓ or ✗ and its detail, Refresh, the test receipt; Close goes back", async (ctx) => {
  ctx.daemon.diagnostics = {
    ...ctx.daemon.diagnostics,
    printer: { ok: true, detail: "ESC/POS on /dev/usb/lp0", paper: "low" },
    clock: { ok: false, detail: "not synchronised: no NTP server answers" },
  };
  await open(ctx.page, ctx.base);
  await ctx.page.getByTestId("open-diagnostics").click();
  await seeScreen(ctx.page, "diagnostics");
  await ctx.page.getByTestId("check-clock").waitFor();
  assert.is(await text(ctx.page, "message"), "Diagnostics");
  assert.equal(await rows(ctx.page), [
    "✓ Card reader PN532 v1.6 on /dev/serial0",
    "✓ Receipt printer ESC/POS on /dev/usb/lp0 (paper low)",
    "✓ GPIO door relay on GPIO 17",
    "✓ Cloud https://cloud.paylane.example answered in 84 ms",
    "✗ Clock not synchronised: no NTP server answers",
  ]);
  assert.is(await ctx.page.getByTestId("check-clock").getAttribute("data-ok"), "false");
  assert.is(await text(ctx.page, "diagnostics-at"), "Checked at 09:30:00");

  await ctx.page.getByTestId("test-receipt").click();
  await ctx.page.getByTestId("receipt-result").filter({ hasText: "✓" }).waitFor();
  assert.is(await text(ctx.page, "receipt-result"), "✓ Test receipt printed");
  assert.is(ctx.daemon.testReceipts, 1);
  for (const id of ["close-diagnostics", "refresh-diagnostics", "test-receipt"]) {
    const box = await ctx.page.getByTestId(id).boundingBox();
    assert.ok(box && box.height >= 48, `${id} is ${box?.height} px high`);
  }
  assert.equal(await layoutProblems(ctx.page), []);
  await docsScreenshot(ctx.page, "diagnostics-screen");

  // The time server answers now; Refresh shows it. The paper runs out: the test receipt says so.
  ctx.daemon.diagnostics = {
    ...ctx.daemon.diagnostics,
    printer: { ok: false, detail: "paper out", paper: "out" },
    clock: { ok: true, detail: "NTP synchronised, 3 ms off" },
  };
  ctx.daemon.onTestReceipt = () => ({ status: 200, body: { printed: false, detail: "not printed: paper-out" } });
  await ctx.page.getByTestId("refresh-diagnostics").click();
  await ctx.page.locator('[data-testid="check-clock"][data-ok="true"]').waitFor();
  assert.is(await text(ctx.page, "check-printer"), "✗ Receipt printer paper out");
  await ctx.page.getByTestId("test-receipt").click();
  await ctx.page.getByTestId("receipt-result").filter({ hasText: "✗" }).waitFor();
  assert.is(await text(ctx.page, "receipt-result"), "✗ Not printed: paper-out");
  assert.equal(await layoutProblems(ctx.page), []);

  await ctx.page.getByTestId("close-diagnostics").click();
  await seeScreen(ctx.page, "setup");
  await seePanel(ctx.page, "entry");
});

it("on an enrolled kiosk a technician opens diagnostics with #diagnostics or a long press on the kiosk id", async (ctx) => {
  ctx.daemon.enrolled(true);
  await ctx.page.goto(`${ctx.base}#diagnostics`);
  await seeScreen(ctx.page, "diagnostics");
  await ctx.page.getByTestId("check-reader").waitFor();
  await ctx.page.getByTestId("close-diagnostics").click();
  await seeScreen(ctx.page, "attract");
  assert.is(new URL(ctx.page.url()).hash, "", "closed: the address no longer opens diagnostics");

  // A tap on the kiosk id does nothing; holding it opens diagnostics.
  const id = ctx.page.getByTestId("kiosk-id");
  await id.click();
  assert.is(await ctx.page.locator('[data-screen="attract"]').count(), 1);
  const box = await id.boundingBox();
  assert.ok(box);
  await ctx.page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await ctx.page.mouse.down();
  await seeScreen(ctx.page, "diagnostics");
  await ctx.page.mouse.up();
  assert.is(ctx.daemon.diagnosticsAsked, 2);
});

test.run();
