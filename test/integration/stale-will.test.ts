/**
 * A stale Will after a new birth leaves the device online, in the cloud's
 * presence and in the retained `status` topic (docs/status.md), on a whole
 * site: kiosk daemon, cloud, Postgres, Redis or in-process presence.
 *
 * - Mosquitto (open, private): a client of another id leaves a Will with an
 *   older session on the kiosk's topic and dies after the kiosk's birth, so
 *   the Will lands after the birth, deterministically. The cloud ignores it
 *   and the kiosk answers it with its birth again.
 * - aedes (the gateway, which admits a device only under its own client id):
 *   the late Will comes from a session takeover, as when a kiosk reconnects
 *   over its own half-open connection. A raw client with the kiosk's identity
 *   and a Will of an older session takes the kiosk's place; the kiosk comes
 *   back and takes it over in turn, and the broker fires that Will. Wherever
 *   it lands relative to the new birth, the cloud ignores it (counted) and
 *   the kiosk ends online everywhere.
 */
import { deviceIdentity, type Status, topics } from "@paylane/protocol";
import mqtt, { type MqttClient } from "mqtt";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { type Backends, describe, TestSite } from "../support/site.ts";

const MATRIX: Backends[] = [
  { db: "pg", presence: "redis", broker: "mosquitto-private" },
  { db: "pg", presence: "memory", broker: "aedes" },
  { db: "pg", presence: "redis", broker: "aedes" },
];

/** The retained status a subscriber arriving now reads. */
async function retainedStatus(site: TestSite, device: string): Promise<Status> {
  const client = await site.operatorClient("viewer");
  try {
    const got = new Promise<Status>((resolve) =>
      client.on("message", (_t, payload) => resolve(JSON.parse(payload.toString()) as Status)),
    );
    await client.subscribeAsync(topics.status(site.address(device)), { qos: 1 });
    return await got;
  } finally {
    await client.endAsync(true);
  }
}

async function presenceState(site: TestSite, device: string): Promise<string> {
  const { body } = await site.operator("GET", `/api/v1/devices?site=${site.site}`);
  const row = (body.items as Array<{ device: string; state: string }>).find((d) => d.device === device);
  return row?.state ?? "missing";
}

async function staleWillsIgnored(site: TestSite): Promise<number> {
  const m = /^paylane_bridge_stale_wills_total (\d+)/m.exec(await site.cloudMetrics());
  return Number(m?.[1] ?? 0);
}

/** Polls `check` (an HTTP or MQTT read) until it holds, or fails naming `what`. */
async function eventually(check: () => Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

for (const backends of MATRIX) {
  const test = suite<{ site: TestSite }>(`stale Will: ${describe(backends)}`, {} as { site: TestSite });
  test.before(async (ctx) => {
    ctx.site = new TestSite({ ...backends, kiosks: ["k1"], probes: [] });
    await ctx.site.start();
  });
  test.after(async (ctx) => {
    await ctx.site?.stop();
  });

  test("a stale Will after a new birth leaves the kiosk online, in presence and on the retained topic", async ({
    site,
  }) => {
    const k1 = site.kiosk("k1");
    const address = site.address("k1");
    const session = k1.uplink.session;
    await eventually(async () => (await presenceState(site, "k1")) === "online", "k1 online in presence");
    const ignoredBefore = await staleWillsIgnored(site);
    let ghost: MqttClient;
    const staleWill = {
      topic: topics.status(address),
      payload: Buffer.from(JSON.stringify({ state: "offline", session: session - 1 })),
      qos: 1 as const,
      retain: true,
    };

    if (backends.broker === "aedes") {
      // The ghost takes the kiosk's place (the kiosk's own Will, of its current session, fires: offline,
      // rightly); the kiosk reconnects with a new session and takes the ghost's place: its stale Will fires.
      ghost = await mqtt.connectAsync(site.mqttUrl, {
        clientId: deviceIdentity.clientId(address),
        username: deviceIdentity.username(address),
        password: site.secrets.get("k1"),
        protocolVersion: 4,
        reconnectPeriod: 0,
        will: staleWill,
      });
      ghost.on("error", () => {});
      await eventually(async () => k1.uplink.session > session && k1.uplink.online, "k1 back with a new session");
    } else {
      // Another client id may leave a Will on the kiosk's topic here; it dies after the kiosk's birth.
      ghost = await mqtt.connectAsync(site.mqttUrl, {
        clientId: `ghost-${site.site}`,
        protocolVersion: 4,
        reconnectPeriod: 0,
        will: staleWill,
      });
      ghost.stream.destroy();
    }

    // The cloud saw the stale Will and ignored it.
    await eventually(async () => (await staleWillsIgnored(site)) > ignoredBefore, "the cloud to ignore the stale Will");
    assert.is(await presenceState(site, "k1"), "online", "presence: online");
    // The retained topic: online again, with the kiosk's live session (a rebirth where the Will overwrote it).
    await eventually(async () => {
      const s = await retainedStatus(site, "k1");
      return s.state === "online" && s.session === k1.uplink.session;
    }, "the retained status to be the kiosk's birth");
    assert.is(await presenceState(site, "k1"), "online");
    assert.is((await k1.state()).online, true);
    await ghost.endAsync(true).catch(() => {});
  });

  if (backends.broker === "aedes" && backends.presence === "memory") {
    test("the session counter survives a daemon restart and grows", async ({ site }) => {
      const before = site.kiosk("k1").uplink.session;
      await site.kiosk("k1").stop();
      site.kiosks.delete("k1");
      const k1 = await site.startKiosk("k1");
      assert.ok(k1.uplink.session > before, `session ${k1.uplink.session} after a restart from ${before}`);
      await eventually(async () => {
        const s = await retainedStatus(site, "k1");
        return s.state === "online" && s.session === k1.uplink.session;
      }, "the birth of the restarted daemon, with its new session");
    });
  }

  test.run();
}
