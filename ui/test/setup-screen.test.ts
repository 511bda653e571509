/**
 * The kiosk's first boot in real Chromium at the Pi touch display's 800×480:
 * until the daemon says the kiosk is enrolled, the setup screen shows who the
 * kiosk is and its network, takes a claim code from the keypad or a barcode
 * scanner (refusing a typo before sending it), follows the enrolment, says
 * why one failed and how to fix it, and goes on to the normal screen once
 * the kiosk runs. Saves docs/img/setup-screen.png.
 *
 *   node --import tsx ui/test/setup-screen.test.ts
 */
import { CLAIM_CODE_DIGITS, claimCheckDigit } from "@paylane/protocol/setup-api";
import type { Page } from "playwright-core";
import * as assert from "uvu/assert";
import { docsScreenshot, layoutProblems, seePanel, seeScreen, setupSuite, text } from "./setup-harness.ts";

const { test, it } = setupSuite("kiosk setup screen");

/** A claim code whose check digit matches, and the same code with one digit wrong. */
const BODY = "3141592653589793238";
const CODE = BODY + claimCheckDigit(BODY);
const TYPO = `${CODE.slice(0, 7)}${(Number(CODE[7]) + 1) % 10}${CODE.slice(8)}`;

async function open(page: Page, base: string): Promise<void> {
  await page.goto(base);
  await seeScreen(page, "setup");
}

/** Press the on-screen keys for these digits. */
async function pressKeys(page: Page, digits: string): Promise<void> {
  for (const d of digits) await page.getByTestId(`key-${d}`).click();
}

/** The code as it shows: the digits typed, in groups of five (the dots still to come left out). */
async function shownCode(page: Page): Promise<string> {
  return page.getByTestId("claim-code").evaluate((el) =>
    [...el.children]
      .map((group) => (group.textContent ?? "").replace(/[·\s]/g, ""))
      .filter(Boolean)
      .join(" "),
  );
}

async function enrolEnabled(page: Page): Promise<boolean> {
  return page.getByTestId("enrol").isEnabled();
}

it("shows the site, device, key, network and cloud, and a keypad for the claim code, all inside 800×480", async (ctx) => {
  await open(ctx.page, ctx.base);
  await seePanel(ctx.page, "entry");
  assert.is(await text(ctx.page, "message"), "Set up this kiosk");
  assert.is(await text(ctx.page, "setup-site"), "lido");
  assert.is(await text(ctx.page, "setup-device"), "kiosk-entrance");
  assert.is(await text(ctx.page, "setup-fingerprint"), "3f9a1c2be4d05a77");
  assert.is(await text(ctx.page, "setup-network"), "Online · 192.168.1.42, fe80::dea6:32ff:fe01:2a3b");
  assert.is(await text(ctx.page, "setup-cloud"), "https://cloud.paylane.example");
  assert.is(await text(ctx.page, "claim-label"), "Scan or enter your claim code");
  assert.is(await text(ctx.page, "claim-hint"), "0 of 20 digits, from the claim sheet or its QR code.");
  assert.not.ok(await enrolEnabled(ctx.page), "Enrol waits for the whole code");

  // The keypad: ten digits, Backspace and Enrol, each fully on screen and big enough for a finger.
  for (const id of ["key-1", "key-5", "key-9", "key-0", "key-backspace", "enrol", "open-diagnostics"]) {
    const box = await ctx.page.getByTestId(id).boundingBox();
    assert.ok(box, `${id} is shown`);
    assert.ok(box.height >= 48 && box.width >= 48, `${id} is ${box.width}×${box.height} px`);
    assert.ok(box.x >= 0 && box.y >= 0 && box.x + box.width <= 800 && box.y + box.height <= 480, `${id} is on screen`);
  }
  assert.equal(await layoutProblems(ctx.page), []);

  await pressKeys(ctx.page, CODE.slice(0, 12));
  assert.is(await shownCode(ctx.page), `${CODE.slice(0, 5)} ${CODE.slice(5, 10)} ${CODE.slice(10, 12)}`);
  assert.equal(await layoutProblems(ctx.page), []);
  await docsScreenshot(ctx.page, "setup-screen");
});

it("the keypad types the code in groups of five; Backspace; Enrol only at 20 digits sends it; progress; then the normal screen", async (ctx) => {
  await open(ctx.page, ctx.base);
  await pressKeys(ctx.page, CODE.slice(0, CLAIM_CODE_DIGITS - 1));
  assert.not.ok(await enrolEnabled(ctx.page), "19 digits are not a code");
  assert.is(await text(ctx.page, "claim-hint"), "19 of 20 digits, from the claim sheet or its QR code.");
  await ctx.page.getByTestId("key-7").click();
  await ctx.page.getByTestId("key-backspace").click();
  await pressKeys(ctx.page, CODE.slice(-1));
  assert.is(await shownCode(ctx.page), CODE.match(/.{5}/g)?.join(" "));
  assert.ok(await enrolEnabled(ctx.page));
  assert.is(await text(ctx.page, "claim-hint"), "Press Enrol.");
  assert.ok(await ctx.page.getByTestId("key-3").isDisabled(), "no 21st digit");

  await ctx.page.getByTestId("enrol").click();
  await seePanel(ctx.page, "enrolling");
  assert.equal(ctx.daemon.claims, [CODE]);
  assert.is(await text(ctx.page, "setup-status"), "Enrolling…");
  await ctx.page.locator('li.done[data-step="key"]').waitFor();

  ctx.daemon.enrolment({ state: "enrolling", step: "registered" });
  await ctx.page.locator('li.done[data-step="registered"]').waitFor();
  assert.is(await ctx.page.locator("li.done").count(), 3);
  assert.match(await text(ctx.page, "setup-steps"), /Connected to the fleet/);
  assert.equal(await layoutProblems(ctx.page), []);

  // Enrolled, but the daemon is still switching over: the screen says so and waits.
  ctx.daemon.enrolled(false);
  await seePanel(ctx.page, "enrolled");
  assert.is(await text(ctx.page, "setup-status"), "Enrolled");
  // Then the kiosk runs: the normal screen.
  ctx.daemon.running = true;
  await ctx.page.locator('[data-testid="screen"][data-screen="attract"]').waitFor({ timeout: 10_000 });
  assert.match(await text(ctx.page, "message"), /Tap your card/);
  assert.is(await text(ctx.page, "kiosk-id"), "lido / kiosk-entrance");
});

it("a barcode scanner types the code and Enter anywhere on the screen; a typo is refused before anything is sent", async (ctx) => {
  await open(ctx.page, ctx.base);
  await seePanel(ctx.page, "entry");
  // A scanner is a keyboard: the QR code holds the code with dashes, then Enter.
  const typo = TYPO.match(/.{5}/g)?.join("-") ?? TYPO;
  await ctx.page.keyboard.type(typo);
  await ctx.page.keyboard.press("Enter");
  assert.is(await shownCode(ctx.page), TYPO.match(/.{5}/g)?.join(" "));
  assert.match(await text(ctx.page, "claim-error"), /^This claim code has a typo/);
  assert.not.ok(await enrolEnabled(ctx.page), "a typo cannot be sent");
  assert.equal(ctx.daemon.claims, [], "nothing sent");
  assert.equal(await layoutProblems(ctx.page), []);

  // Escape clears; the right code scanned goes through with its Enter.
  await ctx.page.keyboard.press("Escape");
  assert.is(await shownCode(ctx.page), "");
  await ctx.page.keyboard.type(`${CODE.match(/.{5}/g)?.join("-")}\n`);
  await seePanel(ctx.page, "enrolling");
  assert.equal(ctx.daemon.claims, [CODE]);
});

it("a refused code: the daemon's reason with its fix, Try again brings the keypad back; a 400 shows its detail", async (ctx) => {
  ctx.daemon.onClaim = () => {
    ctx.daemon.enrolment({
      state: "failed",
      reason: "claim-used",
      // As the real daemon words them: CLI lines, shown as sentences.
      message: "this claim code has already enrolled a kiosk",
      fix: "each code works once; create a new one",
    });
    return { status: 202, body: ctx.daemon.setup };
  };
  await open(ctx.page, ctx.base);
  // The keypad listens for keys once it is on the screen: typed before, a loaded machine loses them.
  await seePanel(ctx.page, "entry");
  await ctx.page.keyboard.type(`${CODE}\n`);
  await seePanel(ctx.page, "failed");
  assert.is(await text(ctx.page, "setup-status"), "Enrolment failed");
  assert.is(await text(ctx.page, "failure-message"), "This claim code has already enrolled a kiosk.");
  assert.is(await text(ctx.page, "failure-fix"), "To fix: Each code works once; create a new one.");
  assert.equal(await layoutProblems(ctx.page), []);

  // Try again: the keypad, empty for the next code, although the daemon still reports the last failure.
  await ctx.page.getByTestId("try-again").click();
  await seePanel(ctx.page, "entry");
  assert.is(await shownCode(ctx.page), "");
  await ctx.page.keyboard.type(CODE);

  // The daemon refuses a code with a problem: its detail is shown by the keypad.
  ctx.daemon.onClaim = () => ({
    status: 400,
    body: { type: "about:blank", title: "Invalid claim code", status: 400, detail: "code: not a claim code" },
  });
  await ctx.page.getByTestId("enrol").click();
  assert.is(await text(ctx.page, "claim-error"), "code: not a claim code");
  await ctx.page.getByTestId("key-backspace").click();
  await ctx.page.getByTestId("claim-hint").waitFor();

  // Another failure the daemon words only by its reason: the screen's own words, with the cloud's URL.
  ctx.daemon.onClaim = () => {
    ctx.daemon.enrolment({ state: "failed", reason: "cloud-unreachable" });
    return { status: 202, body: ctx.daemon.setup };
  };
  await pressKeys(ctx.page, CODE.slice(-1));
  await ctx.page.getByTestId("enrol").click();
  await seePanel(ctx.page, "failed");
  assert.is(await text(ctx.page, "failure-message"), "The cloud does not answer.");
  assert.match(await text(ctx.page, "failure-fix"), /reach https:\/\/cloud\.paylane\.example/);
  assert.equal(ctx.daemon.claims, [CODE, CODE, CODE]);
});

it("a kiosk whose daemon comes back in setup mode shows the setup screen", async (ctx) => {
  ctx.daemon.enrolled(true);
  await ctx.page.goto(ctx.base);
  await seeScreen(ctx.page, "attract");
  ctx.daemon.backToSetup();
  await seeScreen(ctx.page, "setup");
  await seePanel(ctx.page, "entry");
  assert.is(await text(ctx.page, "setup-device"), "kiosk-entrance");
});

test.run();
