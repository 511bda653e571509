/**
 * Issue 19, "Bridge": two cloud instances in the bridge role (CLOUD_ROLE=bridge)
 * on one Postgres schema take the kiosks' events through the shared
 * subscription `$share/bridge/paylane/v1/<site>/+/events`, on Mosquitto (a
 * private one running the generated ACL) and on the aedes gateway. K kiosks
 * (the drill's kiosk: raw MQTT, its own credentials, the uplink's ack-timeout
 * resend and replay-from) journal M entries each, a third of them offline
 * wallet payments. Midway the instance that leads the singleton duties is
 * killed (no goodbye: its Will fires); the other goes on alone and takes the
 * lead. At the end every entry is in the inbox exactly once, every payment in
 * the ledger once (count and sum), every kiosk's backlog acked, and each
 * instance committed a share before the kill (the split is printed).
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Gateway } from "@paylane/gateway";
import { hashSecret, Registry, type RegistryFile, realTimers } from "@paylane/protocol";
import { pino } from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { CloudService } from "../../cloud/src/cloud.ts";
import { parseCloudEnv } from "../../cloud/src/config.ts";
import type { Database } from "../../cloud/src/db/database.ts";
import { openPg } from "../../cloud/src/db/pg.ts";
import { DrillKiosk } from "../../cloud/src/dr/failover-kiosk.ts";
import { DEMO_MEMBERS, seedSite } from "../../cloud/src/seed.ts";
import { loud } from "../support/hooks.ts";
import { PrivateMosquitto } from "../support/private-mosquitto.ts";
import { Signal } from "../support/signal.ts";

const PG_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const KIOSKS = 6;
const ENTRIES = 40;
const WAIT_MS = 30_000;
const quiet = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });
const members = DEMO_MEMBERS.filter((m) => m.status === "active").map((m) => m.id);

interface Broker {
  url: string;
  stop(): Promise<void>;
}

interface Rig {
  site: string;
  schema: string;
  dir: string;
  db: Database;
  broker: Broker;
  registryPath: string;
  cloudSecret: string;
  clouds: Map<string, CloudService>;
  /** Entries each instance applied (first time in the inbox). */
  applied: Map<string, number>;
  /** Entries the instances received again (a resend, or a message both took). */
  duplicates: number;
  kiosks: DrillKiosk[];
  signal: Signal;
}

async function rig(kind: "mosquitto" | "aedes"): Promise<Rig> {
  const site = `${kind === "aedes" ? "a" : "m"}${randomBytes(4).toString("hex")}`;
  const dir = await mkdtemp(join(tmpdir(), `paylane-scale-bridges-${kind}-`));
  const secrets = new Map(Array.from({ length: KIOSKS }, (_, i) => [`k${i + 1}`, randomBytes(12).toString("hex")]));
  const cloudSecret = randomBytes(18).toString("base64url");
  const file: RegistryFile = {
    version: 1,
    devices: await Promise.all(
      [...secrets].map(async ([device, s]) => ({ site, device, secretHash: await hashSecret(s) })),
    ),
    services: [{ id: "cloud", role: "bridge", secretHash: await hashSecret(cloudSecret) }],
  };
  const registryPath = join(dir, "registry.json");
  await Registry.save(registryPath, file);
  let broker: Broker;
  if (kind === "mosquitto") {
    const m = new PrivateMosquitto(dir, {
      registry: registryPath,
      secrets: {
        ...Object.fromEntries([...secrets].map(([d, s]) => [`${site}/${d}`, s])),
        "svc:cloud": cloudSecret,
      },
    });
    await m.start();
    broker = { url: m.url, stop: () => m.kill() };
  } else {
    const g = new Gateway({ registry: new Registry(file), port: 0, logger: quiet, metrics: new MetricsRegistry() });
    await g.start();
    broker = { url: `mqtt://127.0.0.1:${g.port}`, stop: () => g.stop() };
  }
  const schema = `t_${randomBytes(6).toString("hex")}`;
  const r: Rig = {
    site,
    schema,
    dir,
    db: await openPg({ url: PG_URL, schema }),
    broker,
    registryPath,
    cloudSecret,
    clouds: new Map(),
    applied: new Map(),
    duplicates: 0,
    kiosks: [],
    signal: new Signal(),
  };
  for (const name of ["b1", "b2"]) await startBridge(r, name);
  await seedSite(r.db, { id: site, name: "Scale venue", timezone: "UTC", currency: "EUR" });
  for (const [device, secret] of secrets) {
    const k = new DrillKiosk({
      address: { site, device },
      secret,
      mqttUrl: broker.url,
      ackTimeoutMs: 1000,
      members,
      currency: "EUR",
      timers: realTimers,
      onAck: r.signal.notify,
    });
    await k.start();
    r.kiosks.push(k);
  }
  return r;
}

async function startBridge(r: Rig, name: string): Promise<void> {
  const cloud = new CloudService({
    config: parseCloudEnv({
      CLOUD_ROLE: "bridge",
      CLOUD_PORT: "0",
      CLOUD_SITES: r.site,
      CLOUD_INSTANCE: name,
      MQTT_URL: r.broker.url,
      CLOUD_MQTT_SECRET: r.cloudSecret,
      REGISTRY_PATH: r.registryPath,
      DATABASE_URL: PG_URL,
      DATABASE_SCHEMA: r.schema,
      GAP_WAIT_MS: "500",
    }),
    logger: quiet,
    onCommitted: (outcome) => {
      r.applied.set(name, (r.applied.get(name) ?? 0) + outcome.applied);
      r.duplicates += outcome.duplicates;
      r.signal.notify();
    },
  });
  await cloud.start();
  r.clouds.set(name, cloud);
}

async function teardown(r: Rig | undefined): Promise<void> {
  if (!r) return;
  for (const k of r.kiosks) await k.stop().catch(() => {});
  for (const c of r.clouds.values()) await c.stop().catch(() => {});
  await r.db.query(`DROP SCHEMA IF EXISTS ${r.schema} CASCADE`).catch(() => {});
  await r.db.close().catch(() => {});
  await r.broker.stop().catch(() => {});
  await rm(r.dir, { recursive: true, force: true });
}

const split = (r: Rig) => [...r.applied].map(([name, n]) => `${name}=${n}`).join(" ");

/** The run: M rounds of one tap per kiosk, each kept within a small window of unacked entries; the leader killed midway. */
async function run(r: Rig, label: string): Promise<void> {
  const backlogUnder = (n: number) => () => r.kiosks.every((k) => k.backlog <= n);
  let killed: string | undefined;
  for (let round = 1; round <= ENTRIES; round++) {
    for (const k of r.kiosks) k.journal(round % 3 === 0 ? "payment" : "checkin");
    await r.signal.until(backlogUnder(8), `round ${round}: every kiosk's backlog under 8`, WAIT_MS);
    // One telemetry report per kiosk: every instance hears it, only the leader writes its row.
    if (round === 5) for (const k of r.kiosks) k.reportTelemetry(new Date(), round);
    if (round === ENTRIES / 2) {
      const shares = [...r.applied.values()];
      console.log(`${label} bridge split before the kill: ${split(r)}`);
      assert.is(shares.length, 2, "both instances committed");
      assert.ok(
        shares.every((n) => n > 0),
        `each instance committed a share: ${split(r)}`,
      );
      // Shared, not doubled: each message went to one instance (a plain subscription would give
      // every entry to both, half of what they received duplicates); only resends come twice.
      const applied = shares.reduce((a, b) => a + b, 0);
      assert.ok(r.duplicates <= applied / 5, `duplicates ${r.duplicates} of ${applied} applied: the share split them`);
      const leaders = [...r.clouds].filter(([, c]) => c.leading).map(([name]) => name);
      assert.is(leaders.length, 1, `exactly one instance leads the singleton duties: ${leaders.join(", ")}`);
      killed = leaders[0]!;
      await r.clouds.get(killed)!.kill();
      r.clouds.delete(killed);
    }
  }
  await r.signal.until(backlogUnder(0), "every kiosk's backlog acked", WAIT_MS);
  const survivor = [...r.clouds.values()][0]!;
  // Leadership is polled (the survivor tries the lock every 5 s): nothing else signals it.
  const poll = setInterval(r.signal.notify, 100);
  try {
    await r.signal.until(() => survivor.leading, "the survivor taking the lead", 15_000);
  } finally {
    clearInterval(poll);
  }
  console.log(`${label} bridge split: ${split(r)} (${killed} killed after round ${ENTRIES / 2})`);

  // Exactly once: every journaled entry in the inbox, no seq or id twice.
  const { rows } = await r.db.query<{ device_id: string; seq: string; entry_id: string }>(
    "SELECT device_id, seq, entry_id FROM inbox WHERE site_id = $1",
    [r.site],
  );
  assert.is(rows.length, KIOSKS * ENTRIES, "one inbox row per entry");
  for (const k of r.kiosks) {
    const mine = rows.filter((row) => row.device_id === k.address.device);
    assert.equal(
      mine.map((row) => row.entry_id).sort(),
      k.entries.map((e) => e.id).sort(),
      `${k.address.device}: the inbox holds exactly its journal`,
    );
    assert.is(k.ackedUpTo, ENTRIES, `${k.address.device}: acked to its last seq`);
    assert.equal(k.anomalies, [], `${k.address.device}: no anomalies`);
  }
  const payments = r.kiosks.reduce((n, k) => n + k.entries.filter((e) => e.kind === "payment").length, 0);
  const ledger = await r.db.query<{ n: number; keys: number; total: string }>(
    `SELECT count(*)::int AS n, count(DISTINCT request_key)::int AS keys, coalesce(sum(amount), 0) AS total
     FROM ledger_entries WHERE site_id = $1 AND origin_device IS NOT NULL`,
    [r.site],
  );
  assert.equal(
    ledger.rows[0],
    { n: payments, keys: payments, total: String(-150 * payments) },
    "each payment in the ledger once",
  );
  const telemetry = await r.db.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM device_telemetry WHERE site_id = $1",
    [r.site],
  );
  assert.is(telemetry.rows[0]!.n, KIOSKS, "each report heard by both instances is one history row (the leader's)");
  const applied = [...r.applied.values()].reduce((a, b) => a + b, 0);
  assert.is(applied, KIOSKS * ENTRIES, "the instances' applied entries add up to the entries, none twice");
}

for (const kind of ["mosquitto", "aedes"] as const) {
  const Scale = suite(`two bridges on $share (${kind})`);
  let r: Rig | undefined;
  Scale.before(
    loud(`a ${kind} broker, one schema, two bridges, ${KIOSKS} kiosks`, async () => {
      r = await rig(kind);
    }),
  );
  Scale.after(() => teardown(r));
  Scale(`${KIOSKS} kiosks × ${ENTRIES} entries: each committed once, both share, one killed midway`, async () => {
    await run(r!, kind);
  });
  Scale.run();
}
