/**
 * Issue 12, the cloud API: "The cloud serves `/api/v1/checkins` (members'
 * names), `/devices`, `/alerts`, `/conflicts` and `/metrics` without
 * authentication." Every route but /healthz and /readyz now wants a
 * credential: operator reads an operator token, kiosk routes the kiosk's own
 * Basic credentials, /metrics METRICS_TOKEN (or a loopback-only port of its
 * own). A kiosk's credentials read nothing an operator reads.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CloudService, openPg, parseCloudEnv } from "@paylane/cloud";
import { Gateway } from "@paylane/gateway";
import { hashSecret, Registry, type RegistryFile } from "@paylane/protocol";
import pino from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { ApiHarness, METRICS_TOKEN } from "../support/cloud-api.ts";
import { loud } from "../support/hooks.ts";

const PG_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const it = suite("cloud: unauthenticated requests");
const api = new ApiHarness({ db: "pg", metricsToken: METRICS_TOKEN });
it.before(loud("starting the API", () => api.start()));
it.after(loud("stopping the API", () => api.close()));

const OPERATOR_READS = (site: string) => [
  `/api/v1/checkins?site=${site}`,
  "/api/v1/checkins",
  `/api/v1/devices?site=${site}`,
  "/api/v1/devices",
  `/api/v1/alerts?site=${site}`,
  "/api/v1/alerts",
  `/api/v1/conflicts?site=${site}`,
  "/api/v1/conflicts",
  `/api/v1/wallets?site=${site}`,
  `/api/v1/wallets/${site}/m-ada`,
  `/api/v1/wallets/${site}/m-ada/entries`,
  `/api/v1/ledger?site=${site}`,
  `/api/v1/payments?site=${site}`,
  "/api/v1/payments/00000000-0000-4000-8000-000000000000",
  `/api/v1/exposure?site=${site}`,
  `/api/v1/sites/${site}/items`,
];

async function assertUnauthorized(res: Response, what: string): Promise<void> {
  const text = await res.text();
  assert.is(res.status, 401, `${what}: ${text}`);
  assert.is(res.headers.get("content-type"), "application/problem+json", what);
  assert.ok(res.headers.get("www-authenticate"), `${what}: says how to authenticate`);
  assert.not.match(text, /Ada|Lovelace|paylane_/, `${what}: no data in the refusal`);
}

it("operator reads without a token: 401 problem+json, no data", async () => {
  for (const path of OPERATOR_READS(api.site)) await assertUnauthorized(await api.request(path), path);
});

it("operator reads with a kiosk's own Basic credentials: 401 (a stolen kiosk secret reads no members)", async () => {
  for (const path of OPERATOR_READS(api.site)) {
    await assertUnauthorized(await api.request(path, { headers: { authorization: api.device() } }), path);
  }
});

it("operator reads: the fleet with a viewer token, the money with a finance one (200); the money with a viewer's: 403", async () => {
  const viewer = `Bearer ${await api.token("viewer")}`;
  const finance = `Bearer ${await api.token("finance")}`;
  for (const path of OPERATOR_READS(api.site)) {
    const money = /\/(wallets|ledger|payments|exposure|items)\b/.test(path);
    const res = await api.request(path, { headers: { authorization: money ? finance : viewer } });
    assert.ok(res.status === 200 || res.status === 404, `${path}: ${res.status} ${await res.text()}`);
    if (!money) continue;
    const refused = await api.request(path, { headers: { authorization: viewer } });
    assert.is(refused.status, 403, `${path}: a viewer reads no money`);
  }
});

it("kiosk routes without credentials, or with an operator token: 401", async () => {
  const kioskRoutes: Array<[string, string]> = [
    ["GET", `/api/v1/sites/${api.site}/members`],
    ["GET", `/api/v1/sites/${api.site}/wallets`],
    ["GET", `/api/v1/sites/${api.site}/devices/k1/stream`],
    ["POST", "/api/v1/payments"],
    ["POST", "/api/v1/payments/void"],
  ];
  const operator = `Bearer ${await api.token("admin")}`;
  for (const [method, path] of kioskRoutes) {
    await assertUnauthorized(await api.request(path, { method }), `${method} ${path}`);
    await assertUnauthorized(
      await api.request(path, { method, headers: { authorization: operator } }),
      `${method} ${path} (operator)`,
    );
  }
});

it("/metrics: 401 without the metrics token or with another credential, 200 with it", async () => {
  await assertUnauthorized(await api.request("/metrics"), "/metrics");
  await assertUnauthorized(
    await api.request("/metrics", { headers: { authorization: "Bearer not-the-metrics-token" } }),
    "/metrics (wrong token)",
  );
  await assertUnauthorized(
    await api.request("/metrics", { headers: { authorization: `Bearer ${await api.token("admin")}` } }),
    "/metrics (operator token)",
  );
  const ok = await api.request("/metrics", { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
  assert.is(ok.status, 200);
  assert.match(await ok.text(), /paylane_cloud_payment_authorizations_total/);
});

it("/healthz and /readyz answer without credentials", async () => {
  assert.is((await api.request("/healthz")).status, 200);
  assert.is((await api.request("/readyz")).status, 200);
});

it("a cloud without METRICS_TOKEN refuses /metrics on its API port and serves it on CLOUD_METRICS_PORT (loopback)", async () => {
  const quiet = pino({ level: "silent" });
  const dir = await mkdtemp(join(tmpdir(), "paylane-metrics-"));
  const registryPath = join(dir, "registry.json");
  const bridgeSecret = randomBytes(18).toString("base64url");
  const file: RegistryFile = {
    version: 1,
    devices: [],
    services: [{ id: "cloud", role: "bridge", secretHash: await hashSecret(bridgeSecret) }],
  };
  await Registry.save(registryPath, file);
  const gateway = new Gateway({ registry: new Registry(file), port: 0, logger: quiet, metrics: new MetricsRegistry() });
  await gateway.start();
  const schema = `t_${randomBytes(6).toString("hex")}`;
  const cloud = new CloudService({
    config: parseCloudEnv({
      CLOUD_PORT: "0",
      CLOUD_METRICS_PORT: "0",
      MQTT_URL: `mqtt://127.0.0.1:${gateway.port}`,
      CLOUD_MQTT_SECRET: bridgeSecret,
      REGISTRY_PATH: registryPath,
      DATABASE_URL: PG_URL,
      DATABASE_SCHEMA: schema,
      CLOUD_JWT_SECRET: "x".repeat(40),
    }),
    logger: quiet,
  });
  try {
    await cloud.start().catch((err: Error) => {
      throw new Error(`the cloud did not start: ${err.message}`);
    });
    const onApi = await fetch(`${cloud.url}/metrics`);
    assert.is(onApi.status, 403);
    assert.is(onApi.headers.get("content-type"), "application/problem+json");
    assert.match(((await onApi.json()) as { detail: string }).detail, /METRICS_TOKEN/);
    assert.ok(cloud.metricsPort, "a metrics port is open");
    const scrape = await fetch(`http://127.0.0.1:${cloud.metricsPort}/metrics`);
    assert.is(scrape.status, 200);
    assert.match(await scrape.text(), /paylane_/);
    const unauthenticated = await fetch(`${cloud.url}/api/v1/checkins`);
    assert.is(unauthenticated.status, 401);
  } finally {
    await cloud.stop();
    await gateway.stop();
    const db = await openPg({ url: PG_URL, schema });
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await db.close();
    await rm(dir, { recursive: true, force: true });
  }
});

it.run();
