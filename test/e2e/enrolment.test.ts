/**
 * Enrolment end to end (issue 15), on a real cloud (Postgres) and gateway
 * that watch one registry file: a claim created through the API; a kiosk
 * daemon started with nothing but that code enrols itself, connects to the
 * broker with its new identity and journals a check-in (a tap through its
 * local API) that lands in Postgres — no restart, no registry edited by
 * hand. The same code on a second kiosk, an expired code and another
 * site's code are each refused with their reason; `rotate-credentials`
 * moves the kiosk to a new secret and the old one stops working; a revoke
 * closes its session; and the claim code is in no log line of either side.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { seedSite } from "@paylane/cloud";
import { type KioskDaemon, KioskRunner } from "@paylane/device";
import pino from "pino";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { EnrolmentHarness } from "../../cloud/test/enrolment-harness.ts";
import { kioskPost } from "../support/kiosk-api.ts";
import { demoCard } from "../support/site.ts";

const it = suite("enrolment end to end");
const h = new EnrolmentHarness();
const kioskLogs: string[] = [];
const codes: string[] = [];
const runners: KioskRunner[] = [];
let dir = "";
let first: KioskRunner;
let device = "";

it.before(async () => {
  await h.start();
  await seedSite(h.db, { id: h.site, name: "Enrolment venue", timezone: "UTC" });
  dir = await mkdtemp(join(tmpdir(), "paylane-e2e-enrol-"));
});
it.after(async () => {
  for (const r of runners) await r.stop().catch(() => {});
  await h.stop();
  await rm(dir, { recursive: true, force: true });
});

async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A kiosk with only a claim code in its kiosk.json, started as paylane-device starts it. */
async function kioskWithClaim(name: string, claim: string, site = h.site): Promise<KioskRunner> {
  codes.push(claim);
  const path = join(dir, `${name}.json`);
  await writeFile(
    path,
    JSON.stringify({
      site,
      mqttUrl: `mqtt://127.0.0.1:${h.gateway.port}`,
      cloudUrl: h.cloud.url,
      dataDir: join(dir, name),
      http: { host: "127.0.0.1", port: 0 },
      reader: { type: "pn532-simulator", pollIntervalMs: 5 },
      ackTimeoutMs: 2000,
      claim,
    }),
    { mode: 0o600 },
  );
  const logger = pino({ level: "trace" }, { write: (l: string) => void kioskLogs.push(l) });
  const runner = new KioskRunner({ configPath: path, logger: logger.child({ kiosk: name }) });
  runners.push(runner);
  await runner.start();
  return runner;
}

async function refusedWith(runner: KioskRunner, reason: string): Promise<void> {
  await until(() => runner.setup?.state().enrolment.state === "failed", `${reason} refusal`);
  const state = runner.setup!.state();
  assert.is(state.enrolment.reason, reason, JSON.stringify(state.enrolment));
  assert.ok(state.enrolment.fix, "the screen says how to fix it");
  assert.is(runner.daemon, undefined, "a refused kiosk does not run the daemon");
}

const secretOf = async (name: string): Promise<string> =>
  JSON.parse(await readFile(join(dir, `${name}.json`), "utf8")).secret as string;

async function onlineAndSynced(daemon: KioskDaemon): Promise<void> {
  await until(async () => (await daemon.state()).online && daemon.replicaSync.lastError === undefined, "kiosk online");
  await daemon.replicaSync.syncNow();
}

it("a kiosk started with only a claim code enrols, connects and journals a check-in that lands in Postgres", async () => {
  const [claim] = await h.claims(1);
  first = await kioskWithClaim("k1", claim!.code);
  await until(() => first.daemon !== undefined, "the daemon after enrolment");
  const file = JSON.parse(await readFile(join(dir, "k1.json"), "utf8"));
  assert.is(file.claim, undefined, "the claim is gone from kiosk.json");
  assert.ok(file.secret);
  device = file.device;
  assert.match(device, /^kiosk-[0-9a-f]{8}$/);
  const daemon = first.daemon!;
  await onlineAndSynced(daemon);
  const tap = await kioskPost(first.port, join(dir, "k1"), "/api/sim/tap", { uid: demoCard("m-ada") });
  assert.is(tap.status, 200, await tap.clone().text());
  assert.is(((await tap.json()) as { outcome: string }).outcome, "welcome");
  await until(
    async () =>
      (await h.count("SELECT count(*) AS n FROM checkins WHERE site_id = $1 AND member_id = 'm-ada'", [h.site])) === 1,
    "the check-in in Postgres",
  );
});

it("the same code on a second kiosk is refused: claim-used", async () => {
  const second = await kioskWithClaim("k2", codes[0]!);
  await refusedWith(second, "claim-used");
});

it("an expired code is refused: claim-expired", async () => {
  const [claim] = await h.claims(1, h.site, 60);
  h.offsetMs = 2 * 60_000; // the cloud's clock is two minutes on: past the code's expiry, well within the skew allowed
  try {
    await refusedWith(await kioskWithClaim("k3", claim!.code), "claim-expired");
  } finally {
    h.offsetMs = 0;
  }
});

it("another site's code is refused: claim-other-site", async () => {
  const [claim] = await h.claims(1, h.otherSite);
  await refusedWith(await kioskWithClaim("k4", claim!.code), "claim-other-site");
});

it("rotate-credentials: the kiosk reconnects with a new secret, and the old one no longer works", async () => {
  const old = await secretOf("k1");
  const before = first.daemon!;
  const res = await h.request("POST", `/api/v1/devices/${h.site}/${device}/rotate`, {
    token: await h.token("admin"),
  });
  assert.is(res.status, 202, JSON.stringify(res.body));
  await until(() => first.daemon !== undefined && first.daemon !== before, "the daemon on its new secret");
  const now = await secretOf("k1");
  assert.is.not(now, old);
  await onlineAndSynced(first.daemon!);
  assert.ok(await h.refuses(h.site, device, old), "the old secret is refused by the broker");
  // The command's answer reached the cloud, on the old session before the switch.
  const commandId = res.body.commandId as string;
  const viewer = await h.token("viewer");
  await until(async () => {
    const list = await h.request("GET", `/api/v1/devices/${h.site}/${device}/commands`, { token: viewer });
    const items = (list.body.items ?? []) as Array<{ id: string; status: string }>;
    return items.find((i) => i.id === commandId)?.status === "done";
  }, "rotate-credentials answered done");
});

it("revoke through the API closes the kiosk's session, and its credentials stop working", async () => {
  const daemon = first.daemon!;
  assert.ok(daemon.uplink.brokerConnected);
  const res = await h.request("POST", `/api/v1/devices/${h.site}/${device}/revoke`, {
    token: await h.token("admin"),
  });
  assert.is(res.status, 200, JSON.stringify(res.body));
  await until(() => !daemon.uplink.brokerConnected, "the kiosk's session closed");
  assert.ok(await h.refuses(h.site, device, await secretOf("k1")));
});

it("the claim codes are in no log line of the kiosks or the cloud", () => {
  // Both sides did log their enrolments: the lines are there to search.
  assert.ok(
    kioskLogs.some((l) => /enrolled/.test(l)),
    "the kiosk logged its enrolment",
  );
  assert.ok(h.logs.length > 0, "the cloud logged");
  for (const code of codes) {
    const digits = code.replaceAll("-", "");
    for (const line of [...kioskLogs, ...h.logs])
      assert.not.ok(line.includes(digits) || line.includes(code), `a claim code in: ${line.slice(0, 300)}`);
  }
});

it.run();
