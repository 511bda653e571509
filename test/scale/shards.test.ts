/**
 * Issue 19, "Partitioning" (docs/partitioning.md): sites spread over two
 * Postgres databases behind a site→database map. Two cloud deployments, one
 * per database, each with its DATABASE_URL, its CLOUD_SITES and its share
 * group, on one broker (the aedes gateway). Kiosks of site A, site B and a
 * third site C that no deployment owns journal entries. Each site's rows land
 * only in its own database (inbox, devices, streams); C's kiosk is ingested by
 * neither shard (nothing acked, no row anywhere); each deployment's metrics
 * cover its own sites only.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Gateway } from "@paylane/gateway";
import { hashSecret, Registry, type RegistryFile, realTimers } from "@paylane/protocol";
import pg from "pg";
import { pino } from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { CloudService } from "../../cloud/src/cloud.ts";
import { parseCloudEnv } from "../../cloud/src/config.ts";
import { DrillKiosk } from "../../cloud/src/dr/failover-kiosk.ts";
import { DEMO_MEMBERS, seedSite } from "../../cloud/src/seed.ts";
import { loud } from "../support/hooks.ts";
import { Signal } from "../support/signal.ts";

const PG_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const ENTRIES = 12;
const WAIT_MS = 30_000;
const quiet = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });
const members = DEMO_MEMBERS.filter((m) => m.status === "active").map((m) => m.id);
const tag = randomBytes(4).toString("hex");
const SITES = { a: `sa${tag}`, b: `sb${tag}`, c: `sc${tag}` };
/** The site→database map: each owned site to its shard's database (C is in none). */
const SHARDS = [
  { name: `paylane_shard1_${tag}`, sites: [SITES.a] },
  { name: `paylane_shard2_${tag}`, sites: [SITES.b] },
];
const dbUrl = (name: string) => {
  const u = new URL(PG_URL);
  u.pathname = `/${name}`;
  return u.toString();
};

const ctx = {
  dir: "",
  admin: undefined as unknown as pg.Client,
  gateway: undefined as unknown as Gateway,
  clouds: [] as CloudService[],
  kiosks: [] as DrillKiosk[],
  signal: new Signal(),
};

const Shards = suite("two shards behind a site→database map");

Shards.before(
  loud("two databases, the gateway, a deployment per database, kiosks of three sites", async () => {
    ctx.dir = await mkdtemp(join(tmpdir(), "paylane-shards-"));
    ctx.admin = new pg.Client({ connectionString: PG_URL });
    await ctx.admin.connect();
    for (const s of SHARDS) await ctx.admin.query(`CREATE DATABASE ${s.name}`);
    const devices = Object.values(SITES).flatMap((site) => ["k1", "k2"].map((device) => ({ site, device })));
    const secrets = new Map(devices.map((d) => [`${d.site}/${d.device}`, randomBytes(12).toString("hex")]));
    const cloudSecret = randomBytes(18).toString("base64url");
    const file: RegistryFile = {
      version: 1,
      devices: await Promise.all(
        devices.map(async (d) => ({ ...d, secretHash: await hashSecret(secrets.get(`${d.site}/${d.device}`)!) })),
      ),
      services: [{ id: "cloud", role: "bridge", secretHash: await hashSecret(cloudSecret) }],
    };
    const registryPath = join(ctx.dir, "registry.json");
    await Registry.save(registryPath, file);
    ctx.gateway = new Gateway({ registry: new Registry(file), port: 0, logger: quiet, metrics: new MetricsRegistry() });
    await ctx.gateway.start();
    const mqttUrl = `mqtt://127.0.0.1:${ctx.gateway.port}`;
    for (const [i, shard] of SHARDS.entries()) {
      const cloud = new CloudService({
        config: parseCloudEnv({
          CLOUD_PORT: "0",
          CLOUD_SITES: shard.sites.join(","),
          CLOUD_SHARE_GROUP: `bridge-shard${i + 1}`,
          CLOUD_INSTANCE: `shard${i + 1}`,
          MQTT_URL: mqttUrl,
          CLOUD_MQTT_SECRET: cloudSecret,
          REGISTRY_PATH: registryPath,
          DATABASE_URL: dbUrl(shard.name),
        }),
        logger: quiet,
        onCommitted: ctx.signal.notify,
      });
      await cloud.start();
      for (const site of shard.sites) await seedSite(cloud.db, { id: site, name: site, timezone: "UTC" });
      ctx.clouds.push(cloud);
    }
    for (const d of devices) {
      const k = new DrillKiosk({
        address: d,
        secret: secrets.get(`${d.site}/${d.device}`)!,
        mqttUrl,
        ackTimeoutMs: 1000,
        members,
        currency: "EUR",
        timers: realTimers,
        onAck: ctx.signal.notify,
      });
      await k.start();
      ctx.kiosks.push(k);
    }
  }),
);

Shards.after(async () => {
  for (const k of ctx.kiosks) await k.stop().catch(() => {});
  for (const c of ctx.clouds) await c.stop().catch(() => {});
  await ctx.gateway?.stop().catch(() => {});
  for (const s of SHARDS) await ctx.admin?.query(`DROP DATABASE IF EXISTS ${s.name} WITH (FORCE)`).catch(() => {});
  await ctx.admin?.end().catch(() => {});
  await rm(ctx.dir, { recursive: true, force: true });
});

Shards("each site's rows land only in its shard; an unowned site is ingested by none", async () => {
  for (let i = 1; i <= ENTRIES; i++) for (const k of ctx.kiosks) k.journal(i % 3 === 0 ? "payment" : "checkin");
  const owned = ctx.kiosks.filter((k) => k.address.site !== SITES.c);
  await ctx.signal.until(() => owned.every((k) => k.ackedUpTo === ENTRIES), "every owned kiosk acked", WAIT_MS);

  const unowned = ctx.kiosks.filter((k) => k.address.site === SITES.c);
  for (const [i, shard] of SHARDS.entries()) {
    const db = ctx.clouds[i]!.db;
    const inbox = await db.query<{ site_id: string; n: number }>(
      "SELECT site_id, count(*)::int AS n FROM inbox GROUP BY site_id ORDER BY site_id",
    );
    assert.equal(
      inbox.rows,
      shard.sites.map((site) => ({ site_id: site, n: 2 * ENTRIES })),
      `${shard.name}: its own site's entries, all of them, and nothing else`,
    );
    const enrolled = await db.query<{ site_id: string }>("SELECT DISTINCT site_id FROM devices ORDER BY site_id");
    assert.equal(
      enrolled.rows.map((r) => r.site_id),
      shard.sites,
      `${shard.name}: only its sites' devices enrolled`,
    );
    const metrics = await ctx.clouds[i]!.metrics.metrics();
    for (const other of Object.values(SITES).filter((s) => !shard.sites.includes(s))) {
      assert.not.ok(metrics.includes(`site="${other}"`), `${shard.name}'s metrics do not show ${other}`);
    }
    assert.ok(metrics.includes(`site="${shard.sites[0]}"`), `${shard.name}'s metrics show its own site`);
    // An unowned site's message reaching this shard would fail its statement (the device is not
    // enrolled here) or be refused: neither happened.
    assert.match(metrics, /^paylane_bridge_commit_failures_total 0$/m, `${shard.name}: no failed statement`);
    assert.not.match(metrics, /paylane_bridge_refusals_total\{/, `${shard.name}: nothing refused`);
  }
  // Each shard has committed everything of its own after C's entries were published: none of C's was taken.
  for (const k of unowned) assert.is(k.ackedUpTo, 0, `${k.address.site}/${k.address.device}: acked by no shard`);
  const streams = await Promise.all(
    ctx.clouds.map((c) =>
      c.db.query<{ n: number }>("SELECT count(*)::int AS n FROM device_streams WHERE site_id = $1", [SITES.c]),
    ),
  );
  assert.equal(
    streams.map((s) => s.rows[0]!.n),
    [0, 0],
    "no shard keeps a stream of the unowned site",
  );
  console.log(
    `shards: ${SHARDS.map((s, i) => `${s.name} ← ${s.sites.join(",")} (${ctx.clouds[i]!.sites?.join(",")})`).join("; ")}; ${SITES.c} unowned: 0 rows`,
  );
});

Shards.run();
