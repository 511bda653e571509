/**
 * CLOUD_ROLE (issue 19, docs/scale-bridges.md): one image, three roles. A
 * `bridge` instance ingests through the share group and serves only its
 * probes and metrics over HTTP; an `api` instance serves the API, hears the
 * fleet's other channels but takes no events and never speaks for the cloud
 * on its STATE topic. Both on one Postgres schema and a private Mosquitto; a
 * device's events are committed by the bridge alone. Bad role, group or site
 * lists are refused with one line naming the variable.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CloudStatus, type DeviceAddress, hashSecret, Registry, topics } from "@paylane/protocol";
import { connectAsync, type MqttClient } from "mqtt";
import { pino } from "pino";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { loud } from "../../test/support/hooks.ts";
import { PrivateMosquitto } from "../../test/support/private-mosquitto.ts";
import { Signal } from "../../test/support/signal.ts";
import { CloudService } from "../src/cloud.ts";
import { parseCloudEnv } from "../src/config.ts";
import { tapBody } from "../src/dr/failover-kiosk.ts";
import { DEMO_MEMBERS, seedSite } from "../src/seed.ts";

const PG_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const SITE = `r${randomBytes(4).toString("hex")}`;
const K1: DeviceAddress = { site: SITE, device: "k1" };
const quiet = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });

const ctx = {
  dir: "",
  schema: `t_${randomBytes(6).toString("hex")}`,
  broker: undefined as unknown as PrivateMosquitto,
  clouds: {} as Record<"bridge" | "api", CloudService>,
  committed: { bridge: 0, api: 0 },
  device: undefined as unknown as MqttClient,
  states: [] as CloudStatus[],
  acks: [] as number[],
  signal: new Signal(),
};

const Roles = suite("CLOUD_ROLE bridge and api");

Roles.before(
  loud("a private Mosquitto, a bridge and an api instance on one schema", async () => {
    ctx.dir = await mkdtemp(join(tmpdir(), "paylane-roles-"));
    ctx.broker = new PrivateMosquitto(ctx.dir);
    await ctx.broker.start();
    const registryPath = join(ctx.dir, "registry.json");
    await Registry.save(registryPath, {
      version: 1,
      devices: [{ ...K1, secretHash: await hashSecret("k1-secret") }],
      services: [],
    });
    for (const role of ["bridge", "api"] as const) {
      const cloud = new CloudService({
        config: parseCloudEnv({
          CLOUD_ROLE: role,
          CLOUD_PORT: "0",
          CLOUD_SITES: SITE,
          CLOUD_INSTANCE: `${role}-1`,
          CLOUD_JWT_SECRET: randomBytes(24).toString("hex"),
          MQTT_URL: ctx.broker.url,
          REGISTRY_PATH: registryPath,
          DATABASE_URL: PG_URL,
          DATABASE_SCHEMA: ctx.schema,
        }),
        logger: quiet,
        onCommitted: (o) => {
          ctx.committed[role] += o.applied;
          ctx.signal.notify();
        },
      });
      await cloud.start();
      ctx.clouds[role] = cloud;
    }
    await seedSite(ctx.clouds.bridge.db, { id: SITE, name: "Roles", timezone: "UTC" });
    ctx.device = await connectAsync(ctx.broker.url, { clientId: `paylane:${SITE}:k1`, reconnectPeriod: 0 });
    ctx.device.on("message", (topic, payload) => {
      if (topic === topics.cloudStatus) ctx.states.push(JSON.parse(payload.toString()) as CloudStatus);
      if (topic === topics.ack(K1)) ctx.acks.push((JSON.parse(payload.toString()) as { upTo: number }).upTo);
      ctx.signal.notify();
    });
    await ctx.device.subscribeAsync([topics.cloudStatus, topics.ack(K1)], { qos: 1 });
  }),
);

Roles.after(async () => {
  await ctx.device?.endAsync(true).catch(() => {});
  for (const c of Object.values(ctx.clouds)) await c.stop().catch(() => {});
  const { openPg } = await import("../src/db/pg.ts");
  const db = await openPg({ url: PG_URL, schema: ctx.schema });
  await db.query(`DROP SCHEMA IF EXISTS ${ctx.schema} CASCADE`).catch(() => {});
  await db.close();
  await ctx.broker?.kill();
  await rm(ctx.dir, { recursive: true, force: true });
});

Roles("the bridge role serves only /healthz, /readyz and /metrics over HTTP; the api role serves the API", async () => {
  const bridge = ctx.clouds.bridge.url;
  for (const path of ["/healthz", "/readyz", "/metrics"]) {
    const res = await fetch(`${bridge}${path}`);
    assert.is(res.status, 200, `bridge ${path}`);
    await res.body?.cancel();
  }
  assert.match(await (await fetch(`${bridge}/metrics`)).text(), /paylane_bridge_entries_total/);
  const notApi = await fetch(`${bridge}/api/v1/devices`);
  assert.is(notApi.status, 404, "no API route on a bridge");
  await notApi.body?.cancel();
  const api = await fetch(`${ctx.clouds.api.url}/api/v1/devices`);
  assert.is(api.status, 401, "the api role's routes answer (an operator token is required)");
  await api.body?.cancel();
});

Roles("the bridge ingests through the share group; the api takes no events and says nothing on the STATE", async () => {
  assert.ok(
    ctx.clouds.bridge.bridge.subscriptions.includes(`$share/bridge/paylane/v1/${SITE}/+/events`),
    ctx.clouds.bridge.bridge.subscriptions.join(" "),
  );
  const apiSubs = ctx.clouds.api.bridge.subscriptions;
  assert.not.ok(
    apiSubs.some((t) => t.endsWith("/events")),
    `api subscribes no events: ${apiSubs.join(" ")}`,
  );
  assert.ok(apiSubs.includes(`paylane/v1/${SITE}/+/cmd-result`), "api hears command results");
  assert.ok(apiSubs.includes(`paylane/v1/${SITE}/+/status`), "api hears statuses, plainly (retained births)");
  const entries = [1, 2, 3].map((seq) => ({
    seq,
    id: randomUUID(),
    kind: "checkin",
    at: new Date().toISOString(),
    body: tapBody("checkin", seq, [DEMO_MEMBERS[0]!.id], "EUR"),
  }));
  await ctx.device.publishAsync(topics.events(K1), JSON.stringify({ device: K1.device, entries }), { qos: 1 });
  await ctx.signal.until(() => ctx.acks.includes(3), "ack up to 3", 10_000);
  assert.equal(ctx.committed, { bridge: 3, api: 0 }, "committed by the bridge alone");
  await ctx.signal.until(() => ctx.states.length > 0, "the cloud's STATE", 10_000);
  assert.equal(
    [...new Set(ctx.states.map((s) => (s.state === "online" ? s.instance : "offline")))],
    ["bridge-1"],
    "only the ingesting instance announces",
  );
  assert.ok(ctx.clouds.bridge.leading, "the bridge leads the singleton duties");
  assert.not.ok(ctx.clouds.api.leading, "an api instance never does");
});

Roles(
  "a request awaiting a command's result on the api instance is answered when another instance wrote it first",
  async () => {
    const api = ctx.clouds.api.commands;
    const sent = await api.send({ ...K1, name: "ping", args: {}, expiresInSeconds: 60, by: "op" });
    const started = performance.now();
    const waiting = api.waitSettled(K1, sent.id, 20_000);
    let answered = false;
    void waiting.then(() => {
      answered = true;
    });
    // A read after the request's own first read: it has seen the command pending and sleeps.
    assert.is((await api.get(K1, sent.id))?.status, "pending");
    assert.not.ok(answered, "the request waits");
    // The other instance's write, committed before this one hears the result.
    await ctx.clouds.bridge.db.query(
      `UPDATE device_commands SET status = 'done', answered_at = now(), updated_at = now()
     WHERE site_id = $1 AND device_id = $2 AND id = $3`,
      [K1.site, K1.device, sent.id],
    );
    await ctx.device.publishAsync(
      topics.cmdResult(K1),
      JSON.stringify({ id: sent.id, command: "ping", status: "done", at: new Date().toISOString() }),
      { qos: 1 },
    );
    const settled = await waiting;
    assert.is(settled?.status, "done");
    assert.ok(performance.now() - started < 10_000, "woken by the result, not by its 20 s deadline");
  },
);

Roles("a bad CLOUD_ROLE, CLOUD_SHARE_GROUP or CLOUD_SITES is refused, named", () => {
  const base = { REGISTRY_PATH: "r.json" };
  assert.throws(() => parseCloudEnv({ ...base, CLOUD_ROLE: "worker" }), /CLOUD_ROLE/);
  assert.throws(() => parseCloudEnv({ ...base, CLOUD_SHARE_GROUP: "a/b" }), /CLOUD_SHARE_GROUP/);
  assert.throws(() => parseCloudEnv({ ...base, CLOUD_SITES: "venue-1,Venue 2" }), /CLOUD_SITES.*"Venue 2"/);
  assert.throws(() => parseCloudEnv({ ...base, CLOUD_SITES: "cloud" }), /CLOUD_SITES/);
  assert.equal(parseCloudEnv({ ...base, CLOUD_SITES: " a, b ,a" }).CLOUD_SITES, ["a", "b"]);
  assert.is(parseCloudEnv({ ...base, CLOUD_SITES: "" }).CLOUD_SITES, undefined);
  assert.is(parseCloudEnv(base).CLOUD_ROLE, "all");
  assert.is(parseCloudEnv(base).CLOUD_SHARE_GROUP, "bridge");
});

Roles.run();
