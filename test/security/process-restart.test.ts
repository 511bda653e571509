/**
 * Issue 12, process hygiene: every service can be stopped and started again
 * in one process. A second start of the kiosk daemon or the cloud threw
 * `A metric with the name … has already been registered` (their metrics were
 * registered on the same registry at every start). Each part here runs
 * start → stop → start → stop and is checked to work after the second start.
 */
import { randomBytes } from "node:crypto";
import { deviceIdentity, hashSecret, Registry, type RegistryFile } from "@paylane/protocol";
import mqtt from "mqtt";
import pino from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { CloudService } from "../../cloud/src/cloud.ts";
import { parseCloudEnv } from "../../cloud/src/config.ts";
import { Gateway } from "../../gateway/src/gateway.ts";
import { PrivateMosquitto } from "../support/private-mosquitto.ts";
import { TestSite } from "../support/site.ts";

const quiet = pino({ level: "silent" });
const it = suite("start, stop, start again");

async function activeCards(site: TestSite, n: number): Promise<string[]> {
  const { rows } = await site.db.query<{ card_uid: string }>(
    "SELECT card_uid FROM members WHERE site_id = $1 AND status = 'active' ORDER BY id LIMIT $2",
    [site.site, n],
  );
  return rows.map((r) => r.card_uid);
}

it("the kiosk daemon: a tap journals and reaches the cloud after a second start", async () => {
  const site = new TestSite({ db: "pg", presence: "memory", broker: "aedes", kiosks: ["k1"] });
  await site.start();
  try {
    const k1 = site.kiosk("k1");
    const [first, second, third] = await activeCards(site, 3);
    assert.is((await k1.tap(first!)).outcome, "welcome");
    for (const [round, card] of [
      [1, second!],
      [2, third!],
    ] as const) {
      const before = (await k1.journal.stats()).lastSeq;
      await k1.stop();
      await k1.start();
      await site.signal.until(async () => (await k1.state()).online, `k1 online after restart ${round}`);
      await k1.replicaSync.syncNow();
      const result = await k1.tap(card);
      assert.is(result.outcome, "welcome", `restart ${round}`);
      assert.is(result.seq, before + 1, "journaled with the next seq");
      await site.drained("k1");
      const health = await fetch(`http://127.0.0.1:${k1.port}/healthz`);
      assert.is(health.status, 200);
      assert.match(await k1.metrics.metrics(), /paylane_device_taps_total\{outcome="welcome"\} 1/);
    }
  } finally {
    await site.stop();
  }
});

it("the cloud: after a second start it answers /healthz and commits and acks a kiosk's entries", async () => {
  const site = new TestSite({ db: "pg", presence: "memory", broker: "aedes", kiosks: ["k1"] });
  await site.start();
  try {
    const cloud = site.cloud!;
    const k1 = site.kiosk("k1");
    const cards = await activeCards(site, 2);
    for (const [round, card] of cards.entries()) {
      await site.stopCloud();
      await cloud.start();
      site.cloud = cloud;
      assert.is((await fetch(`${cloud.url}/healthz`)).status, 200, `healthz after restart ${round + 1}`);
      assert.is((await k1.tap(card)).outcome, "welcome");
      // committed in Postgres by the restarted bridge and acked back to the kiosk
      await site.drained("k1");
      assert.match(await cloud.metrics.metrics(), /paylane_bridge_entries_total\{outcome="applied"\} 1/);
    }
  } finally {
    await site.stop();
  }
});

it("the cloud with Node's default metrics (paylane-cloud's setting) starts twice", async () => {
  const site = new TestSite({ db: "pg", presence: "memory", broker: "aedes", kiosks: [] });
  await site.start();
  // a broker of its own, anonymous: this cloud is not the site's (no service secret)
  const broker = new PrivateMosquitto(site.dir);
  await broker.start();
  try {
    const cloud = new CloudService({
      config: parseCloudEnv({
        CLOUD_PORT: "0",
        MQTT_URL: broker.url,
        REGISTRY_PATH: `${site.dir}/registry.json`,
        CLOUD_INSTANCE: `restart-${site.site}`,
      }),
      db: site.db,
      site: site.site,
      logger: quiet,
      defaultMetrics: true,
    });
    for (const round of [1, 2]) {
      await cloud.start();
      const health = await fetch(`${cloud.url}/healthz`);
      assert.is(health.status, 200, `healthz after start ${round}`);
      const text = await cloud.metrics.metrics();
      assert.match(text, /^process_cpu_user_seconds_total /m);
      assert.match(text, /^# TYPE paylane_bridge_entries_total counter/m);
      await cloud.stop();
    }
  } finally {
    await broker.kill();
    await site.stop();
  }
});

it("the gateway: one metrics registry across two starts; a kiosk connects after the second", async () => {
  const secret = randomBytes(18).toString("base64url");
  const address = { site: "restart", device: "k1" };
  const file: RegistryFile = {
    version: 1,
    devices: [{ ...address, secretHash: await hashSecret(secret) }],
    services: [],
  };
  const metrics = new MetricsRegistry();
  const gateway = new Gateway({ registry: new Registry(file), port: 0, logger: quiet, metrics });
  for (const round of [1, 2]) {
    await gateway.start();
    const client = await mqtt.connectAsync(
      `mqtt://127.0.0.1:${gateway.port}`,
      {
        clientId: deviceIdentity.clientId(address),
        username: deviceIdentity.username(address),
        password: secret,
        protocolVersion: 4,
        reconnectPeriod: 0,
        connectTimeout: 5000,
      },
      false,
    );
    assert.ok(client.connected, `a kiosk connects after start ${round}`);
    await client.endAsync(true);
    assert.match(await metrics.metrics(), /paylane_gateway_connections_total/);
    await gateway.stop();
  }
});

it.run();
