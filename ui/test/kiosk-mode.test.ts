/**
 * The kiosk's operating mode in real Chromium: when ops put the kiosk in
 * maintenance or out of service, the page shows a banner and ops' text
 * instead of "Tap your card" (no Pay button), a tap's polite refusal is
 * shown, and the attract screen returns with service. Ops' welcome line
 * shows above the instruction.
 */
import type { TapResult } from "@paylane/protocol/kiosk-api";
import * as assert from "uvu/assert";
import { kioskSuite, screenshot, seeScreen } from "./kiosk-harness.ts";

const { test, it } = kioskSuite("kiosk mode screen", /^WebSocket connection/);

it("maintenance shows its banner and ops' text; a refused tap is shown; service brings back the attract screen", async (ctx) => {
  await ctx.page.goto(ctx.base);
  // Results held briefly: the mode screen returns after the refusal without waiting out the default.
  await ctx.page.evaluate(() => document.querySelector("paylane-kiosk")?.setAttribute("result-ms", "300"));
  await seeScreen(ctx.page, "attract", "Tap your card");
  ctx.daemon.setState({
    screen: { mode: "maintenance", texts: { maintenance: "Back at noon, sorry!" } },
  });
  await seeScreen(ctx.page, "maintenance", "Back at noon, sorry!");
  assert.match((await ctx.page.getByTestId("mode-banner").textContent()) ?? "", /Under maintenance/);
  assert.is(await ctx.page.getByText("Tap your card").count(), 0);
  await screenshot(ctx, "maintenance");

  const refusal: TapResult = { outcome: "refused", message: "Back at noon, sorry!", at: new Date().toISOString() };
  ctx.daemon.pushResult(refusal);
  await seeScreen(ctx.page, "refused", "Back at noon, sorry!");
  await seeScreen(ctx.page, "maintenance", "Back at noon, sorry!");

  ctx.daemon.setState({ screen: { mode: "out-of-service" } });
  await seeScreen(ctx.page, "out-of-service", "This kiosk is out of service. Please ask at the desk.");
  await screenshot(ctx, "out-of-service");

  ctx.daemon.setState({ screen: { mode: "in-service", texts: { welcome: "Welcome to the Lido" } } });
  await seeScreen(ctx.page, "attract", "Tap your card");
  assert.is(await ctx.page.getByTestId("welcome").textContent(), "Welcome to the Lido");
});

test.run();
