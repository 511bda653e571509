/**
 * Issue 12, "The kiosk's local API": any web page the kiosk's browser opens
 * could drive the daemon on 127.0.0.1 — a cross-origin `text/plain` POST
 * started a payment and a forged simulated tap completed it (ledger −€5.00),
 * and the WebSocket took any origin. Here a page on another origin tries
 * every way a browser offers (CORS fetch, no-cors text/plain fetch, HTML form
 * POSTs, a WebSocket) in real Chromium, and a DNS-rebound page tries from the
 * kiosk's own port: nothing changes. Then the same checks without a browser:
 * Host, token, content type, the token file and its lifetime.
 */
import { stat } from "node:fs/promises";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { pino } from "pino";
import type { Browser } from "playwright-core";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import WebSocket from "ws";
import { LOCAL_API_TOKEN_FILE, readLocalApiToken } from "../../device/src/local-api-token.ts";
import { launchChromium } from "../support/browser.ts";
import { loud } from "../support/hooks.ts";
import { TestSite } from "../support/site.ts";

const it = suite("kiosk local API: other origins");
let site: TestSite;
let browser: Browser;
let attacker: Server;
/** Every log line of every part of the site, to check that no token is ever logged. */
const logs: string[] = [];

const ADA = "04A2B3C4";

const kioskPort = () => site.kiosk("k1").port;
const kioskOrigin = () => `http://127.0.0.1:${kioskPort()}`;
const dataDir = () => join(site.dir, "k1");

/** What a successful attack would change: the kiosk's journal, its payment session, the cloud's ledger. */
async function footprint() {
  const k1 = site.kiosk("k1");
  return {
    lastSeq: (await k1.journal.stats()).lastSeq,
    awaitingCard: k1.payments.awaitingCard,
    ledger: await site.count("SELECT count(*) AS n FROM ledger_entries WHERE site_id = $1", [site.site]),
  };
}

/** The kiosk's refusals by reason, from its /metrics. */
async function refusals(): Promise<Record<string, number>> {
  const text = await (await fetch(`${kioskOrigin()}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^paylane_device_local_api_refused_total\{reason="([a-z-]+)"\} (\d+)/gm)) {
    out[m[1]!] = Number(m[2]);
  }
  return out;
}

/**
 * The attacker's page: each attempt in turn, then `window.attackDone`. Forms
 * post into iframes; a form's answer may be a download (problem+json), so its
 * iframe's load is awaited at most 3 s, and the kiosk's own count of refusals
 * is what the test checks.
 */
function attackPage(kiosk: string): string {
  const ws = kiosk.replace(/^http/, "ws");
  // text/plain forms smuggle JSON: name `{"itemId":"coffee","pad":"` + `=` + value `"}`
  const form = (id: string, path: string, enctype: string, name: string, value: string) =>
    `<form id="${id}" method="POST" action="${kiosk}${path}" enctype="${enctype}" target="${id}-sink">` +
    `<input name='${name}' value='${value}'></form><iframe name="${id}-sink"></iframe>`;
  return `<!doctype html><html><head><title>a page on another origin</title></head><body>
${form("form-payment", "/api/payments", "text/plain", '{"itemId":"coffee","pad":"', '"}')}
${form("form-tap", "/api/sim/tap", "text/plain", `{"uid":"${ADA}","pad":"`, '"}')}
${form("form-code", "/api/code", "application/x-www-form-urlencoded", "code", "ADA1815")}
<script>
const K = ${JSON.stringify(kiosk)};
const text = (path, body) => fetch(K + path, { method: "POST", mode: "no-cors", headers: { "content-type": "text/plain" }, body: JSON.stringify(body) })
  .then((r) => "answered (" + r.type + ")", (e) => "failed: " + e.name);
const json = (path, body) => fetch(K + path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })
  .then((r) => "status " + r.status, (e) => "failed: " + e.name);
const submit = (id) => new Promise((resolve) => {
  const sink = document.querySelector('iframe[name="' + id + '-sink"]');
  const timer = setTimeout(() => resolve("submitted (no load event)"), 3000);
  sink.addEventListener("load", () => { clearTimeout(timer); resolve("submitted"); }, { once: true });
  document.getElementById(id).submit();
});
const socket = () => new Promise((resolve) => {
  const s = new WebSocket(${JSON.stringify(`${ws}/api/live`)});
  s.onmessage = (e) => { resolve("opened: " + String(e.data).slice(0, 30)); s.close(); };
  s.onclose = () => resolve("refused");
});
const attempts = [
  ["CORS fetch POST /api/payments (JSON)", () => json("/api/payments", { itemId: "coffee" })],
  ["no-cors fetch POST /api/payments (text/plain)", () => text("/api/payments", { itemId: "coffee" })],
  ["form POST /api/payments (text/plain)", () => submit("form-payment")],
  ["no-cors fetch POST /api/sim/tap (text/plain)", () => text("/api/sim/tap", { uid: ${JSON.stringify(ADA)} })],
  ["form POST /api/sim/tap (text/plain)", () => submit("form-tap")],
  ["no-cors fetch POST /api/code (text/plain)", () => text("/api/code", { code: "ADA1815" })],
  ["form POST /api/code (urlencoded)", () => submit("form-code")],
  ["WebSocket /api/live", socket],
];
(async () => {
  const results = {};
  for (const [name, run] of attempts) results[name] = await run();
  window.attackDone = results;
})();
</script></body></html>`;
}

it.before(
  loud("kiosk cross-origin test setup", async () => {
    site = new TestSite({
      db: "pg",
      presence: "memory",
      broker: "aedes",
      kiosks: ["k1"],
      probes: [],
      logger: pino({ level: "trace" }, { write: (line: string) => void logs.push(line) }),
    });
    await site.start();
    attacker = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(attackPage(kioskOrigin()));
    });
    await new Promise<void>((resolve) => attacker.listen(0, "127.0.0.1", resolve));
    browser = await launchChromium(["--host-resolver-rules=MAP rebind.test 127.0.0.1"]);
  }),
);
it.after(async () => {
  await browser?.close();
  await new Promise((resolve) => attacker?.close(resolve));
  await site?.stop();
});

it("a page on another origin tries fetch, form POSTs, text/plain and a WebSocket: nothing changes", async () => {
  const before = await footprint();
  const refusedBefore = await refusals();
  const page = await browser.newPage();
  try {
    await page.goto(`http://127.0.0.1:${(attacker.address() as AddressInfo).port}/`);
    const handle = await page.waitForFunction(() => (window as { attackDone?: unknown }).attackDone, undefined, {
      timeout: 30_000,
    });
    const results = (await handle.jsonValue()) as Record<string, string>;
    console.log(
      Object.entries(results)
        .map(([k, v]) => `  ${k}: ${v}`)
        .join("\n"),
    );
    // Each attempt was answered before the next began (forms: their frame loaded), so this is final.
    assert.equal(await footprint(), before, "no payment session, no journal entry, no ledger row");
    assert.is(results["WebSocket /api/live"], "refused", "the WebSocket from another origin is refused");
    assert.is(results["CORS fetch POST /api/payments (JSON)"], "failed: TypeError", "its preflight is refused");

    // Every attempt reached the kiosk and was refused for its Origin: 7 requests, the preflight and the socket.
    await site.signal.until(
      async () => ((await refusals()).origin ?? 0) - (refusedBefore.origin ?? 0) >= 8,
      "the kiosk refused each attempt",
      10_000,
    );
    assert.equal(await footprint(), before);
  } finally {
    await page.close();
  }
});

it("a DNS-rebound page on the kiosk's own port is refused: its Host is not the kiosk's", async () => {
  const before = await footprint();
  const page = await browser.newPage();
  const origin = `http://rebind.test:${kioskPort()}`;
  try {
    // The attacker's name now resolves to 127.0.0.1 (its first answer, the attacker's own server, served the
    // script; Chromium's Private Network Access would also stop that hand-over, other browsers do not). From
    // here the page is same-origin with "the kiosk": no CORS, no Origin check stands in the way, only Host.
    const landing = await page.goto(`${origin}/`);
    assert.is(landing?.status(), 421, "the kiosk's page is not served under another name");
    const answers = await page.evaluate(async () => {
      const pay = await fetch("/api/payments", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ itemId: "coffee" }),
      });
      const ui = await fetch("/");
      return { pay: pay.status, ui: ui.status, uiText: await ui.text() };
    });
    assert.is(answers.pay, 421, "a payment from the rebound page is refused");
    assert.is(answers.ui, 421, "the page with the token is not served to it either");
    assert.not.match(answers.uiText, /paylane-local-token/);
    assert.equal(await footprint(), before);
  } finally {
    await page.close();
  }
});

/** A raw HTTP request (fetch will not send a Host of our choosing). */
function raw(
  path: string,
  o: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: "127.0.0.1", port: kioskPort(), path, method: o.method ?? "GET", headers: o.headers },
      (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (d: string) => {
          body += d;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, type: res.headers["content-type"] ?? "", body }));
      },
    );
    req.on("error", reject);
    req.end(o.body);
  });
}

it("without a browser: wrong Host 421, no token 401, text/plain 415, the token from the file works", async () => {
  const token = await readLocalApiToken(dataDir());
  const json = { "content-type": "application/json" };
  const bearer = { authorization: `Bearer ${token}` };
  const tap = JSON.stringify({ uid: ADA });

  for (const host of ["attacker.example", `attacker.example:${kioskPort()}`, `127.0.0.1:${kioskPort() + 1}`]) {
    const r = await raw("/api/state", { headers: { host } });
    assert.is(r.status, 421, host);
    assert.is(r.type, "application/problem+json");
    const page = await raw("/", { headers: { host } });
    assert.is(page.status, 421, `GET / with Host ${host}`);
  }
  for (const host of [`localhost:${kioskPort()}`, `[::1]:${kioskPort()}`, `127.0.0.1:${kioskPort()}`]) {
    assert.is((await raw("/api/state", { headers: { host } })).status, 200, host);
  }
  const before = await footprint();
  const noToken = await raw("/api/sim/tap", { method: "POST", headers: json, body: tap });
  assert.is(noToken.status, 401);
  assert.match(noToken.body, /Authorization: Bearer/);
  const wrongToken = await raw("/api/sim/tap", {
    method: "POST",
    headers: { ...json, authorization: `Bearer ${token.slice(0, -1)}x` },
    body: tap,
  });
  assert.is(wrongToken.status, 401);
  const plain = await raw("/api/sim/tap", {
    method: "POST",
    headers: { "content-type": "text/plain", ...bearer },
    body: tap,
  });
  assert.is(plain.status, 415);
  const foreign = await raw("/api/sim/tap", {
    method: "POST",
    headers: { ...json, ...bearer, origin: "http://evil.example" },
    body: tap,
  });
  assert.is(foreign.status, 403, "a foreign Origin is refused even with the token");
  assert.equal(await footprint(), before, "none of those changed anything");

  const ok = await raw("/api/sim/tap", { method: "POST", headers: { ...json, ...bearer }, body: tap });
  assert.is(ok.status, 200, ok.body);
  assert.is((JSON.parse(ok.body) as { outcome: string }).outcome, "welcome");
  assert.is((await footprint()).lastSeq, before.lastSeq + 1, "the tap with the token was journaled");

  // The page is what holds the token: served to the kiosk's own host, never cached or framed.
  const page = await raw("/", { headers: { host: `127.0.0.1:${kioskPort()}` } });
  assert.is(page.status, 200);
  assert.ok(page.body.includes(`<meta name="paylane-local-token" content="${token}"`), "the page carries the token");
  const headers = await fetch(`${kioskOrigin()}/`).then((r) => r.headers);
  assert.is(headers.get("cache-control"), "no-store");
  assert.is(headers.get("x-frame-options"), "DENY");
});

/** Opens /api/live with these headers: "open" (with the first message) or the status it was refused with. */
function socket(headers: Record<string, string>): Promise<string> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${kioskPort()}/api/live`, { headers });
    ws.once("message", () => {
      ws.close();
      resolve("open");
    });
    ws.once("unexpected-response", (_req, res) => {
      resolve(String(res.statusCode));
      ws.terminate();
    });
    ws.once("error", (err) => resolve(`error: ${err.message}`));
  });
}

it("the WebSocket: its own Origin, or no Origin with the token; nothing else", async () => {
  const token = await readLocalApiToken(dataDir());
  assert.is(await socket({ origin: kioskOrigin() }), "open", "the kiosk's own page");
  assert.is(await socket({ authorization: `Bearer ${token}` }), "open", "a tool on the kiosk with the token");
  assert.is(await socket({}), "401", "no Origin and no token");
  assert.is(await socket({ origin: "http://evil.example" }), "403");
  assert.is(await socket({ origin: "http://evil.example", authorization: `Bearer ${token}` }), "403");
  assert.is(await socket({ origin: "null" }), "403", "an opaque origin (sandboxed frame, file:) is not the kiosk's");
});

it("the token file is 0600, new at each boot, and the token is never logged", async () => {
  const first = await readLocalApiToken(dataDir());
  const mode = (await stat(join(dataDir(), LOCAL_API_TOKEN_FILE))).mode & 0o777;
  assert.is(mode, 0o600, `mode ${mode.toString(8)}`);

  await site.kiosk("k1").stop();
  site.kiosks.delete("k1");
  await site.startKiosk("k1");
  const second = await readLocalApiToken(dataDir());
  assert.is.not(second, first, "a new token at each boot");
  assert.is((await stat(join(dataDir(), LOCAL_API_TOKEN_FILE))).mode & 0o777, 0o600);
  const post = (token: string) =>
    fetch(`${kioskOrigin()}/api/payments/cancel`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: "{}",
    });
  assert.is((await post(first)).status, 401, "the last boot's token is dead");
  assert.is((await post(second)).status, 200);

  const all = logs.join("");
  assert.ok(all.includes("pn532-simulator"), "the simulator is announced at start");
  for (const t of [first, second]) assert.not.ok(all.includes(t), "no log line holds a token");
  console.log(`  ${logs.length} log lines, none with a token; refusals by reason: ${JSON.stringify(await refusals())}`);
});

it.run();
