/**
 * A hung cloud (docs/status.md): the cloud runs as its own process
 * (cloud/src/main.ts, heartbeat every second) and is frozen with SIGSTOP. Its
 * TCP session to the broker stays up and its retained STATE still says
 * online; only its heartbeats stop. The kiosk (cloudLivenessSeconds 3) must
 * say offline on its local API within N + 2 s, decide a payment offline
 * within 1 s, and be online again after SIGCONT, the offline payment then
 * reconciled. Wall time is what is measured here: every wait polls with a
 * deadline, none sleeps a fixed time.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Database, DEMO_MEMBERS, migrate, openPg, seedSite } from "@paylane/cloud";
import { KioskDaemon, parseDeviceConfig } from "@paylane/device";
import { Gateway } from "@paylane/gateway";
import { hashSecret, Registry, type RegistryFile } from "@paylane/protocol";
import type { KioskState } from "@paylane/protocol/kiosk-api";
import pino from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { readLocalApiToken } from "../../device/src/local-api-token.ts";
import { freePortRun } from "../support/private-mosquitto.ts";
import { demoCard, PG_URL } from "../support/site.ts";

const LIVENESS_S = 3;
const ROOT = new URL("../..", import.meta.url).pathname;
const quiet = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });

const site = `t${randomBytes(4).toString("hex")}`;
const schema = `t_${randomBytes(6).toString("hex")}`;
const secrets = { k1: randomBytes(18).toString("base64url"), cloud: randomBytes(18).toString("base64url") };
let dir = "";
let gateway: Gateway | undefined;
let db: Database | undefined;
let cloud: ChildProcess | undefined;
let cloudExited: Promise<unknown> = Promise.resolve();
let cloudLog = "";
let kiosk: KioskDaemon | undefined;

/** Polls `check` until it returns something truthy; fails naming `what` after `ms`. */
async function poll<T>(check: () => Promise<T | undefined | false>, what: string, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check().catch(() => undefined);
    if (v) return v;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${ms} ms waiting for ${what}\ncloud said:\n${cloudLog}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The kiosk's state as its screen reads it: GET /api/state on the local API. */
async function localState(k: KioskDaemon): Promise<KioskState> {
  const res = await fetch(`http://127.0.0.1:${k.port}/api/state`, {
    headers: { authorization: `Bearer ${await readLocalApiToken(join(dir, "k1"))}` },
  });
  if (res.status !== 200) throw new Error(`GET /api/state answered ${res.status}`);
  return (await res.json()) as KioskState;
}

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), "paylane-cloud-hung-"));
  const file: RegistryFile = {
    version: 1,
    devices: [{ site, device: "k1", secretHash: await hashSecret(secrets.k1) }],
    services: [{ id: "cloud", role: "bridge", secretHash: await hashSecret(secrets.cloud) }],
  };
  const registryPath = join(dir, "registry.json");
  await Registry.save(registryPath, file);
  gateway = new Gateway({ registry: new Registry(file), port: 0, logger: quiet, metrics: new MetricsRegistry() });
  await gateway.start();
  const mqttUrl = `mqtt://127.0.0.1:${gateway.port}`;

  db = await openPg({ url: PG_URL, schema });
  await migrate(db);
  await seedSite(
    db,
    {
      id: site,
      name: "Hung cloud venue",
      timezone: "UTC",
      limits: { perPayment: 800, perCardDaily: 1000, kioskExposure: 5000 },
    },
    DEMO_MEMBERS,
  );

  const port = await freePortRun(1);
  const cloudUrl = `http://127.0.0.1:${port}`;
  // One process (node with tsx as a loader, not npx): the pid signalled is the cloud's own.
  cloud = spawn(process.execPath, ["--import", "tsx", join(ROOT, "cloud/src/main.ts")], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      CLOUD_PORT: String(port),
      MQTT_URL: mqttUrl,
      CLOUD_MQTT_SECRET: secrets.cloud,
      REGISTRY_PATH: registryPath,
      DATABASE_URL: PG_URL,
      DATABASE_SCHEMA: schema,
      CLOUD_INSTANCE: `hung-${site}`,
      CLOUD_JWT_SECRET: randomBytes(32).toString("base64url"),
      CLOUD_HEARTBEAT_SECONDS: "1",
      LOG_LEVEL: "warn",
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const child = cloud;
  cloudExited = new Promise((resolve) => child.once("exit", resolve));
  child.stderr?.on("data", (d) => {
    cloudLog += d;
  });
  const reap = () => child.kill("SIGKILL");
  process.once("exit", reap);
  await poll(async () => (await fetch(`${cloudUrl}/healthz`)).status === 200, "the cloud's /healthz", 60_000);

  const config = parseDeviceConfig({
    site,
    device: "k1",
    secret: secrets.k1,
    mqttUrl,
    cloudUrl,
    dataDir: join(dir, "k1"),
    http: { host: "127.0.0.1", port: 0 },
    reader: { type: "pn532-simulator", pollIntervalMs: 5 },
    cloudLivenessSeconds: LIVENESS_S,
  });
  kiosk = new KioskDaemon({ config, logger: quiet });
  await kiosk.start();
  const k = kiosk;
  await poll(async () => (await k.state()).online && k.replicaSync.lastError === undefined, "k1 online", 30_000);
  await k.replicaSync.syncNow();
});

test.after(async () => {
  if (cloud?.pid && cloud.exitCode === null) {
    process.kill(cloud.pid, "SIGCONT");
    cloud.kill("SIGTERM");
    await cloudExited;
  }
  await kiosk?.stop();
  await gateway?.stop();
  await db?.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await db?.close();
  await rm(dir, { recursive: true, force: true });
});

test("cloud SIGSTOPped: offline within N + 2 s, a payment decided offline within 1 s, online again on SIGCONT", async () => {
  const k1 = kiosk!;
  const pid = cloud!.pid!;
  assert.is((await localState(k1)).online, true);
  // While the cloud is alive, a payment is authorized online.
  await k1.payments.start({ kind: "purchase", itemId: "coffee" });
  assert.is((await k1.tapToPay(demoCard("m-ada"))).authorization, "online");

  process.kill(pid, "SIGSTOP");
  const stoppedAt = Date.now();
  const state = await poll(
    async () => {
      const s = await localState(k1);
      return !s.online && s;
    },
    "the kiosk to say offline",
    (LIVENESS_S + 5) * 1000,
  );
  const offlineAfterMs = Date.now() - stoppedAt;
  assert.ok(offlineAfterMs <= (LIVENESS_S + 2) * 1000, `offline after ${offlineAfterMs} ms, more than N + 2 s`);
  assert.is(state.broker, true, "the broker session is still up: only liveness can tell");
  assert.is(k1.uplink.linkState, "unreachable");

  await k1.payments.start({ kind: "purchase", itemId: "coffee" });
  const tappedAt = Date.now();
  const paid = await k1.tapToPay(demoCard("m-ada"));
  const decidedInMs = Date.now() - tappedAt;
  assert.is(paid.outcome, "approved", paid.message);
  assert.is(paid.authorization, "offline");
  assert.ok(decidedInMs < 1000, `decided in ${decidedInMs} ms, not within 1 s`);

  process.kill(pid, "SIGCONT");
  const continuedAt = Date.now();
  await poll(async () => (await localState(k1)).online, "the kiosk to say online again", 15_000);
  const onlineAfterMs = Date.now() - continuedAt;
  assert.is(k1.uplink.linkState, "online");
  // The offline payment reaches the cloud and is acked.
  await poll(async () => (await k1.journal.stats()).backlog === 0, "the offline payment to be acked", 15_000);
  console.log(
    `cloud SIGSTOP: kiosk offline after ${offlineAfterMs} ms (N = ${LIVENESS_S} s), payment decided offline in ${decidedInMs} ms; SIGCONT: online after ${onlineAfterMs} ms`,
  );
});

test.run();
