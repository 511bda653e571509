/**
 * The same nodes against Mosquitto instead of the aedes gateway: a private
 * Mosquitto running the configuration `paylane-gateway mosquitto-config`
 * makes from the registry (operators, viewers and their sites included).
 * Where the brokers differ it is asserted here: Mosquitto acknowledges a
 * publish its ACL denies and drops it, so a viewer's command ends in
 * "timeout" (the gateway closes the connection instead: nodes.test.ts).
 */
import { createRequire } from "node:module";
import { type Alert, topics } from "@paylane/protocol";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { address, birth, OPERATOR_ID, SITE, TestBroker, will } from "./support.ts";

const require = createRequire(import.meta.url);
// biome-ignore lint/suspicious/noExplicitAny: node-red-node-test-helper ships no types
const helper: any = require("node-red-node-test-helper");
const ALL = ["broker", "status", "events", "command", "alert"].map((n) => require(`../nodes/paylane-${n}.js`));

helper.init(require.resolve("node-red"), { logging: { console: { level: "off" } } });

const broker = new TestBroker("mosquitto");
// biome-ignore lint/suspicious/noExplicitAny: a Node-RED message
type Msg = { payload: any; topic?: string; [k: string]: unknown };

test.before(async () => {
  await broker.start();
  await new Promise<void>((resolve) => helper.startServer(resolve));
});

test.after.each(async () => {
  await helper.unload();
});

test.after(async () => {
  await broker.stop();
  await new Promise<void>((resolve) => helper.stopServer(resolve));
});

async function load(nodes: object[], credentials = broker.operator): Promise<Msg[]> {
  const flow = [{ id: "b", type: "paylane-broker", url: broker.url }, ...nodes, { id: "out", type: "helper" }];
  await helper.load(ALL, flow, { b: { ...credentials } });
  const received: Msg[] = [];
  helper.getNode("out").on("input", (msg: Msg) => {
    received.push(msg);
    broker.signal.notify();
  });
  return received;
}

test("status: birth, a stale Will ignored, then the Will of the dropped connection", async () => {
  const out = await load([{ id: "n", type: "paylane status", broker: "b", wires: [["out"]] }]);
  await helper.getNode("n").subscribed;
  const kiosk = await broker.kiosk("k1", { will: will("k1", 3) });
  await kiosk.publishAsync(topics.status(address("k1")), birth(3), { qos: 1, retain: true });
  await broker.signal.until(() => out.length >= 1, "the birth");
  await kiosk.publishAsync(topics.status(address("k1")), JSON.stringify({ state: "offline", session: 2 }), {
    qos: 1,
    retain: true,
  });
  kiosk.stream.destroy();
  await broker.signal.until(() => out.length >= 2, "the Will");
  assert.equal(
    out.map((m) => [m.topic, m.payload.state, m.payload.session, m.payload.cause]),
    [
      [`${SITE}/k1`, "online", 3, undefined],
      [`${SITE}/k1`, "offline", 3, "connection-lost"],
    ],
  );
});

test("command: round trip as the operator; a viewer's command is dropped by Mosquitto and times out", async () => {
  const kiosk = await broker.kiosk("k2");
  await kiosk.subscribeAsync(topics.cmdAll(address("k2")), { qos: 1 });
  const bodies: { id: string; by?: string }[] = [];
  kiosk.on("message", (_topic, payload) => {
    const body = JSON.parse(payload.toString());
    bodies.push(body);
    kiosk.publish(
      topics.cmdResult(address("k2")),
      JSON.stringify({ id: body.id, command: "print-test", status: "done", at: new Date().toISOString() }),
      { qos: 1 },
    );
  });

  const out = await load([
    { id: "c", type: "paylane command", broker: "b", site: SITE, timeout: 10, wires: [["out"]] },
  ]);
  helper.getNode("c").receive({ device: "k2", command: "print-test" });
  await broker.signal.until(() => out.length >= 1, "the result");
  assert.is(out[0]!.payload.status, "done");
  assert.is(out[0]!.payload.id, bodies[0]!.id);
  assert.is(bodies[0]!.by, OPERATOR_ID);
  await helper.unload();

  const asViewer = await load(
    [{ id: "c", type: "paylane command", broker: "b", site: SITE, timeout: 1, wires: [["out"]] }],
    broker.viewer,
  );
  helper.getNode("c").receive({ device: "k2", command: "reboot" });
  await broker.signal.until(() => asViewer.length >= 1, "the viewer's outcome");
  assert.is(asViewer[0]!.payload.status, "timeout");
  assert.is(bodies.length, 1, "the kiosk never got the viewer's command");
});

test("alert: a retained firing alert; another site's subscription is refused with the filter", async () => {
  const cloud = await broker.cloud();
  const key = "paper-out:s1:k1";
  const firing: Alert = {
    key,
    rule: "paper-out",
    severity: "warning",
    state: "firing",
    site: SITE,
    device: "k1",
    summary: "k1 is out of paper",
    firedAt: new Date().toISOString(),
    at: new Date().toISOString(),
  };
  await cloud.publishAsync(topics.alert(SITE, key), JSON.stringify(firing), { qos: 1, retain: true });
  const out = await load([
    { id: "a", type: "paylane alert", broker: "b", site: SITE, wires: [["out"]] },
    { id: "x", type: "paylane alert", broker: "b", site: "s2", wires: [["out"]] },
  ]);
  await broker.signal.until(() => out.length >= 1, "the retained alert");
  assert.equal(out[0]!.payload, firing);
  const refusal = await helper.getNode("x").subscribed.then(
    () => "granted",
    (err: Error) => err.message,
  );
  assert.match(
    refusal,
    /^subscription to paylane\/v1\/cloud\/alerts\/s2\/\+ refused: is the operator granted this site/,
  );
  await cloud.publishAsync(topics.alert(SITE, key), "", { qos: 1, retain: true });
});

test.run();
