/**
 * Browser test of the kiosk UI: the built bundle (ui/dist/kiosk) in Chromium,
 * against a fake daemon that implements the local API contract.
 *
 *   node --import tsx ui/test/kiosk-ui.test.ts
 *
 * Needs Chromium at /usr/bin/chromium (Debian's `chromium` package), or CHROMIUM=path.
 * Waits on the DOM with Playwright's waiting; never sleeps.
 */

import type { TapResult } from "@paylane/protocol/kiosk-api";
import type { Page } from "playwright-core";
import * as assert from "uvu/assert";
import {
  type KioskCtx as Ctx,
  kioskSuite,
  RECEIPT_QR,
  screenshot,
  syncLive,
  seeScreen as waitForScreen,
} from "./kiosk-harness.ts";

type Screen = "starting" | "attract" | TapResult["outcome"];

// Chromium logs each refused WebSocket connection (expected while the daemon is "down")
// and each 400 answer (expected from the problem+json test).
const { test, it } = kioskSuite("kiosk UI", /^WebSocket connection|status of 400/);

/** Load the UI, count shown results in `window.results`, optionally set result-ms. */
async function open(ctx: Ctx, resultMs?: number): Promise<void> {
  await ctx.page.goto(ctx.base);
  await ctx.page.evaluate((ms) => {
    const w = window as unknown as { results: TapResult[] };
    w.results = [];
    document.addEventListener("paylane-result", (e) => w.results.push((e as CustomEvent<TapResult>).detail));
    if (ms !== undefined) document.querySelector("paylane-kiosk")?.setAttribute("result-ms", String(ms));
  }, resultMs);
}

async function shownResults(page: Page): Promise<number> {
  return page.evaluate(() => (window as unknown as { results: TapResult[] }).results.length);
}

/** Wait for a screen showing exactly this message. */
function seeScreen(page: Page, screen: Screen, message?: string): Promise<void> {
  return waitForScreen(page, screen, message);
}

function result(outcome: TapResult["outcome"], extra: Partial<TapResult> = {}): TapResult {
  return { outcome, message: `${outcome} message`, at: new Date().toISOString(), ...extra };
}

it("attract screen says Tap your card, with kiosk id and backlog in the footer", async (ctx) => {
  ctx.daemon.state.backlog = 3;
  await open(ctx);
  await seeScreen(ctx.page, "attract", "Tap your card");
  assert.is(await ctx.page.title(), "PayLane kiosk");
  assert.is(await ctx.page.getByTestId("kiosk-id").textContent(), "site-1 / kiosk-7");
  assert.is(await ctx.page.getByTestId("backlog").textContent(), "Backlog 3");
  assert.is(await ctx.page.getByTestId("offline-badge").count(), 0);
});

it("simulated reader: typed UID is posted and the daemon's result shown once", async (ctx) => {
  ctx.daemon.onTap = (uid) => ({
    status: 200,
    push: true, // the real daemon also pushes it over the WebSocket
    body: result("welcome", { name: "Ada Lovelace", message: "Welcome, Ada Lovelace", seq: 12, at: `t-${uid}` }),
  });
  await open(ctx);
  await seeScreen(ctx.page, "attract");
  await ctx.page.getByLabel("Card UID", { exact: true }).fill("04A1B2C3");
  await ctx.page.getByTestId("sim-tap").click();
  await seeScreen(ctx.page, "welcome", "Welcome, Ada Lovelace");
  assert.equal(ctx.daemon.taps, ["04A1B2C3"]);
  await syncLive(ctx, 1);
  assert.is(await shownResults(ctx.page), 1, "HTTP answer and WS push are one result");
});

it("simulated reader: touch targets are at least 64px", async (ctx) => {
  await open(ctx);
  await seeScreen(ctx.page, "attract");
  for (const id of ["sim-uid", "sim-tap"]) {
    const box = await ctx.page.getByTestId(id).boundingBox();
    assert.ok(box && box.height >= 64, `${id} is ${box?.height}px high`);
  }
});

it("a result pushed over the WebSocket shows the welcome screen with the name", async (ctx) => {
  await open(ctx);
  await seeScreen(ctx.page, "attract");
  ctx.daemon.pushResult(result("welcome", { name: "Grace Hopper", message: "Welcome, Grace Hopper", seq: 7 }));
  await seeScreen(ctx.page, "welcome", "Welcome, Grace Hopper");
  await screenshot(ctx, "kiosk-welcome");
});

it("each outcome has its screen and words", async (ctx) => {
  await open(ctx);
  await seeScreen(ctx.page, "attract");
  ctx.daemon.pushResult(result("unknown", { message: "Card not recognised" }));
  await seeScreen(ctx.page, "unknown", "Card not recognised");
  assert.is(await ctx.page.getByTestId("hint").textContent(), "Please ask at the desk");
  ctx.daemon.pushResult(result("already", { name: "Ada", message: "Already checked in today", at: "t-2" }));
  await seeScreen(ctx.page, "already", "Already checked in today");
  ctx.daemon.pushResult(result("refused", { message: "Membership expired", at: "t-3" }));
  await seeScreen(ctx.page, "refused", "Membership expired");
  await syncLive(ctx, 1);
  assert.is(await shownResults(ctx.page), 3);
});

it("the attract screen returns result-ms after a result", async (ctx) => {
  // The page's clock, paused: with the wall clock a 200 ms result could come and go between two polls of a
  // loaded CI machine's browser, and the test would miss the screen it is about.
  await ctx.page.clock.install();
  await open(ctx, 200);
  await ctx.page.clock.pauseAt(Date.now() + 1_000);
  await seeScreen(ctx.page, "attract");
  ctx.daemon.pushResult(result("welcome", { name: "Ada", message: "Welcome, Ada" }));
  await seeScreen(ctx.page, "welcome", "Welcome, Ada");
  await ctx.page.clock.runFor(150);
  await syncLive(ctx, 1);
  await seeScreen(ctx.page, "welcome", "Welcome, Ada"); // still up before result-ms
  await ctx.page.clock.runFor(60);
  await seeScreen(ctx.page, "attract", "Tap your card");
});

it("offline badge appears while offline and clears when online", async (ctx) => {
  await open(ctx);
  await seeScreen(ctx.page, "attract");
  ctx.daemon.setState({ online: false, cloud: false });
  const badge = ctx.page.getByTestId("offline-badge");
  await badge.waitFor();
  assert.is((await badge.textContent())?.trim(), "Offline");
  assert.match((await badge.getAttribute("aria-label")) ?? "", /^Offline/);
  await ctx.page.getByRole("status", { name: /Offline/ }).waitFor();
  await seeScreen(ctx.page, "attract", "Tap your card"); // check-ins still work offline
  ctx.daemon.setState({ online: true, cloud: true });
  await badge.waitFor({ state: "detached" });
});

it("a problem+json answer to a tap shows its detail", async (ctx) => {
  // "zz" is no UID: the daemon refuses it by the contract's schema, before any tap
  const detail = "uid: expected 4, 7 or 10 bytes as hex, e.g. 04A2B3C4";
  await open(ctx);
  await seeScreen(ctx.page, "attract");
  await ctx.page.getByTestId("sim-uid").fill("zz");
  await ctx.page.getByTestId("sim-tap").click();
  const error = ctx.page.getByTestId("sim-error");
  await error.filter({ hasText: detail }).waitFor();
  assert.is(await error.textContent(), detail);
  await seeScreen(ctx.page, "attract");
  // Typing again clears the stale error.
  await ctx.page.getByTestId("sim-uid").fill("04");
  await error.waitFor({ state: "detached" });
  assert.equal(ctx.daemon.taps, [], "nothing reached the reader");
});

it("no simulated reader control with a real reader; a missing reader offers booking-code entry", async (ctx) => {
  ctx.daemon.state.reader = { kind: "pn532", simulated: false, state: "ok" };
  await open(ctx);
  await seeScreen(ctx.page, "attract", "Tap your card");
  assert.is(await ctx.page.getByTestId("sim-tap").count(), 0);
  assert.is(await ctx.page.getByTestId("code-input").count(), 0, "no code entry while the reader works");

  ctx.daemon.setState({ reader: { kind: "pn532", simulated: false, state: "disconnected" } });
  await ctx.page.getByTestId("code-input").waitFor();
  assert.match((await ctx.page.getByTestId("hint").textContent()) ?? "", /reader unavailable/i);
  ctx.daemon.onTap = (code) => ({
    status: 200,
    push: true,
    body: result("welcome", { name: "Ada Lovelace", message: "Welcome, Ada Lovelace", seq: 3, at: `t-${code}` }),
  });
  await ctx.page.getByLabel("Booking code", { exact: true }).fill("ada1");
  await ctx.page.getByTestId("code-submit").click();
  await seeScreen(ctx.page, "welcome", "Welcome, Ada Lovelace");
  assert.equal(ctx.daemon.taps, ["ada1"], "the daemon normalises and validates the code");
});

it("degraded storage: the attract screen says the kiosk cannot record check-ins, and clears when it recovers", async (ctx) => {
  await open(ctx);
  await seeScreen(ctx.page, "attract", "Tap your card");
  const hint = ctx.page.getByTestId("hint");
  ctx.daemon.setState({ storage: "failing" });
  await hint.filter({ hasText: "cannot record check-ins" }).waitFor();
  ctx.daemon.setState({ storage: "ok" });
  await hint.filter({ hasText: "Hold it flat against the reader" }).waitFor();
});

it("the on-screen call-staff button calls staff once per press and says so", async (ctx) => {
  await open(ctx);
  await seeScreen(ctx.page, "attract");
  const button = ctx.page.getByTestId("call-staff");
  await button.click();
  await button.filter({ hasText: "Staff is on the way" }).waitFor();
  assert.is(ctx.daemon.staffCalls, 1);
});

it("a receipt the printer could not print is offered as a QR code on the result screen", async (ctx) => {
  await open(ctx);
  await seeScreen(ctx.page, "attract");
  const id = "6f1c2f4e-5d7a-4c1b-9a3e-2b8d7c6e5f40";
  ctx.daemon.pushResult(result("welcome", { name: "Ada", message: "Welcome, Ada", seq: 9, id, at: "t-qr" }));
  await seeScreen(ctx.page, "welcome", "Welcome, Ada");
  assert.is(await ctx.page.getByTestId("receipt").count(), 0, "nothing about a receipt before the printer answers");
  ctx.daemon.pushReceipt({ id, printed: false, reason: "paper-out", qr: RECEIPT_QR });
  const img = ctx.page.getByTestId("receipt-qr");
  await img.waitFor();
  assert.is(await img.getAttribute("src"), RECEIPT_QR);
  assert.match((await ctx.page.getByTestId("receipt").textContent()) ?? "", /out of paper/);
});

it("shows Kiosk starting… without the daemon, and reconnects after a restart", async (ctx) => {
  ctx.daemon.accepting = false;
  await open(ctx);
  await seeScreen(ctx.page, "starting", "Kiosk starting…");
  ctx.daemon.accepting = true;
  await seeScreen(ctx.page, "attract", "Tap your card");

  // Restart: the socket drops and the daemon stays away for a moment.
  ctx.daemon.accepting = false;
  ctx.daemon.dropClients();
  await seeScreen(ctx.page, "starting", "Kiosk starting…");
  assert.is(await ctx.page.getByTestId("sim-tap").count(), 0, "no tapping a daemon that is not there");
  ctx.daemon.accepting = true;
  await seeScreen(ctx.page, "attract", "Tap your card");
  assert.is(ctx.daemon.clients, 1, "one socket, not one per retry");
});

test.run();
