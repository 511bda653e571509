/**
 * Issue 16, the dashboard attacked in real Chromium: markup in names an
 * attacker controls (a member's name, fields of a live event) is shown as
 * text and never runs; no token is kept where a script or a URL could leak
 * it (localStorage, sessionStorage, document.cookie, the address); every
 * dashboard answer carries the CSP, and no page of another origin may frame it.
 */
import { randomUUID } from "node:crypto";
import type { Browser } from "playwright-core";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { launchChromium } from "../support/browser.ts";
import { within } from "../support/within.ts";
import { ConsoleCloud, PASSWORD } from "./console-harness.ts";

const it = suite("console: dashboard attacks");
const cloud = new ConsoleCloud();
let browser: Browser;
let origin = "";
const XSS = `<img src=x onerror="window.__pwned=1">`;

it.before(async () => {
  await cloud.start();
  origin = `http://127.0.0.1:${(await cloud.serve()).port}`;
  browser = await launchChromium();
});
it.after(async () => {
  await browser?.close();
  await cloud.close();
});

it("every dashboard answer has the CSP, frame-ancestors 'none' and X-Frame-Options", async () => {
  for (const path of ["/dashboard/", "/dashboard/app.js", "/dashboard/app.css", "/dashboard/no-such-file.js"]) {
    const res = await fetch(`${origin}${path}`);
    await res.arrayBuffer();
    const csp = res.headers.get("content-security-policy") ?? "";
    if (res.status === 200) {
      assert.match(csp, /frame-ancestors 'none'/, path);
      assert.match(csp, /script-src 'self'(;|$)/, path);
      assert.is(res.headers.get("x-frame-options"), "DENY", path);
    } else {
      assert.match(res.headers.get("content-type") ?? "", /json/, `${path}: a refusal is not a page`);
    }
  }
});

it("markup in a member's name and in live events is text; no token in storage, cookies or the URL", async () => {
  await cloud.db.query("UPDATE members SET name = $1 WHERE site_id = 's1' AND id = 'm-ada'", [XSS]);
  await cloud.db.query(
    `INSERT INTO inbox (site_id, device_id, seq, entry_id, kind, outcome, at, body, received_at)
     VALUES ('s1', 'k1', 7001, $1, 'checkin', 'applied', now(), $2, now())`,
    [
      randomUUID(),
      JSON.stringify({ memberId: "m-ada", credential: { type: "card", uid: "04A2B3C4" }, replicaVersion: 1 }),
    ],
  );
  const page = await browser.newPage();
  try {
    await page.goto(`${origin}/dashboard/`);
    await page.getByLabel("Username").fill("root");
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForFunction(() => !document.querySelector("form input[type=password]"), undefined, {
      timeout: 10_000,
    });

    await page.goto(`${origin}/dashboard/#/devices/s1/k1`);
    await page.getByText(XSS).first().waitFor({ timeout: 10_000 });

    await page.goto(`${origin}/dashboard/#/live`);
    await within(
      (async () => {
        while (cloud.live.listeners.size === 0) await new Promise((r) => setTimeout(r, 20));
      })(),
      10_000,
      "the dashboard's live feed",
    );
    cloud.live.push({
      type: "checkin",
      site: "s1",
      device: "k1",
      at: new Date().toISOString(),
      data: { memberId: XSS, memberName: XSS, summary: XSS, credential: XSS },
    });
    cloud.live.push({
      type: "alert",
      site: "s1",
      device: "k1",
      at: new Date().toISOString(),
      data: { key: XSS, rule: XSS, summary: XSS, detail: { note: XSS }, severity: "warning", state: "firing" },
    });
    await page.getByText(XSS).first().waitFor({ timeout: 10_000 });

    const found = await page.evaluate(() => ({
      pwned: (window as unknown as { __pwned?: number }).__pwned,
      injected: document.querySelectorAll("img[onerror]").length,
      local: { ...localStorage },
      session: { ...sessionStorage },
      cookie: document.cookie,
      url: location.href,
    }));
    assert.is(found.pwned, undefined, "the injected handler ran");
    assert.is(found.injected, 0, "an element was injected");
    assert.equal(found.local, {}, "nothing in localStorage");
    assert.equal(found.session, {}, "nothing in sessionStorage");
    assert.is(found.cookie, "", "the session cookies are httpOnly");
    assert.not.match(found.url, /token|eyJ/);
  } finally {
    await page.close();
  }
});

it("a page of another origin cannot frame the dashboard", async () => {
  const page = await browser.newPage();
  try {
    let framed = "";
    await page.route("http://evil.test/", (route) =>
      route.fulfill({ contentType: "text/html", body: `<iframe id="f" src="${origin}/dashboard/"></iframe>` }),
    );
    // goto waits for the page's load event, which waits for its frames (a refused one loads an error page).
    await page.goto("http://evil.test/");
    const frame = page.frames().find((f) => f !== page.mainFrame());
    if (frame) {
      framed = await frame.evaluate(() => document.body?.textContent ?? "").catch(() => "");
    }
    assert.not.match(framed, /sign in/i, "the dashboard rendered inside another origin's page");
  } finally {
    await page.close();
  }
});

it.run();
