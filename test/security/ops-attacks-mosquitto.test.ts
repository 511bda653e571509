/**
 * Attack on Mosquitto with the configuration `paylane-gateway mosquitto-config`
 * makes from the registry: Mosquitto lets any login take over any client id
 * (the gateway refuses it), so the cloud's client id must not be guessable —
 * else a viewer could kick the cloud off and fire its Will ("cloud offline")
 * at every kiosk. The attacker tries the id the cloud used before it had a
 * random part.
 */
import { topics } from "@paylane/protocol";
import mqtt from "mqtt";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { loud } from "../support/hooks.ts";
import { TestSite } from "../support/site.ts";

const it = suite("ops attacks on the generated Mosquitto");
let site: TestSite;

it.before(
  loud("site setup", async () => {
    site = new TestSite({ db: "pg", presence: "memory", broker: "mosquitto-acl", kiosks: [], probes: ["probe"] });
    await site.start();
  }),
);
it.after(async () => {
  await site?.stop();
});

it("a viewer connecting with the cloud's client id does not send the cloud offline", async () => {
  const kiosk = await site.rawDevice("probe");
  const seen: string[] = [];
  kiosk.on("message", (topic, payload) => {
    if (topic === topics.cloudStatus) seen.push(payload.toString());
    site.signal.notify();
  });
  await kiosk.subscribeAsync(topics.cloudStatus, { qos: 1 });
  await site.signal.until(() => seen.some((s) => s.includes('"online"')), "the cloud online");
  const before = seen.length;
  // Mosquitto lets the viewer in under any client id: the attack really runs.
  const attacker = await mqtt.connectAsync(
    site.mqttUrl,
    {
      clientId: `paylane-cloud-test-${site.site}`,
      ...site.operatorLogin("viewer"),
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 5000,
    },
    false,
  );
  const wentOffline = await site.signal
    .until(() => seen.slice(before).some((s) => s.includes('"offline"')), "cloud offline", 5_000)
    .then(
      () => true,
      () => false,
    );
  await attacker.endAsync(true);
  assert.not.ok(wentOffline, `a viewer's CONNECT sent the cloud offline: ${seen.slice(before).join(" | ")}`);
});

it.run();
