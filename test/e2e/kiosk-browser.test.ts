/**
 * A person at the kiosk, in real Chromium, against the real daemon, gateway
 * and cloud on real Postgres: taps the page's simulated reader, sees
 * "Welcome", and the check-in is in Postgres. Then the cloud goes away: the
 * page shows "Offline", still welcomes the next member, and the badge clears
 * and the row arrives when the cloud returns. And a member checks in, buys a
 * coffee from her wallet, sees the new balance and the receipt, and the
 * payment is a ledger row in Postgres.
 */
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { launchChromium, screenshotDir } from "../support/browser.ts";
import { loud } from "../support/hooks.ts";
import { TestSite } from "../support/site.ts";

const it = suite("kiosk in Chromium");
let site: TestSite;
let browser: Browser;
let page: Page;
let shots: string;

it.before(
  loud("kiosk browser test setup", async () => {
    site = new TestSite({
      db: "pg",
      presence: "memory",
      broker: "aedes",
      kiosks: ["k1"],
      probes: [],
      hardware: { k1: { printer: { type: "simulator" } } },
    });
    await site.start();
    browser = await launchChromium();
    shots = await screenshotDir("kiosk-e2e");
    page = await browser.newPage({ viewport: { width: 800, height: 480 } });
    await page.goto(`http://127.0.0.1:${site.kiosk("k1").port}/`);
  }),
);
it.after(async () => {
  if (shots) console.log(`  screenshots: ${shots}`);
  await browser?.close();
  await site?.stop();
});

async function tapInPage(uid: string): Promise<void> {
  await page.getByTestId("sim-uid").fill(uid);
  await page.getByTestId("sim-tap").click();
}

it("tapping a card in the page shows Welcome, and the check-in is committed in Postgres", async () => {
  await page
    .locator('[data-screen="attract"]')
    .getByText(/Tap your card/i)
    .waitFor();
  await tapInPage("04A2B3C4");
  await page.locator('[data-screen="welcome"]').waitFor();
  assert.match((await page.getByTestId("message").textContent()) ?? "", /Welcome, Ada Lovelace/);
  await site.signal.until(
    async () =>
      (await site.count("SELECT count(*) AS n FROM checkins WHERE site_id = $1 AND member_id = 'm-ada'", [
        site.site,
      ])) === 1,
    "Ada's check-in in Postgres",
  );
});

it("an unknown card says so in words", async () => {
  await tapInPage("04FFFFFF");
  await page.locator('[data-screen="unknown"]').waitFor();
  assert.match((await page.getByTestId("message").textContent()) ?? "", /Card not recognised/);
});

it("with the cloud gone the page shows Offline and still welcomes; the badge clears when it returns", async () => {
  await site.stopCloud("kill");
  await page.getByTestId("offline-badge").waitFor({ state: "visible" });
  await tapInPage("04B1C2D3");
  await page.locator('[data-screen="welcome"]').waitFor();
  assert.match((await page.getByTestId("message").textContent()) ?? "", /Welcome, Grace Hopper/);
  await site.startCloud();
  await page.getByTestId("offline-badge").waitFor({ state: "hidden" });
  await site.signal.until(
    async () =>
      (await site.count("SELECT count(*) AS n FROM checkins WHERE site_id = $1 AND member_id = 'm-grace'", [
        site.site,
      ])) === 1,
    "Grace's offline check-in in Postgres",
  );
  await page.screenshot({ path: join(shots, "checkin-offline.png") });
});

it("a member checks in, buys a coffee, sees her new balance and the receipt; the payment is in the ledger", async () => {
  await page.locator('[data-screen="attract"]').waitFor();
  await tapInPage("04C0FFEE"); // Alan Turing, 1.50 in his wallet
  await page.locator('[data-screen="welcome"]').waitFor();
  await page.locator('[data-screen="attract"]').waitFor({ timeout: 15_000 });

  await page.getByTestId("pay").click();
  await page.getByTestId("item-water").click();
  await page.getByText(/Tap your card to pay €1\.50/).waitFor();
  await tapInPage("04C0FFEE");
  await page.locator('[data-screen="approved"]').waitFor();
  assert.is(((await page.getByTestId("balance").textContent()) ?? "").trim(), "New balance €0.00");
  assert.match((await page.getByTestId("message").textContent()) ?? "", /Thank you, Alan Turing/);
  assert.match((await page.getByTestId("amount").textContent()) ?? "", /€1\.50/);
  // the kiosk's printer simulator took the receipt: the page says so
  await page.getByTestId("receipt").waitFor();
  assert.match((await page.getByTestId("receipt").textContent()) ?? "", /receipt/i);
  const printed = site.kiosk("k1").peripherals.simulators.printer!.receipts.at(-1);
  assert.match(JSON.stringify(printed), /PAYMENT/);
  assert.match(JSON.stringify(printed), /Water/);
  await page.screenshot({ path: join(shots, "payment.png") });

  const { rows } = await site.db.query<{ kind: string; amount: number; balance_after: number; item_id: string }>(
    "SELECT kind, amount, balance_after, item_id FROM ledger_entries WHERE site_id = $1 AND member_id = 'm-alan' ORDER BY n",
    [site.site],
  );
  assert.equal(rows.at(-1), { kind: "purchase", amount: -150, balance_after: 0, item_id: "water" });

  // and now the wallet is empty: the next coffee is declined, and the page says why
  await page.locator('[data-screen="attract"]').waitFor({ timeout: 15_000 });
  await page.getByTestId("pay").click();
  await page.getByTestId("item-coffee").click();
  await tapInPage("04C0FFEE");
  await page.locator('[data-screen="declined"]').waitFor();
  assert.match((await page.getByTestId("message").textContent()) ?? "", /Insufficient funds/);
});

it.run();
