/**
 * A kiosk started with a kiosk.json that has no secret: the setup screen's
 * API on the local port (state, network, fingerprint; /api/state says
 * setup), diagnostics with the peripherals running and a test receipt, a
 * code typed on the keypad (a typo refused at once), and once the fake
 * cloud enrols it the daemon runs in the same process, on the same config.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { newClaimCode } from "@paylane/protocol";
import { DiagnosticsSchema, SetupStateSchema } from "@paylane/protocol/setup-api";
import pino from "pino";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { readLocalApiToken } from "../src/local-api-token.ts";
import { KioskRunner } from "../src/setup/kiosk-runner.ts";
import { FakeCloud } from "./enrol-fake-cloud.ts";

const it = suite("setup mode");
const CODE = newClaimCode();
let cloud: FakeCloud;
let dir: string;
let runner: KioskRunner;
const logs: string[] = [];
const logger = pino({ level: "debug" }, {
  write: (l: string) => void logs.push(l),
} as unknown as NodeJS.WritableStream);

it.before(async () => {
  cloud = new FakeCloud();
  await cloud.start();
  cloud.claims.set(CODE.replaceAll("-", ""), "demo");
  dir = await mkdtemp(join(tmpdir(), "paylane-setup-"));
  await writeFile(
    join(dir, "kiosk.json"),
    JSON.stringify({
      site: "demo",
      mqttUrl: "mqtt://127.0.0.1:9",
      cloudUrl: cloud.url,
      dataDir: join(dir, "data"),
      http: { host: "127.0.0.1", port: 0 },
      reader: { type: "pn532-simulator", pollIntervalMs: 5 },
      printer: { type: "simulator" },
    }),
  );
  runner = new KioskRunner({
    configPath: join(dir, "kiosk.json"),
    logger,
    setup: { addresses: () => ["192.0.2.7"], ntpSynchronized: async () => true },
  });
  await runner.start();
});
it.after(async () => {
  await runner?.stop();
  await cloud?.stop();
  await rm(dir, { recursive: true, force: true });
});

const url = (path: string) => `http://127.0.0.1:${runner.port}${path}`;
const get = async (path: string) => {
  const res = await fetch(url(path));
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};
const post = async (path: string, body: unknown) => {
  const res = await fetch(url(path), {
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: `Bearer ${await readLocalApiToken(join(dir, "data"))}`,
    },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};

async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

it("waits for a code: the setup state names the device, its fingerprint, the network and the cloud", async () => {
  const { status, body } = await get("/api/setup");
  assert.is(status, 200);
  const state = SetupStateSchema.parse(body);
  assert.is(state.enrolled, false);
  assert.is(state.enrolment.state, "waiting-for-code");
  assert.match(state.device, /^kiosk-[0-9a-f]{8}$/);
  assert.is(state.device, `kiosk-${state.fingerprint.slice(0, 8)}`);
  assert.equal(state.network, { online: true, addresses: ["192.0.2.7"] });
  assert.is(state.cloudUrl, cloud.url);
  assert.is(state.claimInImage, false);
  const kiosk = await get("/api/state");
  assert.is(kiosk.status, 409);
  assert.equal(kiosk.body, { setup: true });
});

it("the page is served with this boot's token, like the daemon's", async () => {
  const res = await fetch(url("/"));
  // The UI may not be built in this checkout: then a 404 problem that says so.
  if (res.status === 200) assert.match(await res.text(), /paylane-local-token|<meta/);
  else assert.is(res.status, 404);
});

it("diagnostics: the simulated reader and printer are found, the cloud answers, the clock is in step", async () => {
  await until(async () => ((await get("/api/diagnostics")).body.reader as { ok: boolean }).ok, "the reader");
  const d = DiagnosticsSchema.parse((await get("/api/diagnostics")).body);
  assert.ok(d.reader.ok, d.reader.detail);
  assert.match(d.reader.detail, /PN532.*simulated/);
  assert.ok(d.printer.ok, d.printer.detail);
  assert.is(d.printer.paper, "ok");
  assert.ok(d.gpio.ok);
  assert.ok(d.cloud.ok, d.cloud.detail);
  assert.ok(d.clock.ok, d.clock.detail);
  assert.match(d.clock.detail, /NTP synchronised/);
});

it("the test receipt button prints", async () => {
  const { status, body } = await post("/api/diagnostics/test-receipt", {});
  assert.is(status, 200);
  assert.equal(body, { printed: true, detail: "test receipt printed" });
});

it("a code with a typo is refused at once, in one line", async () => {
  const typo = `${CODE.slice(0, -1)}${(Number(CODE.at(-1)) + 1) % 10}`;
  const { status, body } = await post("/api/setup/claim", { code: typo });
  assert.is(status, 400);
  assert.match(String(body.detail), /typo/);
  assert.is(cloud.requests.filter((r) => r.path === "/api/v1/enrol").length, 0);
});

it("a POST without the token is refused", async () => {
  const res = await fetch(url("/api/setup/claim"), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ code: CODE }),
  });
  assert.is(res.status, 401);
});

it("the code typed on the keypad enrols the kiosk, and the daemon runs in the same process", async () => {
  const { status } = await post("/api/setup/claim", { code: CODE });
  assert.is(status, 202);
  await until(() => runner.daemon !== undefined, "the daemon");
  const config = JSON.parse(await readFile(join(dir, "kiosk.json"), "utf8"));
  assert.ok(config.secret && config.device);
  assert.is(runner.setup, undefined);
  // The daemon's local API: the kiosk's state, and the setup state says enrolled.
  assert.is((await get("/api/state")).status, 200);
  const setup = SetupStateSchema.parse((await get("/api/setup")).body);
  assert.is(setup.enrolled, true);
  assert.is(setup.device, config.device);
  assert.is((await post("/api/setup/claim", { code: CODE })).status, 409);
  // Diagnostics stay on the enrolled kiosk, for a technician later.
  const d = DiagnosticsSchema.parse((await get("/api/diagnostics")).body);
  assert.ok(d.cloud.ok, d.cloud.detail);
});

it("the claim code is in no log line", () => {
  assert.ok(logs.length > 5);
  const digits = CODE.replaceAll("-", "");
  for (const line of logs) assert.not.ok(line.includes(digits) || line.includes(CODE), line);
});

it("a port already taken stops setup mode's start with one line naming http.port, and leaves nothing running", async () => {
  const taken = runner.port;
  const path = join(dir, "second.json");
  await writeFile(
    path,
    JSON.stringify({
      site: "demo",
      mqttUrl: "mqtt://127.0.0.1:9",
      cloudUrl: cloud.url,
      dataDir: join(dir, "second"),
      http: { host: "127.0.0.1", port: taken },
      reader: { type: "pn532-simulator", pollIntervalMs: 5 },
    }),
  );
  const second = new KioskRunner({ configPath: path, logger });
  let message = "";
  await second.start().catch((err: Error) => (message = err.message));
  assert.match(message, new RegExp(`port ${taken} on 127\\.0\\.0\\.1 is already in use; set http\\.port`));
  assert.is(second.setup, undefined);
});

it.run();
