/**
 * Issue 12: "the cloud keeps accepting its HTTP credentials until
 * restarted." Now: "the cloud rejects its HTTP credentials within 1 s" of the
 * device being removed from, or rotated in, the registry file.
 *
 * The whole `CloudService` runs (its own Postgres schema, its bridge on an
 * in-process gateway) against a registry file the test rewrites as an
 * operator's tool does (`Registry.save`). The device calls its own stream
 * endpoint with HTTP Basic, as a kiosk does at start and on reconnect.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CloudService, type Database, openPg, parseCloudEnv } from "@paylane/cloud";
import { Gateway } from "@paylane/gateway";
import { hashSecret, Registry, type RegistryFile } from "@paylane/protocol";
import pino from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { test } from "uvu";
import * as assert from "uvu/assert";

const PG_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const SITE = `r${randomBytes(3).toString("hex")}`;
const SECRET = {
  k1: "secret-of-k1-0123456789",
  k2: "secret-of-k2-0123456789",
  k2new: "rotated-k2-0123456789",
  k3: "secret-of-k3-0123456789",
};
const BRIDGE_SECRET = randomBytes(18).toString("base64url");
const REVOKE_BOUND_MS = 1000;
const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });

let dir: string;
let registryPath: string;
let file: RegistryFile;
let gateway: Gateway;
let db: Database;
let cloud: CloudService;
const schema = `t_${randomBytes(6).toString("hex")}`;

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), "paylane-revoke-http-"));
  registryPath = join(dir, "registry.json");
  file = {
    version: 1,
    devices: [
      { site: SITE, device: "k1", secretHash: await hashSecret(SECRET.k1) },
      { site: SITE, device: "k2", secretHash: await hashSecret(SECRET.k2) },
    ],
    services: [{ id: "cloud", role: "bridge", secretHash: await hashSecret(BRIDGE_SECRET) }],
  };
  await Registry.save(registryPath, file);
  gateway = new Gateway({ registry: new Registry(file), port: 0, logger, metrics: new MetricsRegistry() });
  await gateway.start();
  db = await openPg({ url: PG_URL, schema });
  cloud = new CloudService({
    config: parseCloudEnv({
      CLOUD_PORT: "0",
      MQTT_URL: `mqtt://127.0.0.1:${gateway.port}`,
      CLOUD_MQTT_SECRET: BRIDGE_SECRET,
      REGISTRY_PATH: registryPath,
      CLOUD_INSTANCE: `revoke-${SITE}`,
      CLOUD_JWT_SECRET: randomBytes(32).toString("base64url"),
    }),
    logger,
    db,
    site: SITE,
  });
  await cloud.start();
});

test.after(async () => {
  await cloud?.stop();
  await gateway?.stop();
  await db?.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
  await db?.close();
  await rm(dir, { recursive: true, force: true });
});

/** The device's own stream mark, with its HTTP Basic credentials: the status code. */
async function streamStatus(device: string, secret: string): Promise<number> {
  const response = await fetch(`${cloud.url}/api/v1/sites/${SITE}/devices/${device}/stream`, {
    headers: { authorization: `Basic ${Buffer.from(`${SITE}/${device}:${secret}`).toString("base64")}` },
  });
  await response.arrayBuffer();
  return response.status;
}

/** Calls until the answer is `status`, from the moment `since`; the ms it took, failing past 3 bounds. */
async function untilStatus(device: string, secret: string, status: number, since: number): Promise<number> {
  for (;;) {
    const got = await streamStatus(device, secret);
    const ms = Math.round(performance.now() - since);
    if (got === status) return ms;
    if (ms > 3 * REVOKE_BOUND_MS)
      assert.unreachable(`still ${got}, not ${status}, ${ms} ms after the registry changed`);
  }
}

test("a device removed from the registry file: the cloud refuses its HTTP credentials within 1 s", async () => {
  assert.is(await streamStatus("k1", SECRET.k1), 200);
  assert.is(await streamStatus("k2", SECRET.k2), 200);

  file = { ...file, devices: file.devices.filter((d) => d.device !== "k1") };
  await Registry.save(registryPath, file);
  const ms = await untilStatus("k1", SECRET.k1, 401, performance.now());
  console.log(`k1 removed: its HTTP Basic credentials answered 401 after ${ms} ms`);
  assert.ok(ms < REVOKE_BOUND_MS, `took ${ms} ms`);
  assert.is(await streamStatus("k2", SECRET.k2), 200, "the other device is untouched");
});

test("a rotated secret: the old one is refused within 1 s, the new one works", async () => {
  const newHash = await hashSecret(SECRET.k2new);
  file = { ...file, devices: file.devices.map((d) => (d.device === "k2" ? { ...d, secretHash: newHash } : d)) };
  await Registry.save(registryPath, file);
  const ms = await untilStatus("k2", SECRET.k2, 401, performance.now());
  console.log(`k2 rotated: the old secret answered 401 after ${ms} ms`);
  assert.ok(ms < REVOKE_BOUND_MS, `took ${ms} ms`);
  assert.is(await streamStatus("k2", SECRET.k2new), 200);
});

test("a device enrolled while the cloud runs: its credentials work and it has its device row, without a restart", async () => {
  assert.is(await streamStatus("k3", SECRET.k3), 401);
  file = { ...file, devices: [...file.devices, { site: SITE, device: "k3", secretHash: await hashSecret(SECRET.k3) }] };
  await Registry.save(registryPath, file);
  const since = performance.now();
  await untilStatus("k3", SECRET.k3, 200, since);
  for (;;) {
    const { rows } = await db.query<{ n: string }>(
      "SELECT count(*) AS n FROM devices WHERE site_id = $1 AND id = 'k3'",
      [SITE],
    );
    if (Number(rows[0]!.n) === 1) break;
    if (performance.now() - since > 3 * REVOKE_BOUND_MS) assert.unreachable("k3 has no device row");
  }
});

test.run();
