/**
 * Issue 16, the dashboard attacked in real Chromium: markup in names an
 * attacker controls (a member's name, fields of a live event) is shown as
 * text and never runs; no token is kept where a script or a URL could leak
 * it (localStorage, sessionStorage, document.cookie, the address); every
 * dashboard answer carries the CSP, and no page of another origin may frame it.
 */
import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { Browser, Frame } from "playwright-core";
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
  // evil.test: another origin, on this machine.
  browser = await launchChromium(["--host-resolver-rules=MAP evil.test 127.0.0.1"]);
});
it.after(async () => {
  await browser?.close();
  await cloud.close();
});

it("every dashboard answer has the CSP, frame-ancestors 'none' and X-Frame-Options", async () => {
  for (const path of ["/dashboard/", "/dashboard/app.js", "/dashboard/app.css"]) {
    const res = await fetch(`${origin}${path}`);
    await res.arrayBuffer();
    // Each file must be there: a refusal of every path would leave no header to check.
    assert.is(res.status, 200, `${path}: ${res.status} (is the dashboard built? npm run build)`);
    const csp = res.headers.get("content-security-policy") ?? "";
    assert.match(csp, /frame-ancestors 'none'/, path);
    assert.match(csp, /script-src 'self'(;|$)/, path);
    assert.is(res.headers.get("x-frame-options"), "DENY", path);
  }
  const missing = await fetch(`${origin}/dashboard/no-such-file.js`);
  await missing.arrayBuffer();
  assert.is(missing.status, 404);
  assert.match(missing.headers.get("content-type") ?? "", /json/, "a refusal is not a page");
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
  // The attacker's page is served from this machine too: Chromium refuses a public page's frame of a
  // loopback address by itself (Private Network Access), which would pass this test without any header.
  const evil = createServer((_req, res) => {
    res.setHeader("content-type", "text/html");
    res.end(`<iframe id="f" src="${origin}/dashboard/"></iframe>`);
  });
  await new Promise<void>((resolve) => evil.listen(0, "127.0.0.1", resolve));
  const page = await browser.newPage();
  try {
    const refused = page.waitForEvent("console", {
      predicate: (m) => /frame-ancestors 'none'/.test(m.text()),
      timeout: 10_000,
    });
    // The refused frame then navigates to Chromium's error page; heard whenever it comes (on a loaded machine
    // it can come after the console line and after goto's load event).
    const errorPage = new Promise<Frame>((resolve) => {
      page.on("framenavigated", (f) => {
        if (f !== page.mainFrame() && f.url().startsWith("chrome-error:")) resolve(f);
      });
    });
    await page.goto(`http://evil.test:${(evil.address() as AddressInfo).port}/`);
    await refused;
    const frame = await within(errorPage, 10_000, "the frame holding Chromium's refusal, not the dashboard");
    assert.is(page.frames().length, 2, "the attacker's page and its one frame");
    const framed = await frame.evaluate(() => document.body?.textContent ?? "");
    assert.not.match(framed, /sign in/i, "the dashboard rendered inside another origin's page");
  } finally {
    await page.close();
    evil.close();
  }
});

it.run();
