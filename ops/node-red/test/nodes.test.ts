/**
 * The PayLane nodes in node-red-node-test-helper's runtime, against the real
 * aedes gateway with its ACLs: the broker config node connects as an
 * operator (`ops:noc`), raw clients play the kiosks and the cloud.
 */
import { createRequire } from "node:module";
import { type Alert, type CommandResult, topics } from "@paylane/protocol";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { address, birth, OPERATOR_ID, SITE, TestBroker, will } from "./support.ts";

const require = createRequire(import.meta.url);
// biome-ignore lint/suspicious/noExplicitAny: node-red-node-test-helper ships no types
const helper: any = require("node-red-node-test-helper");
const brokerNode = require("../nodes/paylane-broker.js");
const statusNode = require("../nodes/paylane-status.js");
const eventsNode = require("../nodes/paylane-events.js");
const commandNode = require("../nodes/paylane-command.js");
const alertNode = require("../nodes/paylane-alert.js");
const ALL = [brokerNode, statusNode, eventsNode, commandNode, alertNode];

helper.init(require.resolve("node-red"), { logging: { console: { level: "off" } } });

const broker = new TestBroker();
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

/** Loads `nodes` (wired to a helper node "out") with a broker config node logged in as the operator. */
async function load(nodes: object[]): Promise<Msg[]> {
  const flow = [{ id: "b", type: "paylane-broker", url: broker.url }, ...nodes, { id: "out", type: "helper" }];
  await helper.load(ALL, flow, { b: { ...broker.operator } });
  const received: Msg[] = [];
  helper.getNode("out").on("input", (msg: Msg) => {
    received.push(msg);
    broker.signal.notify();
  });
  return received;
}

const subscribed = (id: string): Promise<void> => helper.getNode(id).subscribed;

test("status: a kiosk's birth, then its Will when the connection drops; a stale Will is ignored", async () => {
  const out = await load([{ id: "n", type: "paylane status", broker: "b", site: SITE, device: "", wires: [["out"]] }]);
  await subscribed("n");

  const kiosk = await broker.kiosk("k1", { will: will("k1", 7) });
  await kiosk.publishAsync(topics.status(address("k1")), birth(7), { qos: 1, retain: true });
  await broker.signal.until(() => out.length >= 1, "the birth");
  assert.equal(out[0]!.payload, {
    site: SITE,
    device: "k1",
    state: "online",
    session: 7,
    at: out[0]!.payload.at,
    version: "1.4.0",
  });
  assert.is(out[0]!.topic, `${SITE}/k1`);

  // A Will of session 6 fired late (the kiosk already lives on session 7): not a change.
  await kiosk.publishAsync(topics.status(address("k1")), JSON.stringify({ state: "offline", session: 6 }), {
    qos: 1,
    retain: true,
  });
  // The kiosk's connection dies without a DISCONNECT: the broker publishes its Will (session 7).
  kiosk.stream.destroy();
  await broker.signal.until(() => out.length >= 2, "the Will");
  assert.is(out.length, 2, "the stale Will made no message");
  assert.is(out[1]!.payload.state, "offline");
  assert.is(out[1]!.payload.session, 7);
  assert.is(out[1]!.payload.cause, "connection-lost");
});

test("status: what is retained when the flow starts is the baseline; a state filter keeps only offline", async () => {
  const k2 = await broker.kiosk("k2");
  await k2.publishAsync(topics.status(address("k2")), birth(1), { qos: 1, retain: true });
  const out = await load([
    { id: "n", type: "paylane status", broker: "b", site: SITE, state: "offline", wires: [["out"]] },
    { id: "i", type: "paylane status", broker: "b", device: "k2", initial: true, wires: [["out"]] },
  ]);
  await subscribed("n");
  // Only the node told to emit the state at start does so.
  await broker.signal.until(() => out.length >= 1, "k2's state at start");
  assert.equal([out[0]!.payload.device, out[0]!.payload.state], ["k2", "online"]);
  out.length = 0;
  const goodbye = { state: "offline", at: new Date().toISOString(), session: 1 };
  await k2.publishAsync(topics.status(address("k2")), JSON.stringify(goodbye), { qos: 1, retain: true });
  // Both nodes report it: the offline-only one and the one watching k2.
  await broker.signal.until(() => out.length >= 2, "the clean shutdown, from both nodes");
  assert.equal(
    out.map((m) => [m.payload.device, m.payload.state, m.payload.cause, m.payload.at]),
    [
      ["k2", "offline", "shutdown", goodbye.at],
      ["k2", "offline", "shutdown", goodbye.at],
    ],
  );
});

test("command: published with id, expiry and the operator as `by`; the kiosk's final result comes out", async () => {
  const out = await load([
    { id: "c", type: "paylane command", broker: "b", site: SITE, timeout: 10, wires: [["out"]] },
  ]);
  const kiosk = await broker.kiosk("k1");
  const seen: { topic: string; body: { id: string; args: object; expiresAt: string; by: string } }[] = [];
  await kiosk.subscribeAsync(topics.cmdAll(address("k1")), { qos: 1 });
  kiosk.on("message", (topic, payload) => {
    const body = JSON.parse(payload.toString());
    seen.push({ topic, body });
    const answer = (r: object) =>
      kiosk.publish(topics.cmdResult(address("k1")), JSON.stringify({ id: body.id, command: "unlock", ...r }), {
        qos: 1,
      });
    answer({ status: "accepted", at: new Date().toISOString() });
    answer({ status: "done", result: { openedSeconds: 2 }, at: new Date().toISOString() });
  });

  const sentAt = Date.now();
  helper.getNode("c").receive({ device: "k1", command: "unlock", args: { seconds: 2 } });
  await broker.signal.until(() => out.length >= 1, "the command's result");

  assert.is(seen.length, 1);
  assert.is(seen[0]!.topic, topics.cmd(address("k1"), "unlock"));
  assert.equal(seen[0]!.body.args, { seconds: 2 });
  assert.is(seen[0]!.body.by, OPERATOR_ID);
  const expiresIn = Date.parse(seen[0]!.body.expiresAt) - sentAt;
  assert.ok(expiresIn > 9_000 && expiresIn <= 11_000, `expires in ${expiresIn} ms, expected about the 10 s timeout`);
  const result = out[0]!.payload as CommandResult;
  assert.is(result.id, seen[0]!.body.id);
  assert.is(result.status, "done");
  assert.equal(result.status === "done" && result.result, { openedSeconds: 2 });
  assert.is(out[0]!.device, "k1");
});

test("command: no answer in time gives status timeout; bad input is an error naming the fix", async () => {
  const out = await load([{ id: "c", type: "paylane command", broker: "b", site: SITE, timeout: 1, wires: [["out"]] }]);
  const errors: string[] = [];
  helper.getNode("c").on("call:error", (call: { args: unknown[] }) => {
    errors.push(String(call.args[0]));
    broker.signal.notify();
  });
  helper.getNode("c").receive({ device: "k1", command: "format-disk" });
  await broker.signal.until(() => errors.length >= 1, "the error");
  assert.match(errors[0]!, /unknown command "format-disk": expected one of reboot/);

  // k2 has no client: nobody answers.
  helper.getNode("c").receive({ payload: { device: "k2", command: "reboot" } });
  await broker.signal.until(() => out.length >= 1, "the timeout");
  assert.is(out[0]!.payload.status, "timeout");
  assert.match(out[0]!.payload.reason, /no final result from s1\/k2 within 1 s/);
});

test("command: refused ones fail with the reason, and the connection the other nodes share recovers", async () => {
  // Logged in as a viewer: it may read k1's cmd-result but not publish commands.
  const flow = [
    { id: "b", type: "paylane-broker", url: broker.url },
    { id: "c", type: "paylane command", broker: "b", timeout: 20, wires: [["out"]] },
    { id: "n", type: "paylane status", broker: "b", site: SITE, device: "k2", wires: [["out"]] },
    { id: "out", type: "helper" },
  ];
  await helper.load(ALL, flow, { b: { ...broker.viewer } });
  const out: Msg[] = [];
  helper.getNode("out").on("input", (msg: Msg) => {
    out.push(msg);
    broker.signal.notify();
  });
  await subscribed("n");

  // Another site: the broker refuses even the subscription to its results; nothing is sent.
  helper.getNode("c").receive({ site: "s2", device: "k9", command: "reboot" });
  await broker.signal.until(() => out.length >= 1, "the refused subscription");
  assert.is(out[0]!.payload.status, "failed");
  assert.match(out[0]!.payload.reason, /^not sent: subscription to paylane\/v1\/s2\/k9\/cmd-result refused/);

  // Its own site, but a viewer: the broker answers the publish by closing the connection.
  helper.getNode("c").receive({ site: SITE, device: "k1", command: "reboot" });
  await broker.signal.until(() => out.length >= 2, "the refused publish");
  assert.is(out[1]!.payload.status, "failed");
  assert.match(
    out[1]!.payload.reason,
    /closed the connection instead of confirming the publish to paylane\/v1\/s1\/k1\/cmd\/reboot/,
  );

  // The refused command is not resent on reconnect: the status node on the same connection sees k2 come online.
  const k2 = await broker.kiosk("k2");
  await k2.publishAsync(topics.status(address("k2")), birth(9), { qos: 1, retain: true });
  await broker.signal.until(() => out.length >= 3, "k2's birth after the reconnect", 20_000);
  assert.equal([out[2]!.payload.device, out[2]!.payload.state, out[2]!.payload.session], ["k2", "online", 9]);
});

test("broker: a wrong password shows under the nodes and is logged once, without the password", async () => {
  const flow = [
    { id: "b", type: "paylane-broker", url: broker.url },
    { id: "n", type: "paylane status", broker: "b", wires: [[]] },
  ];
  const wrong = "not-the-password";
  await helper.load(ALL, flow, { b: { username: broker.operator.username, password: wrong } });
  const shown: string[] = [];
  helper.getNode("n").on("call:status", (call: { args: [{ text: string }] }) => {
    shown.push(call.args[0].text);
    broker.signal.notify();
  });
  await broker.signal.until(() => shown.some((t) => /Bad username or password/.test(t)), "the refusal under the node");
  assert.ok(shown.includes("disconnected: Connection refused: Bad username or password"), shown.join(" | "));
  const warnings = helper
    .log()
    .args.filter((a: [{ level: number; msg: unknown }]) => a[0].level === helper.log().WARN)
    .map((a: [{ msg: unknown }]) => String(a[0].msg))
    .filter((msg: string) => msg.startsWith("PayLane broker"));
  assert.equal(warnings, [`PayLane broker ${broker.url}: Connection refused: Bad username or password`]);
  assert.not.ok(JSON.stringify(helper.log().args).includes(wrong), "the password is in no log line");
});

test("broker: a URL that is not mqtt://… is one clear line and no connection", async () => {
  const flow = [
    { id: "b", type: "paylane-broker", url: "gateway:1883" },
    { id: "n", type: "paylane status", broker: "b", wires: [[]] },
    { id: "e", type: "paylane events", broker: "b", wires: [[]] },
  ];
  await helper.load(ALL, flow, { b: { ...broker.operator } });
  const lines = helper
    .log()
    .args.map((a: [{ level: number; msg: unknown }]) => String(a[0].msg))
    .filter((msg: string) => /^paylane-broker|^PayLane broker/.test(msg));
  assert.equal(lines, ['paylane-broker b: set the broker URL, e.g. mqtt://gateway:1883 (got "gateway:1883")']);
  assert.is(helper.getNode("b").connection.client, null, "nothing connects");
  assert.is(helper.getNode("b").connection.state.detail, "bad broker URL");
});

test("broker: a subscription the operator is not granted is refused, said once with the filter", async () => {
  const out = await load([{ id: "n", type: "paylane status", broker: "b", site: "s2", wires: [["out"]] }]);
  const refusal = await helper.getNode("n").subscribed.then(
    () => "granted",
    (err: Error) => err.message,
  );
  assert.is(
    refusal,
    "subscription to paylane/v1/s2/+/status refused: is the operator granted this site, and is the filter one operators may read?",
  );
  const lines = helper
    .log()
    .args.map((a: [{ msg: unknown }]) => String(a[0].msg))
    .filter((msg: string) => msg.startsWith("PayLane broker"));
  assert.equal(lines, [
    "PayLane broker: subscription to paylane/v1/s2/+/status refused: is the operator granted this site, and is the filter one operators may read?",
  ]);
  assert.is(out.length, 0);
});

test("alert: a firing alert retained before the flow started comes out, then its resolution", async () => {
  const cloud = await broker.cloud();
  const key = "device-offline:s1:k1";
  const firing: Alert = {
    key,
    rule: "device-offline",
    severity: "critical",
    state: "firing",
    site: SITE,
    device: "k1",
    summary: "k1 offline for 5 min",
    firedAt: new Date().toISOString(),
    at: new Date().toISOString(),
  };
  await cloud.publishAsync(topics.alert(SITE, key), JSON.stringify(firing), { qos: 1, retain: true });

  const out = await load([{ id: "a", type: "paylane alert", broker: "b", site: SITE, wires: [["out"]] }]);
  await broker.signal.until(() => out.length >= 1, "the retained alert");
  assert.equal(out[0]!.payload, firing);
  assert.is(out[0]!.topic, key);

  const resolved: Alert = {
    ...firing,
    state: "resolved",
    resolvedAt: new Date().toISOString(),
    at: new Date().toISOString(),
  };
  await cloud.publishAsync(topics.alert(SITE, key), JSON.stringify(resolved), { qos: 1 });
  await cloud.publishAsync(topics.alert(SITE, key), "", { qos: 1, retain: true });
  await broker.signal.until(() => out.length >= 2, "the resolution");
  assert.is(out[1]!.payload.state, "resolved");
});

test("events: committed entries one message each, filtered by kind", async () => {
  const out = await load([
    { id: "e", type: "paylane events", broker: "b", site: SITE, kinds: "staff-call, payment", wires: [["out"]] },
  ]);
  await subscribed("e");
  const cloud = await broker.cloud();
  const at = new Date().toISOString();
  const entries = [
    { seq: 1, id: "e-1", kind: "checkin", at },
    { seq: 2, id: "e-2", kind: "staff-call", at },
    { seq: 3, id: "e-3", kind: "payment", at },
  ];
  const meta = { site: SITE, device: "k1", entries, committedAt: at };
  await cloud.publishAsync(topics.eventsMeta(address("k1")), JSON.stringify(meta), { qos: 1 });
  await broker.signal.until(() => out.length >= 2, "the two entries");
  assert.equal(
    out.map((m) => [m.topic, m.payload.seq, m.payload.kind]),
    [
      [`${SITE}/k1`, 2, "staff-call"],
      [`${SITE}/k1`, 3, "payment"],
    ],
  );
});

test.run();
