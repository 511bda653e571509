/**
 * The device page in real Chromium against a real kiosk: an operator opens a
 * kiosk from the fleet, sees its peripherals, status and telemetry charts,
 * sets its desired configuration (telemetry every second) and watches the
 * peripherals and charts fill in, sends `self-test` and sees the kiosk's answer. A viewer sees
 * the page but is not offered commands. Screenshot of the device page kept.
 */
import * as assert from "uvu/assert";
import { dashboardSuite, mainText, screenshot, signIn } from "./dashboard-harness.ts";

const { test, ctx } = dashboardSuite("dashboard device page", { kiosks: ["k1"] });

test("an operator opens a kiosk, sends self-test and sees its result", async () => {
  const page = await signIn(ctx, "operator");
  await page.getByRole("link", { name: `${ctx.site.site}/k1` }).click();
  await page.getByRole("heading", { name: "k1", level: 1 }).waitFor();
  for (const h of ["Peripherals", "Status history", "Telemetry", "Send a command", "Commands", "Recent events"])
    await page.getByRole("heading", { name: h }).waitFor();
  for (const c of ["Backlog", "Ack latency (oldest unacked entry)", "Memory", "Disk", "Temperature"])
    await page.locator("figcaption", { hasText: c }).first().waitFor();
  assert.match(await mainText(page), /online since/);

  // Desired configuration from the page: telemetry every second, so the charts and peripherals fill in.
  const settings = page.getByLabel("Settings (JSON)");
  await settings.fill('{"telemetryIntervalSeconds": 1}');
  await page.getByRole("button", { name: "Save desired configuration" }).click();
  await page.getByText("Saved; the kiosk gets it now or when it comes back.").waitFor();
  await page.getByText(/Version 1 · in sync/).waitFor({ timeout: 10_000 });
  const peripherals = page.getByRole("region", { name: "Peripherals" });
  await peripherals.getByText("Reader").waitFor({ timeout: 15_000 });
  assert.match((await peripherals.textContent()) ?? "", /Reader\s*ok/);
  const backlog = page.locator("figure.chart", { hasText: "Backlog" });
  await backlog.locator(".chart-empty").waitFor({ state: "detached", timeout: 40_000 });

  await page.getByRole("combobox", { name: "Command" }).selectOption("self-test");
  await page.getByRole("button", { name: "Send" }).click();
  const outcome = page.locator('.outcome[data-command="self-test"]');
  await outcome.waitFor({ timeout: 15_000 });
  const status = await outcome.getAttribute("data-status");
  assert.ok(status === "done" || status === "failed", `self-test answered: ${status}`);
  const text = (await outcome.textContent()) ?? "";
  assert.match(text, /self-test/);
  // The kiosk's own report (each peripheral's check) is on the page.
  assert.match(text, /reader/i);
  // And it is in the device's command list.
  await page.locator("table", { hasText: "self-test" }).waitFor();
  console.log(`  device page: ${await screenshot(ctx, page, "device")}`);
  assert.equal(ctx.problems, []);
});

test("a viewer sees the device page without the command form", async () => {
  const page = await signIn(ctx, "viewer");
  await page.goto(`${ctx.base}#/devices/${ctx.site.site}/k1`);
  await page.getByRole("heading", { name: "Peripherals" }).waitFor();
  assert.is(await page.getByRole("heading", { name: "Send a command" }).count(), 0);
  assert.is(await page.getByRole("button", { name: "Revoke" }).count(), 0);
  assert.equal(ctx.problems, []);
});

test.run();
