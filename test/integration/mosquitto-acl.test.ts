/**
 * A whole site on a private Mosquitto that runs the configuration
 * `paylane-gateway mosquitto-config` makes from the site's registry: every
 * identity authenticated, the gateway's ACLs (gateway/src/acl.ts) enforced by
 * Mosquitto. First the ACL matrix (what each identity may publish, subscribe
 * and receive), then the device↔cloud flow through those ACLs: a command
 * round trip and a desired config over the API, a stale Will that lands after
 * the birth leaving the kiosk online, a check-in acked, the birth,
 * the clean goodbye and a Will.
 *
 * Mosquitto drops a refused PUBLISH (3.1.1 has no negative PUBACK; MQTT 5
 * clients get 0x87) instead of closing the connection as aedes does, so every
 * "never delivered" is proven by a later positive control message on the
 * same path, never by waiting.
 */
import { randomBytes } from "node:crypto";
import { deviceIdentity, topics } from "@paylane/protocol";
import mqtt, { ErrorWithSubackPacket, type MqttClient } from "mqtt";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { loud } from "../support/hooks.ts";
import { demoCard, TestSite } from "../support/site.ts";

let site: TestSite;

test.before(
  loud("site on a generated-config Mosquitto", async () => {
    site = new TestSite({ db: "pg", presence: "memory", broker: "mosquitto-acl", kiosks: ["k1"] });
    await site.start();
    site.cloud!.configs.changes.on("change", site.signal.notify);
  }),
);
test.after(async () => {
  await site?.stop();
});

interface Received {
  topic: string;
  payload: string;
}

function recorder(client: MqttClient) {
  const seen: Received[] = [];
  const waiting: { match: (m: Received) => boolean; resolve: (m: Received) => void }[] = [];
  client.on("message", (topic, payload) => {
    const message = { topic, payload: payload.toString("utf8") };
    seen.push(message);
    for (const w of waiting.filter((w) => w.match(message))) {
      waiting.splice(waiting.indexOf(w), 1);
      w.resolve(message);
    }
  });
  return {
    seen,
    next(match: (m: Received) => boolean, what: string): Promise<Received> {
      const already = seen.find(match);
      if (already) return Promise.resolve(already);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`never received ${what}`)), 10_000);
        waiting.push({
          match,
          resolve: (m) => {
            clearTimeout(timer);
            resolve(m);
          },
        });
      });
    },
  };
}

async function subscribeCodes(client: MqttClient, filters: string[]): Promise<number[]> {
  try {
    return (await client.subscribeAsync(filters, { qos: 1 })).map((g) => g.qos);
  } catch (err) {
    assert.instance(err, ErrorWithSubackPacket);
    const granted: readonly unknown[] = (err as ErrorWithSubackPacket).packet.granted;
    return granted.filter((code): code is number => typeof code === "number");
  }
}

const probe = () => site.address("probe");

/** Polls `check` (an HTTP or MQTT read, which notifies nothing) until it holds, or fails naming `what`. */
async function eventually(check: () => Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
const other = () => `${site.site}x`;

test("a wrong password and an unknown user are refused; nobody connects anonymously", async () => {
  const url = site.mqttUrl;
  const attempt = (options: mqtt.IClientOptions) =>
    mqtt.connectAsync(url, { reconnectPeriod: 0, protocolVersion: 4, connectTimeout: 5000, ...options }, false);
  for (const options of [
    { username: "ops:viewer", password: "not-it" },
    { username: "ops:nobody", password: "x" },
    {},
  ]) {
    try {
      const c = await attempt(options);
      await c.endAsync(true);
      assert.unreachable(`connected as ${options.username ?? "anonymous"}`);
    } catch (err) {
      assert.match(String((err as Error).message), /Not authorized|Bad username or password/i);
    }
  }
});

test("a viewer publishing a command is refused (PUBACK 0x87); the site's operator's command is delivered", async () => {
  const device = await site.rawDevice("probe");
  const got = recorder(device);
  await device.subscribeAsync(topics.cmdAll(probe()), { qos: 1 });
  // MQTT 5, so the refusal is visible to the sender; Mosquitto keeps the connection.
  const viewer = await mqtt.connectAsync(
    site.mqttUrl,
    {
      ...site.operatorLogin("viewer"),
      clientId: `v5-${randomBytes(3).toString("hex")}`,
      protocolVersion: 5,
      reconnectPeriod: 0,
    },
    false,
  );
  try {
    const refused = await viewer
      .publishAsync(topics.cmd(probe(), "reboot"), JSON.stringify({ id: "from-viewer" }), { qos: 1 })
      .then(
        () => null,
        (err: Error & { code?: number }) => err,
      );
    assert.ok(refused, "the viewer's command was acknowledged as delivered");
    assert.is(refused.code, 0x87);
  } finally {
    await viewer.endAsync(true);
  }
  const operator = await site.operatorClient("operator");
  await operator.publishAsync(topics.cmd(probe(), "reboot"), JSON.stringify({ id: "from-operator" }), { qos: 1 });
  await got.next((m) => m.payload.includes("from-operator"), "the operator's command");
  assert.not.ok(
    got.seen.some((m) => m.payload.includes("from-viewer")),
    "the viewer's command was delivered",
  );
});

test("an operator of another site commanding this site is refused; this site's operator gets through", async () => {
  const device = await site.rawDevice("probe");
  const got = recorder(device);
  await device.subscribeAsync(topics.cmdAll(probe()), { qos: 1 });
  const intruder = await site.operatorClient("other-operator");
  await intruder.publishAsync(topics.cmd(probe(), "unlock"), JSON.stringify({ id: "a-to-b" }), { qos: 1 });
  const operator = await site.operatorClient("operator");
  await operator.publishAsync(topics.cmd(probe(), "unlock"), JSON.stringify({ id: "own-site" }), { qos: 1 });
  await got.next((m) => m.payload.includes("own-site"), "the site's operator's command");
  assert.not.ok(
    got.seen.some((m) => m.payload.includes("a-to-b")),
    "another site's operator commanded this site",
  );
});

test("a device is confined to its subtree: it cannot publish as another, nor read another's topics", async () => {
  const cloud = await site.opsClient();
  const seen = recorder(cloud);
  await cloud.subscribeAsync(`paylane/v1/${site.site}/+/events`, { qos: 1 });
  const device = await site.rawDevice("probe");
  // As k1, then (control) as itself: only the control arrives.
  await device.publishAsync(topics.events(site.address("k1")), JSON.stringify({ forged: true }), { qos: 1 });
  await device.publishAsync(topics.events(probe()), JSON.stringify({ control: true }), { qos: 1 });
  await seen.next((m) => m.topic === topics.events(probe()), "the probe's own events");
  assert.not.ok(
    seen.seen.some((m) => m.topic === topics.events(site.address("k1"))),
    "the probe published as k1",
  );
  assert.equal(
    await subscribeCodes(device, [
      topics.ack(site.address("k1")),
      `paylane/v1/${site.site}/+/status`,
      "paylane/v1/#",
      topics.ack(probe()),
      topics.cmdAll(probe()),
    ]),
    [0x80, 0x80, 0x80, 1, 1],
  );
});

test("a viewer subscribed with + for the site receives only its site; it may not read events or ack; an admin reads every site", async () => {
  const viewer = await site.operatorClient("viewer");
  const outsider = await site.operatorClient("other-operator");
  const admin = await site.operatorClient("admin");
  const [v, o, a] = [recorder(viewer), recorder(outsider), recorder(admin)];
  for (const c of [viewer, outsider, admin]) {
    assert.equal(await subscribeCodes(c, ["paylane/v1/+/+/status", "paylane/v1/+/+/config"]), [1, 1]);
  }
  assert.equal(
    await subscribeCodes(viewer, [topics.events(probe()), "paylane/v1/+/+/events", topics.ack(probe())]),
    [0x80, 0x80, 0x80],
  );
  // This site's kiosk status is retained: the viewer and the admin have it, the other site's operator not.
  await v.next((m) => m.topic === topics.status(site.address("k1")), "k1's retained status (viewer)");
  await a.next((m) => m.topic === topics.status(site.address("k1")), "k1's retained status (admin)");
  // The other site's desired config (the bridge's to publish) is the control message for the outsider.
  const cloud = await site.opsClient();
  const elsewhere = { site: other(), device: "k9" };
  await cloud.publishAsync(topics.config(elsewhere), JSON.stringify({ version: 1, settings: {} }), { qos: 1 });
  await o.next((m) => m.topic === topics.config(elsewhere), "its own site's config (outsider)");
  await a.next((m) => m.topic === topics.config(elsewhere), "the other site's config (admin)");
  assert.not.ok(
    o.seen.some((m) => m.topic.startsWith(`paylane/v1/${site.site}/`)),
    "the other site's operator received this site's messages",
  );
  // The viewer received the config publish after k1's status if at all; a later one of its own site proves it.
  const device = await site.rawDevice("probe");
  await device.publishAsync(topics.status(probe()), JSON.stringify({ state: "online" }), { qos: 1 });
  await v.next((m) => m.topic === topics.status(probe()), "the probe's status (viewer)");
  assert.not.ok(
    v.seen.some((m) => m.topic === topics.config(elsewhere)),
    "the viewer received another site's config",
  );
});

test("a command round trip and a desired config through the ACLs: sent over the API, run by the kiosk, answered", async () => {
  const path = `/api/v1/devices/${site.site}/k1/commands`;
  const res = await site.operator("POST", path, { command: "set-mode", args: { mode: "maintenance" } });
  assert.is(res.status, 200, JSON.stringify(res.body));
  assert.is(res.body.status, "done");
  assert.equal(res.body.result, { mode: "maintenance", previous: "in-service" });
  const back = await site.operator("POST", path, { command: "set-mode", args: { mode: "in-service" } });
  assert.is(back.body.status, "done", JSON.stringify(back.body));

  const put = await site.operator("PUT", `/api/v1/devices/${site.site}/k1/config`, {
    settings: { idleTimeoutSeconds: 40 },
  });
  assert.is(put.status, 200, JSON.stringify(put.body));
  const version = (put.body as { desired: { version: number } }).desired.version;
  await site.signal.until(async () => {
    const view = (await site.operator("GET", `/api/v1/devices/${site.site}/k1/config`)).body as {
      reported?: { version: number };
    };
    return view.reported?.version === version;
  }, "k1 reported the desired config");
});

test("a stale Will landing after the kiosk's birth leaves it online, in presence and on the retained topic", async () => {
  // Mosquitto does not tie a device's username to its client id: a second connection with k1's own
  // credentials may leave a Will of an older session on k1's status, and it dies after k1's birth.
  const k1 = site.kiosk("k1");
  const address = site.address("k1");
  const stale = JSON.stringify({ state: "offline", session: k1.uplink.session - 1 });
  const staleWills = async () =>
    Number(/^paylane_bridge_stale_wills_total (\d+)/m.exec(await site.cloudMetrics())?.[1] ?? 0);
  const before = await staleWills();
  const ghost = await mqtt.connectAsync(
    site.mqttUrl,
    {
      clientId: `ghost-${site.site}`,
      username: deviceIdentity.username(address),
      password: site.secrets.get("k1"),
      protocolVersion: 4,
      reconnectPeriod: 0,
      will: { topic: topics.status(address), payload: Buffer.from(stale), qos: 1, retain: true },
    },
    false,
  );
  ghost.stream.destroy();
  await eventually(async () => (await staleWills()) > before, "the cloud to ignore the stale Will");
  const presence = async () => {
    const { body } = await site.operator("GET", `/api/v1/devices?site=${site.site}`);
    return (body.items as Array<{ device: string; state: string }>).find((d) => d.device === "k1")?.state;
  };
  assert.is(await presence(), "online");
  // The kiosk answers the Will with its birth again: a viewer arriving now reads it online, live session.
  await eventually(async () => {
    const viewer = await site.operatorClient("viewer");
    const got = new Promise<string>((resolve) => viewer.once("message", (_t, p) => resolve(p.toString())));
    await viewer.subscribeAsync(topics.status(address), { qos: 1 });
    const status = JSON.parse(await got) as { state: string; session?: number };
    await viewer.endAsync(true);
    return status.state === "online" && status.session === k1.uplink.session;
  }, "the retained status to be k1's birth again");
  assert.is((await k1.state()).online, true);
});

test("a kiosk's check-in is acked through the ACLs; its birth is retained, a clean stop says offline, a dropped connection's Will too", async () => {
  const viewer = await site.operatorClient("viewer");
  const seen = recorder(viewer);
  await viewer.subscribeAsync(`paylane/v1/${site.site}/+/status`, { qos: 1 });
  const k1 = site.kiosk("k1");
  const result = await k1.tap(demoCard("m-ada"));
  assert.is(result.outcome, "welcome");
  await site.drained("k1");
  assert.is(
    await site.count("SELECT count(*) AS n FROM checkins WHERE site_id = $1 AND member_id = 'm-ada'", [site.site]),
    1,
  );
  const birth = await seen.next(
    (m) => m.topic === topics.status(site.address("k1")) && m.payload.includes('"online"'),
    "k1's birth",
  );
  assert.is(JSON.parse(birth.payload).state, "online");
  await site.kiosk("k1").stop();
  site.kiosks.delete("k1");
  await seen.next(
    (m) => m.topic === topics.status(site.address("k1")) && m.payload.includes('"offline"'),
    "k1 offline after a clean stop",
  );
  // A device whose connection drops: Mosquitto publishes its Will, which its ACL allows.
  const a = probe();
  const dropped = await mqtt.connectAsync(
    site.mqttUrl,
    {
      clientId: deviceIdentity.clientId(a),
      username: deviceIdentity.username(a),
      password: site.secrets.get("probe"),
      protocolVersion: 4,
      reconnectPeriod: 0,
      will: {
        topic: topics.status(a),
        payload: Buffer.from(JSON.stringify({ state: "offline", session: 9 })),
        qos: 1,
        retain: true,
      },
    },
    false,
  );
  dropped.stream.destroy();
  const will = await seen.next((m) => m.topic === topics.status(a) && m.payload.includes('"session":9'), "the Will");
  assert.is(JSON.parse(will.payload).state, "offline");
});

test.run();
