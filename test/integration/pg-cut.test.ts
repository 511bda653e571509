/**
 * Issue 4: "The cloud's Postgres connection cut in the middle of a batch: the
 * batch is either committed and acked or not acked at all."
 *
 * The cloud (real bridge, real ingestor, real pg pool) reaches the machine's
 * Postgres through a FaultProxy; four raw MQTT devices talk to the aedes
 * gateway. Each round every device publishes a batch of new entries; the
 * cloud's own MQTT link (a second proxy) is stalled until all four batches
 * are waiting in it, so the cloud reads them at once and its first ingest
 * statement carries several devices (~300 entries) — a large batch, and the
 * ingestor's per-device retry is exercised. Then the database connection is
 * broken while that statement is on the wire: mid-request (RST or FIN, the
 * statement never ran), right after the commit (the reply is lost: committed
 * but not acked), with Postgres then unreachable for a while, and with the
 * retries cut too. The devices act as the kiosk's uplink does: everything
 * after the last ack is resent when no ack progress is seen for a while.
 *
 * Checked like Jepsen's "acknowledged => present exactly once": every `ack
 * {upTo}` a device receives is verified at once against the database through
 * a direct, un-proxied connection (every seq <= upTo is in the inbox), and at
 * the end every entry is in the inbox exactly once, under its own seq, and acked.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { CloudService, type Database, openPg, parseCloudEnv } from "@paylane/cloud";
import { Gateway } from "@paylane/gateway";
import { type DeviceAddress, deviceIdentity, type Entry, Registry, siteRegistryFile, topics } from "@paylane/protocol";
import mqtt, { type MqttClient } from "mqtt";
import pino from "pino";
import { Registry as MetricsRegistry } from "prom-client";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { FaultProxy } from "../support/fault-proxy.ts";
import { loud } from "../support/hooks.ts";
import { batch, checkinEntry } from "../support/probe.ts";
import { Signal } from "../support/signal.ts";
import { PG_URL } from "../support/site.ts";
import { within } from "../support/within.ts";

const DEVICES = ["d1", "d2", "d3", "d4"];
const PER_ROUND = 100; // entries per device per round, one `events` message each
const ACK_TIMEOUT_MS = 400; // the simulated uplink's resend timer (the daemon's is ackTimeoutMs)
const ROUND_TIMEOUT_MS = 20_000; // only ever fails the test

const quiet = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });

/**
 * A device's uplink, reduced to what this test needs: entries numbered from 1,
 * published in order, freed only by the cloud's `ack`, and everything after
 * the last ack resent when no ack progress is seen for ACK_TIMEOUT_MS.
 */
class SimDevice {
  readonly entries: Entry[] = [];
  sentUpTo = 0;
  acked = 0;
  resends = 0;
  readonly publishErrors: string[] = [];
  #timer: NodeJS.Timeout | undefined;

  constructor(
    readonly address: DeviceAddress,
    readonly client: MqttClient,
    readonly onAck: (device: SimDevice, upTo: number) => void,
  ) {}

  async start(): Promise<void> {
    const ackTopic = topics.ack(this.address);
    this.client.on("message", (topic, payload) => {
      if (topic !== ackTopic) return;
      const { upTo } = JSON.parse(payload.toString()) as { upTo: number };
      if (upTo > this.acked) {
        this.acked = upTo;
        this.#arm(true);
      }
      this.onAck(this, upTo);
    });
    const granted = await this.client.subscribeAsync(ackTopic, { qos: 1 });
    if (granted[0]?.qos === 128) throw new Error(`subscription to ${ackTopic} refused`);
  }

  /** Journals `n` new check-ins and publishes them as one batch; returns the bytes the cloud will be sent. */
  send(n: number): number {
    const from = this.entries.length;
    for (let i = 1; i <= n; i++) this.entries.push(checkinEntry(from + i, "m-ada"));
    const size = this.#publish(from, this.entries.length);
    this.sentUpTo = this.entries.length;
    this.#arm(false);
    return size;
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #publish(from: number, to: number): number {
    const topic = topics.events(this.address);
    const payload = batch(this.address.device, this.entries.slice(from, to));
    this.client.publish(topic, payload, { qos: 1 }, (err) => {
      if (err) this.publishErrors.push(err.message);
    });
    return publishSize(topic, payload);
  }

  /** The uplink's ack timer: restarted by progress, fires only while something is unacked. */
  #arm(progress: boolean): void {
    if (progress || this.acked >= this.sentUpTo) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#timer || this.acked >= this.sentUpTo) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.acked >= this.sentUpTo) return;
      this.resends++;
      this.#publish(this.acked, this.sentUpTo);
      this.#arm(false);
    }, ACK_TIMEOUT_MS);
  }
}

const site = `t${randomBytes(4).toString("hex")}`;
const schema = `t_${randomBytes(6).toString("hex")}`;
const signal = new Signal();
let dir = "";
let direct: Database | undefined;
let proxied: Database | undefined;
let proxy: FaultProxy | undefined;
/** Between the broker and the cloud: stalled while a round's batches gather. */
let mqttProxy: FaultProxy | undefined;
let gateway: Gateway | undefined;
let cloud: CloudService | undefined;
const devices: SimDevice[] = [];
/** Acks that claimed something the database does not hold. */
const violations: string[] = [];
let checks: Promise<void> = Promise.resolve();
let checked = 0;
/** Entries of each ingest statement that failed, from the cloud's error log. */
const failedStatements: number[] = [];
/** Devices in each committed statement. */
const committedStatements: number[] = [];

/** The cloud logs only errors, into `failedStatements`. */
const cloudLog = pino(
  { level: "error" },
  new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split("\n")) {
        if (!line) continue;
        const record = JSON.parse(line) as { msg?: string; entries?: number };
        if (record.msg === "ingest statement failed") failedStatements.push(record.entries ?? 0);
      }
      done();
    },
  }),
);

/**
 * Size of the PUBLISH the broker forwards to the cloud for one batch: MQTT
 * 3.1.1 §3.3 (QoS 1: topic, packet id, payload) behind the fixed header with
 * its variable-length remaining length (§2.2.3).
 */
function publishSize(topic: string, payload: string): number {
  const remaining = 2 + Buffer.byteLength(topic) + 2 + Buffer.byteLength(payload);
  let lengthBytes = 1;
  while (remaining >= 128 ** lengthBytes) lengthBytes++;
  return 1 + lengthBytes + remaining;
}

/** Every seq <= upTo of the device is in the inbox: checked through the direct connection, in arrival order. */
function verifyAck(device: SimDevice, upTo: number): void {
  checks = checks.then(async () => {
    const { rows } = await direct!.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM inbox WHERE site_id = $1 AND device_id = $2 AND seq <= $3",
      [site, device.address.device, upTo],
    );
    checked++;
    if (rows[0]!.n !== upTo) violations.push(`${device.address.device}: ack ${upTo} but ${rows[0]!.n} rows <= ${upTo}`);
    signal.notify();
  });
}

async function metric(name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = await cloud!.metrics.getSingleMetric(name)?.get();
  const v = m?.values.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
  return v?.value ?? 0;
}

test.before(
  loud("pg-cut setup", async () => {
    dir = await mkdtemp(join(tmpdir(), "paylane-pg-cut-"));
    const secrets = new Map(DEVICES.map((d) => [d, randomBytes(18).toString("base64url")]));
    const cloudSecret = randomBytes(18).toString("base64url");
    const file = await siteRegistryFile(site, secrets, cloudSecret);
    const registryPath = join(dir, "registry.json");
    await Registry.save(registryPath, file);
    gateway = new Gateway({ registry: new Registry(file), port: 0, logger: quiet, metrics: new MetricsRegistry() });
    await gateway.start();
    const mqttUrl = `mqtt://127.0.0.1:${gateway.port}`;
    mqttProxy = new FaultProxy({ target: { host: "127.0.0.1", port: gateway.port } });
    await mqttProxy.start();

    direct = await openPg({ url: PG_URL, schema });
    const pg = new URL(PG_URL);
    proxy = new FaultProxy({ target: { host: pg.hostname, port: Number(pg.port || 5432) } });
    await proxy.start();
    // A short statement timeout: the lost-reply test waits for it before the cloud recovers.
    proxied = await openPg({ url: proxy.url(PG_URL), schema, queryTimeoutMs: 1500 });
    cloud = new CloudService({
      config: parseCloudEnv({
        CLOUD_PORT: "0",
        MQTT_URL: mqttProxy.url("mqtt"),
        CLOUD_MQTT_SECRET: cloudSecret,
        REGISTRY_PATH: registryPath,
        CLOUD_INSTANCE: `test-${site}`,
      }),
      logger: cloudLog,
      db: proxied,
      site,
      onCommitted: (outcome) => {
        committedStatements.push(outcome.acks.length);
        signal.notify();
      },
    });
    await cloud.start();

    for (const device of DEVICES) {
      const address = { site, device };
      const client = await mqtt.connectAsync(mqttUrl, {
        clientId: deviceIdentity.clientId(address),
        username: deviceIdentity.username(address),
        password: secrets.get(device),
        protocolVersion: 4,
        reconnectPeriod: 0,
      });
      const d = new SimDevice(address, client, (dev, upTo) => {
        verifyAck(dev, upTo);
        signal.notify();
      });
      await d.start();
      devices.push(d);
    }
  }),
);

test.after(async () => {
  for (const d of devices) d.stop();
  await checks.catch(() => {});
  for (const d of devices) await d.client.endAsync(true).catch(() => {});
  // The database proxy first: a statement stuck on a dead connection (see the last test) fails
  // at once instead of holding the cloud's drain, and the pool's end, forever.
  await proxy?.stop();
  await cloud?.stop().catch(() => {});
  await gateway?.stop().catch(() => {});
  await proxied?.close().catch(() => {});
  await mqttProxy?.stop();
  await direct?.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
  await direct?.close().catch(() => {});
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Round {
  name: string;
  /** What the statement that was cut left in the database, where the fault decides it. */
  cutStatement?: "committed nothing" | "committed everything";
  /** Arms the fault on the idle database proxy; returns a cleanup for after the round. */
  arm: (p: FaultProxy) => () => void;
}

/**
 * Where the request of the round's first ingest statement is cut: past its
 * SQL text (~4 KB), inside its parameters (~200 bytes per entry, ~300
 * entries): the middle of the batch.
 */
const MID_BATCH = 30_000;

/** ReadyForQuery ('Z', length 5) of the Postgres wire protocol, ahead of its status byte. */
const READY_FOR_QUERY = Buffer.from([0x5a, 0, 0, 0, 5]);

const ROUNDS: Round[] = [
  {
    name: "RST mid-request (the statement never ran)",
    cutStatement: "committed nothing",
    arm: (p) => {
      p.cutAfter(MID_BATCH, "up");
      return () => {};
    },
  },
  {
    name: "RST after the commit (the reply is lost: committed, not acked)",
    cutStatement: "committed everything",
    arm: (p) => {
      // Postgres sends ReadyForQuery only after the implicit commit at Sync. Not "the reply's first
      // byte": a reply past its 8 KB send buffer is flushed before the commit, and a cut there races it.
      p.cutBefore(READY_FOR_QUERY, "down");
      return () => {};
    },
  },
  {
    name: "FIN mid-request",
    cutStatement: "committed nothing",
    arm: (p) => {
      p.cutAfter(MID_BATCH, "up", "close");
      return () => {};
    },
  },
  {
    name: "RST mid-request, every connection reset, then two connection attempts refused",
    arm: (p) => {
      let refused = 0;
      const onCut = () => {
        p.reset(); // the pool's idle connections too
        p.refuse(true);
      };
      const onRefused = () => {
        if (++refused === 2) p.heal();
      };
      p.events.once("cut", onCut);
      p.events.on("refused", onRefused);
      p.cutAfter(MID_BATCH, "up");
      return () => {
        p.events.off("cut", onCut);
        p.events.off("refused", onRefused);
      };
    },
  },
  {
    name: "RST mid-request, and the next three requests cut too (the retries)",
    arm: (p) => {
      let cuts = 0;
      const onCut = () => {
        if (++cuts < 4) p.cutAfter(5_000, "up");
      };
      p.events.on("cut", onCut);
      p.cutAfter(MID_BATCH, "up");
      return () => p.events.off("cut", onCut);
    },
  },
];

/** Resolves once `proxy` holds at least `bytes` bytes. */
async function heldAtLeast(proxy: FaultProxy, bytes: number, what: string): Promise<void> {
  const onData = () => signal.notify();
  proxy.events.on("data", onData);
  try {
    await signal.until(() => proxy.stats.held >= bytes, what, ROUND_TIMEOUT_MS);
  } finally {
    proxy.events.off("data", onData);
  }
}

test("the cloud's Postgres connection cut mid-batch: every ack is committed, and in the end everything exactly once", async () => {
  const p = proxy!;
  const db = proxied!;
  const started = Date.now();
  const perRound: string[] = [];
  for (const [i, round] of ROUNDS.entries()) {
    const label = `round ${i + 1} (${round.name})`;
    // Idle pool connections ready, so the fault lands on an ingest statement, not on a connection setup.
    await Promise.all(Array.from({ length: 3 }, () => db.query("SELECT 1")));
    const failuresBefore = failedStatements.length;
    const cutsBefore = p.stats.cuts;
    const resendsBefore = devices.reduce((n, d) => n + d.resends, 0);
    const duplicatesBefore = await metric("paylane_bridge_entries_total", { outcome: "duplicate" });

    // The round's batches gather in the cloud's MQTT link, then arrive together.
    mqttProxy!.stall("down");
    const bytes = devices.reduce((n, d) => n + d.send(PER_ROUND), 0);
    await heldAtLeast(mqttProxy!, bytes, `${label}: the four batches at the cloud's door`);
    const cleanup = round.arm(p);
    try {
      mqttProxy!.heal();
      await signal.until(
        () => devices.every((d) => d.acked === d.sentUpTo),
        `${label}: every device acked`,
        ROUND_TIMEOUT_MS,
      );
    } finally {
      cleanup();
      p.heal();
    }
    const failed = failedStatements.slice(failuresBefore);
    const cuts = p.stats.cuts - cutsBefore;
    const resends = devices.reduce((n, d) => n + d.resends, 0) - resendsBefore;
    const duplicates = (await metric("paylane_bridge_entries_total", { outcome: "duplicate" })) - duplicatesBefore;
    perRound.push(
      `${i + 1}. ${round.name}: ${cuts} cut(s); statements failed with ${failed.join(", ")} entries; ` +
        `${resends} device resend(s), ${duplicates} duplicates absorbed`,
    );
    assert.ok(cuts >= 1, `${label}: the fault fired`);
    assert.ok(failed.length >= 1, `${label}: the fault hit an ingest statement`);
    assert.ok(failed[0]! > PER_ROUND, `${label}: the statement cut carried several devices (${failed[0]} entries)`);
    // The ingestor retries a failed statement per device at once: what those retries found
    // already committed shows what the cut statement left (resends would blur it).
    if (round.cutStatement === "committed everything") {
      assert.ok(duplicates >= failed[0]!, `${label}: all ${failed[0]} entries were committed (${duplicates} found)`);
    } else if (round.cutStatement === "committed nothing" && resends === 0) {
      assert.is(duplicates, 0, `${label}: a half-sent statement committed nothing`);
    }
  }
  await checks;

  const total = DEVICES.length * PER_ROUND * ROUNDS.length;
  let present = 0;
  let lost = 0;
  let doubled = 0;
  for (const d of devices) {
    const { rows } = await direct!.query<{ seq: number; entry_id: string }>(
      "SELECT seq, entry_id FROM inbox WHERE site_id = $1 AND device_id = $2 ORDER BY seq",
      [site, d.address.device],
    );
    const byId = new Map<string, number>();
    for (const r of rows) byId.set(r.entry_id, (byId.get(r.entry_id) ?? 0) + 1);
    present += byId.size;
    doubled += rows.length - byId.size;
    lost += d.entries.filter((e) => !byId.has(e.id)).length;
    assert.equal(
      rows.map((r) => `${r.seq}:${r.entry_id}`),
      d.entries.map((e) => `${e.seq}:${e.id}`),
      `${d.address.device}: each entry once, under its own seq`,
    );
    assert.is(d.acked, d.entries.length, `${d.address.device}: everything acked`);
    assert.equal(d.publishErrors, [], `${d.address.device}: every publish reached the broker`);
  }
  assert.equal(violations, [], "no ack for an entry that was not committed");
  assert.ok(checked >= devices.length * ROUNDS.length, `every ack was checked (${checked})`);
  const { rows: marks } = await direct!.query<{ device_id: string; acked_seq: number }>(
    "SELECT device_id, acked_seq FROM device_streams WHERE site_id = $1 ORDER BY device_id",
    [site],
  );
  assert.equal(
    marks.map((m) => [m.device_id, m.acked_seq]),
    DEVICES.map((d) => [d, PER_ROUND * ROUNDS.length]),
    "each stream's high-water mark is at its last entry",
  );

  const acked = devices.reduce((n, d) => n + d.acked, 0);
  const resends = devices.reduce((n, d) => n + d.resends, 0);
  const duplicates = await metric("paylane_bridge_entries_total", { outcome: "duplicate" });
  console.log(
    `  pg cut mid-batch: ${total.toLocaleString("en")} entries from ${DEVICES.length} devices, ` +
      `${p.stats.cuts} cuts, ${p.stats.resets} connections reset, ${p.stats.refused} refused, ` +
      `${failedStatements.length} failed statements, ${resends} resends, ${duplicates} duplicates absorbed; ` +
      `${lost} lost, ${doubled} doubled, acked ${acked.toLocaleString("en")} ` +
      `(${checked} acks each checked against the database), ` +
      `up to ${Math.max(...committedStatements)} devices per statement, ${Date.now() - started} ms`,
  );
  for (const line of perRound) console.log(`    ${line}`);
  assert.is(present, total);
  assert.ok(duplicates > 0, "a commit whose reply was lost was retried and absorbed as duplicates");
});

/**
 * Regression (found by this file): Postgres gets the statement, commits, and its reply never
 * comes back, with no RST or FIN either (the host died or was failed over while the statement
 * ran). Nothing is in flight from the client, so TCP never times out. Before the pool had a
 * query_timeout (cloud/src/db/pg.ts) the ingestor's statement never settled, its devices stayed
 * "busy" forever, every resend piled up behind them until the bridge stopped PUBACKing for
 * every device, and `cloud.stop()` never returned. Now the statement times out, is retried,
 * and the committed rows are absorbed as duplicates.
 */
test("a reply lost without RST or FIN: ingest recovers once Postgres answers new connections", async () => {
  const p = proxy!;
  await Promise.all(Array.from({ length: 3 }, () => proxied!.query("SELECT 1")));
  mqttProxy!.stall("down");
  const bytes = devices.reduce((n, d) => n + d.send(PER_ROUND), 0);
  await heldAtLeast(mqttProxy!, bytes, "the four batches at the cloud's door");
  // Replies vanish: the statement commits in Postgres, its client never hears back.
  p.blackhole("down");
  const lost = new Promise<void>((resolve) => p.events.once("dropped", () => resolve()));
  mqttProxy!.heal();
  await within(lost, 30_000, "the proxy to drop the reply");
  // Postgres is reachable again for every new connection (the stuck one has a hole in its stream).
  p.heal();
  try {
    await signal.until(() => devices.every((d) => d.acked === d.sentUpTo), "every device acked", 10_000);
  } catch (err) {
    const pending = cloud!.bridge.ingestor.pending;
    const resends = devices.map((d) => d.resends).join("/");
    throw new Error(
      `${(err as Error).message}: acked ${devices.map((d) => d.acked).join("/")} of ${devices[0]!.sentUpTo} per device, ` +
        `ingestor pending ${pending} (resends ${resends} piled up behind the stuck statement)`,
    );
  }
});

test.run();
