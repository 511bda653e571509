/**
 * Issue 18: "Redis holds nothing that cannot be rebuilt: a test flushes Redis
 * under load and shows nothing lost and the caches refilled."
 *
 * The cloud on Postgres and Redis (a Redis database of its own, so FLUSHDB
 * touches no other test's keys), the aedes gateway, three kiosks checking in
 * and paying over MQTT and sending telemetry, and an operator reading the
 * fleet over HTTP (rate-limit counters) with a failed login now and then
 * (login-limit counters). FLUSHDB in the middle of the load. Then: every
 * entry a kiosk saw acked is in Postgres exactly once, every payment once in
 * the ledger, every backlog drained; and the key families the cloud keeps in
 * Redis come back by themselves: each kiosk's presence hash (lastSeen, from
 * its next events), its latest telemetry (from its next report), and the rate
 * limiter's counters (from the next request).
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CloudService,
  type Database,
  DEMO_MEMBERS,
  mintOperatorToken,
  openPg,
  parseCloudEnv,
  seedSite,
} from "@paylane/cloud";
import { Gateway } from "@paylane/gateway";
import { Registry, realTimers, siteRegistryFile } from "@paylane/protocol";
import { Redis } from "ioredis";
import pino from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { DrillKiosk } from "../../cloud/src/dr/failover-kiosk.ts";
import { loud } from "../support/hooks.ts";
import { Signal } from "../support/signal.ts";
import { PG_URL, REDIS_URL } from "../support/site.ts";

/** A Redis database no other test uses: FLUSHDB here empties only this test's keys. */
const REDIS_DB = 11;
const JWT_SECRET = "redis-flush-test-secret-of-32-chars-or-more";
const KIOSKS = ["k1", "k2", "k3"];
const TAP_EVERY_MS = 30;
const TELEMETRY_EVERY_MS = 200;

const quiet = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });
const site = `rf${randomBytes(3).toString("hex")}`;
const schema = `t_${randomBytes(6).toString("hex")}`;
const prefix = `rf${randomBytes(4).toString("hex")}:`;
const signal = new Signal();
let dir = "";
let db: Database | undefined;
let redis: Redis | undefined;
let gateway: Gateway | undefined;
let cloud: CloudService | undefined;
const kiosks: DrillKiosk[] = [];
let token = "";
/** HTTP statuses of the fleet reads and of the failed logins. */
const fleetStatuses: number[] = [];
const loginStatuses: number[] = [];

/** The key families under the cloud's prefix, e.g. `presence:`, `telemetry:`, `rl:credential`. */
async function families(): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  let cursor = "0";
  do {
    const [next, keys] = await redis!.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 500);
    cursor = next;
    for (const key of keys) {
      const rest = key.slice(prefix.length);
      const family = rest.startsWith("rl:") ? rest.split(":").slice(0, 2).join(":") : `${rest.split(":")[0]}:`;
      out.set(family, (out.get(family) ?? 0) + 1);
    }
  } while (cursor !== "0");
  return out;
}

test.before(
  loud("redis-flush setup", async () => {
    dir = await mkdtemp(join(tmpdir(), "paylane-redis-flush-"));
    redis = new Redis(`${REDIS_URL}/${REDIS_DB}`, { lazyConnect: true });
    await redis.connect();
    const secrets = new Map(KIOSKS.map((d) => [d, randomBytes(18).toString("base64url")]));
    const cloudSecret = randomBytes(18).toString("base64url");
    const file = await siteRegistryFile(site, secrets, cloudSecret);
    const registryPath = join(dir, "registry.json");
    await Registry.save(registryPath, file);
    gateway = new Gateway({ registry: new Registry(file), port: 0, logger: quiet, metrics: new MetricsRegistry() });
    await gateway.start();
    const mqttUrl = `mqtt://127.0.0.1:${gateway.port}`;
    db = await openPg({ url: PG_URL, schema });
    cloud = new CloudService({
      config: parseCloudEnv({
        CLOUD_PORT: "0",
        MQTT_URL: mqttUrl,
        CLOUD_MQTT_SECRET: cloudSecret,
        REGISTRY_PATH: registryPath,
        REDIS_URL: `${REDIS_URL}/${REDIS_DB}`,
        REDIS_PREFIX: prefix,
        CLOUD_JWT_SECRET: JWT_SECRET,
        CLOUD_INSTANCE: `test-${site}`,
        GAP_WAIT_MS: "300",
      }),
      logger: quiet,
      db,
      site,
      onCommitted: signal.notify,
    });
    await cloud.start();
    await seedSite(db, { id: site, name: "Redis flush", timezone: "UTC", currency: "EUR" });
    token = await mintOperatorToken(JWT_SECRET, { sub: "ops-flush", role: "viewer", sites: [site] });
    const members = DEMO_MEMBERS.filter((m) => m.status === "active").map((m) => m.id);
    for (const device of KIOSKS) {
      const k = new DrillKiosk({
        address: { site, device },
        secret: secrets.get(device)!,
        mqttUrl,
        ackTimeoutMs: 500,
        members,
        currency: "EUR",
        timers: realTimers,
        onAck: signal.notify,
      });
      await k.start();
      k.announce(new Date(), 1);
      kiosks.push(k);
    }
  }),
);

test.after(async () => {
  for (const k of kiosks) await k.stop();
  await cloud?.stop().catch(() => {});
  await gateway?.stop().catch(() => {});
  await db?.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
  await db?.close().catch(() => {});
  await redis?.flushdb().catch(() => {});
  redis?.disconnect();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The load: taps on every kiosk, telemetry, fleet reads and a failed login, until `stop()`. */
function startLoad(): () => void {
  const handles: NodeJS.Timeout[] = [];
  let taps = 0;
  const started = performance.now();
  for (const k of kiosks) {
    handles.push(
      setInterval(() => {
        taps++;
        k.journal(taps % 3 === 0 ? "payment" : "checkin");
      }, TAP_EVERY_MS),
      setInterval(() => {
        k.reportTelemetry(new Date(), (performance.now() - started) / 1000);
        signal.notify();
      }, TELEMETRY_EVERY_MS),
    );
  }
  handles.push(
    setInterval(() => {
      const base = cloud!.url;
      void fetch(`${base}/api/v1/devices?site=${site}`, { headers: { authorization: `Bearer ${token}` } })
        .then((r) => fleetStatuses.push(r.status))
        .catch(() => fleetStatuses.push(0));
      void fetch(`${base}/api/v1/auth/login`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ username: "nobody", password: "wrong-password" }),
      })
        .then((r) => loginStatuses.push(r.status))
        .catch(() => loginStatuses.push(0));
      signal.notify();
    }, 100),
  );
  return () => {
    for (const h of handles) clearInterval(h);
  };
}

test("FLUSHDB under load: nothing acked is lost or doubled, and the cloud's Redis keys come back", async () => {
  const stop = startLoad();
  try {
    // Under way: entries acked, every key family written.
    const before = await signal.until(
      async () => {
        const f = await families();
        const acked = kiosks.every((k) => k.ackedUpTo >= 10);
        return acked && f.has("presence:") && f.has("telemetry:") && [...f.keys()].some((k) => k.startsWith("rl:"))
          ? f
          : undefined;
      },
      "entries acked and the cloud's keys in Redis",
      20_000,
    );
    console.log(`  before FLUSHDB: ${JSON.stringify(Object.fromEntries(before))}`);
    const ackedAtFlush = kiosks.map((k) => k.ackedUpTo);
    // FLUSHDB and DBSIZE in one MULTI: the load writes again at once, so only this proves the database was emptied.
    const flushed = await redis!.multi().flushdb().dbsize().exec();
    assert.equal(flushed, [
      [null, "OK"],
      [null, 0],
    ]);
    // The load goes on; every family the cloud had comes back by itself, and acks keep coming.
    const after = await signal.until(
      async () => {
        const f = await families();
        const progressed = kiosks.every((k, i) => k.ackedUpTo > ackedAtFlush[i]! + 10);
        return progressed && [...before.keys()].every((family) => f.has(family)) ? f : undefined;
      },
      "every key family back and acks moving again",
      20_000,
    );
    console.log(`  after FLUSHDB:  ${JSON.stringify(Object.fromEntries(after))}`);
  } finally {
    stop();
  }
  await signal.until(() => kiosks.every((k) => k.backlog === 0), "every backlog drained", 20_000);

  // Nothing lost, nothing twice: every journaled entry is in Postgres once, under its seq; every payment once.
  for (const k of kiosks) {
    const { rows } = await db!.query<{ seq: number; entry_id: string }>(
      "SELECT seq, entry_id FROM inbox WHERE site_id = $1 AND device_id = $2 ORDER BY seq",
      [site, k.address.device],
    );
    assert.is(rows.length, k.lastSeq, `${k.address.device}: inbox rows`);
    for (const [i, r] of rows.entries()) assert.is(r.entry_id, k.entries[i]!.id, `${k.address.device} seq ${i + 1}`);
    const keys = k.entries
      .filter((e) => e.kind === "payment")
      .map((e) => `kiosk:${k.address.device}:${(e.body as { key: string }).key}`);
    const { rows: ledger } = await db!.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM ledger_entries WHERE site_id = $1 AND request_key = ANY($2::text[])",
      [site, keys],
    );
    assert.is(ledger[0]!.n, keys.length, `${k.address.device}: payments in the ledger`);
    assert.equal(k.anomalies, []);
  }
  // The cache that came back is the truth again: presence shows each kiosk seen, telemetry its latest report.
  const presence = await redis!.hgetall(`${prefix}presence:${site}/k1`);
  assert.ok(presence.lastSeen, `presence:${site}/k1 has lastSeen again: ${JSON.stringify(presence)}`);
  const telemetry = await redis!.hgetall(`${prefix}telemetry:${site}/k1`);
  assert.ok(Object.keys(telemetry).length > 0, "telemetry:{site}/k1 refilled");
  console.log(`  presence:${site}/k1 after the flush: ${JSON.stringify(presence)}`);
  // The API kept answering through the flush: every fleet read 200 (the rate limiter counted again
  // from zero, neither failing closed nor open); the failed logins 401, or 429 once the limiter
  // locked the account (the flush forgets such a lock: the login limits start again from zero).
  assert.ok(fleetStatuses.length > 0 && loginStatuses.length > 0);
  assert.equal([...new Set(fleetStatuses)], [200], `fleet reads: ${[...new Set(fleetStatuses)]}`);
  assert.ok(
    loginStatuses.every((s) => s === 401 || s === 429),
    `failed logins: ${[...new Set(loginStatuses)]}`,
  );
});

test.run();
