/**
 * Security review of issue 14's cloud routes (commands, desired config,
 * telemetry history, alerts) on a real cloud (PGlite, aedes): a token scoped
 * to one site touches nothing of another, a viewer steers nothing, and
 * hostile bodies are refused with a 400 before anything reaches a kiosk.
 */
import { mintOperatorToken, type Role } from "@paylane/cloud";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { loud } from "../support/hooks.ts";
import { TestSite } from "../support/site.ts";

const it = suite("ops routes under attack");
let site: TestSite;

it.before(
  loud("site setup", async () => {
    site = new TestSite({ db: "pg", presence: "memory", broker: "aedes", kiosks: [], probes: ["probe"] });
    await site.start();
  }),
);
it.after(async () => {
  await site?.stop();
});

async function call(token: string, method: string, path: string, body?: unknown) {
  const res = await fetch(new URL(path, site.cloud!.url), {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, text };
}

const token = (role: Role, sites?: string[]) =>
  mintOperatorToken(site.jwtSecret, { sub: `ops-${role}`, role, ...(sites ? { sites } : {}) });

it("a token of another site gets 403 on every ops route of this site, whatever its role", async () => {
  const dev = `/api/v1/devices/${site.site}/probe`;
  for (const role of ["viewer", "operator", "admin"] as const) {
    const other = await token(role, ["elsewhere"]);
    const tries: Array<[string, string, unknown?]> = [
      ["POST", `${dev}/commands`, { command: "unlock", args: { seconds: 300 } }],
      ["GET", `${dev}/commands`],
      ["PUT", `${dev}/config`, { settings: { mode: "out-of-service" } }],
      ["GET", `${dev}/config`],
      ["GET", `${dev}/telemetry`],
      ["GET", `${dev}/telemetry/latest`],
      ["GET", `/api/v1/config/drift?site=${site.site}`],
      ["GET", `/api/v1/alerts/active?site=${site.site}`],
    ];
    for (const [method, path, body] of tries) {
      const res = await call(other, method, path, body);
      assert.is(res.status, 403, `${role} of another site: ${method} ${path} → ${res.status} ${res.text}`);
    }
    // An unscoped listing with a token of one other site lists that site only: nothing of this one.
    const drift = await call(other, "GET", "/api/v1/config/drift");
    assert.is(drift.status, 200);
    assert.not.ok(drift.text.includes(site.site), "drift of this site listed to another site's token");
    const active = await call(other, "GET", "/api/v1/alerts/active");
    assert.is(active.status, 200);
    assert.not.ok(active.text.includes(site.site), "alerts of this site listed to another site's token");
  }
});

it("a viewer token may read but not send a command, set a config or resolve an alert", async () => {
  const viewer = await token("viewer", [site.site]);
  const dev = `/api/v1/devices/${site.site}/probe`;
  for (const [method, path, body] of [
    ["POST", `${dev}/commands`, { command: "reboot" }],
    ["PUT", `${dev}/config`, { settings: { mode: "maintenance" } }],
    ["POST", "/api/v1/alerts/anything/resolve", {}],
  ] as const) {
    const res = await call(viewer, method, path, body);
    assert.is(res.status, 403, `viewer ${method} ${path} → ${res.status} ${res.text}`);
  }
  assert.is((await call(viewer, "GET", `${dev}/commands`)).status, 200);
  assert.is((await call(viewer, "GET", `${dev}/config`)).status, 200);
});

it("hostile command and config bodies are refused with 400 and nothing is sent", async () => {
  const operator = await token("operator", [site.site]);
  const dev = `/api/v1/devices/${site.site}/probe`;
  const badCommands: unknown[] = [
    { command: "unlock", args: { seconds: 100_000 } },
    { command: "unlock", args: { seconds: 5, [`x${"y".repeat(100_000)}`]: 1 } },
    { command: "shell", args: { cmd: "rm -rf /" } },
    { command: "constructor" },
    { command: "__proto__" },
    { command: "reboot", id: "mine" },
    { command: "reboot", by: "admin" },
    { command: "reboot", expiresInSeconds: 10 ** 12 },
    { command: "replay-from", args: { from: 0 } },
    { command: "set-mode", args: { mode: "party" } },
  ];
  for (const body of badCommands) {
    const res = await call(operator, "POST", `${dev}/commands`, body);
    assert.is(res.status, 400, `${JSON.stringify(body).slice(0, 80)} → ${res.status} ${res.text.slice(0, 200)}`);
  }
  const badConfigs: unknown[] = [
    { settings: { offlineCaps: { perCardMinor: -1 } } },
    { settings: { screenTexts: { welcome: "x".repeat(10_000) } } },
    { settings: { volume: 11 } },
    { settings: { mode: "out-of-service" }, version: 1e15 },
    { settings: { mode: "out-of-service" }, by: "admin" },
    '{"settings":{"offlineCaps":{"perCardMinor":1e400}}}',
  ];
  for (const body of badConfigs) {
    const res = await call(operator, "PUT", `${dev}/config`, body);
    assert.is(
      res.status,
      400,
      `${String(JSON.stringify(body)).slice(0, 80)} → ${res.status} ${res.text.slice(0, 200)}`,
    );
  }
  const audit = await call(operator, "GET", `${dev}/commands`);
  assert.equal(JSON.parse(audit.text).items, [], "a refused command left an audit row (so it was sent)");
  const config = JSON.parse((await call(operator, "GET", `${dev}/config`)).text);
  assert.is(config.desired, null, "a refused config was published");
});

it.run();
