/**
 * Commands to kiosks, the cloud's side (issue 14): the API sends a command and
 * waits for its result, every command seen on the broker is audited with who
 * sent it, a command to an offline kiosk is delivered at its birth unless it
 * expired, and one nobody answers is closed at its expiry. Raw MQTT clients
 * with the devices' own credentials play the kiosks (the real kiosk's side is
 * test/integration/commands.test.ts); the cloud's clock is injected, so expiry
 * needs no waiting.
 */
import {
  type Command,
  type CommandResult,
  CommandResultSchema,
  CommandSchema,
  decode,
  encode,
  StatusSchema,
  topics,
} from "@paylane/protocol";
import type { MqttClient } from "mqtt";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { loud } from "../../test/support/hooks.ts";
import { TestSite } from "../../test/support/site.ts";
import type { CommandRecord } from "../src/fleet/commands.ts";

let skewMs = 0;
const now = () => new Date(Date.now() + skewMs);

const it = suite("device commands");
let site: TestSite;

it.before(
  loud("site setup", async () => {
    site = new TestSite({
      db: "pglite",
      presence: "memory",
      broker: "aedes",
      kiosks: [],
      probes: ["answers", "silent", "late", "gone", "direct"],
      now,
    });
    await site.start();
    site.cloud!.commands.changes.on("change", site.signal.notify);
  }),
);
it.after(async () => {
  await site?.stop();
});

/**
 * A kiosk played over raw MQTT: it answers each command id once (accepted,
 * then done) and a repeat from its memory, as the real one does; `silent`
 * takes commands and never answers.
 */
class FakeKiosk {
  readonly received: Array<{ name: string; command: Command }> = [];
  readonly answered = new Map<string, CommandResult>();
  runs = 0;
  client!: MqttClient;
  #session = 0;

  constructor(
    readonly device: string,
    readonly mode: "answers" | "silent" = "answers",
  ) {}

  async connect(): Promise<void> {
    const a = site.address(this.device);
    this.client = await site.rawDevice(this.device);
    this.client.on("message", (topic, payload) => {
      if (!topic.startsWith(topics.cmdPrefix(a))) return;
      const command = decode(CommandSchema, payload);
      if (!command.ok) throw new Error(`bad command: ${command.error}`);
      const name = topic.slice(topics.cmdPrefix(a).length);
      this.received.push({ name, command: command.value });
      this.#answer(name, command.value);
      site.signal.notify();
    });
    await this.client.subscribeAsync(topics.cmdAll(a), { qos: 1 });
    // The birth comes after the subscription, as the kiosk's uplink does it.
    this.#session += 1;
    const birth = { state: "online", version: "test", bootedAt: new Date().toISOString(), protocol: 1 } as const;
    await this.client.publishAsync(topics.status(a), encode(StatusSchema, { ...birth, session: this.#session }), {
      qos: 1,
      retain: true,
    });
  }

  async disconnect(): Promise<void> {
    const a = site.address(this.device);
    await this.client.publishAsync(
      topics.status(a),
      encode(StatusSchema, { state: "offline", at: new Date().toISOString(), session: this.#session }),
      { qos: 1, retain: true },
    );
    await this.client.endAsync();
  }

  #answer(name: string, command: Command): void {
    if (this.mode === "silent") return;
    const send = (r: CommandResult) =>
      this.client.publish(topics.cmdResult(site.address(this.device)), encode(CommandResultSchema, r), { qos: 1 });
    const at = () => new Date().toISOString();
    const remembered = this.answered.get(command.id);
    if (remembered) {
      send(remembered);
      return;
    }
    let final: CommandResult;
    if (command.expiresAt && new Date(command.expiresAt) <= now()) {
      final = { id: command.id, command: name, status: "expired", reason: "past its expiry", at: at() };
    } else {
      send({ id: command.id, command: name, status: "accepted", at: at() });
      this.runs += 1;
      final = { id: command.id, command: name, status: "done", result: { ran: name, run: this.runs }, at: at() };
    }
    this.answered.set(command.id, final);
    send(final);
  }
}

async function listed(device: string): Promise<CommandRecord[]> {
  const res = await site.operator("GET", `/api/v1/devices/${site.site}/${device}/commands`);
  assert.is(res.status, 200, JSON.stringify(res.body));
  return (res.body as { items: CommandRecord[] }).items;
}

async function rowOf(device: string, id: string): Promise<CommandRecord | undefined> {
  return (await listed(device)).find((c) => c.id === id);
}

it("a command to an online kiosk answers 200 with its result, audited with who sent it", async () => {
  const kiosk = new FakeKiosk("answers");
  await kiosk.connect();
  const res = await site.operator("POST", `/api/v1/devices/${site.site}/answers/commands`, {
    command: "self-test",
    waitSeconds: 10,
  });
  assert.is(res.status, 200, JSON.stringify(res.body));
  const c = res.body as unknown as CommandRecord;
  assert.is(c.status, "done");
  assert.equal(c.result, { ran: "self-test", run: 1 });
  assert.is(c.requestedBy, "ops-test", "the operator token's sub");
  assert.is(c.command, "self-test");
  assert.ok(c.expiresAt && new Date(c.expiresAt) > new Date(c.requestedAt), "it carries an expiry");
  // What the kiosk received: the same id, the expiry and who asked.
  assert.equal(
    kiosk.received.map((r) => [r.name, r.command.id, r.command.by]),
    [["self-test", c.id, "ops-test"]],
  );

  const audit = await listed("answers");
  assert.is(audit.length, 1);
  assert.is(audit[0]!.status, "done");
  assert.ok(audit[0]!.answeredAt, "the kiosk's answer time is kept");
  assert.ok(audit[0]!.deliveredAt, "published while the kiosk was online");
});

it("bad requests are refused in one line naming what is wrong; viewers and other sites may not send", async () => {
  const path = `/api/v1/devices/${site.site}/answers/commands`;
  const unknown = await site.operator("POST", path, { command: "format-disk" });
  assert.is(unknown.status, 400);
  assert.match(String(unknown.body.detail), /unknown command "format-disk"; known: reboot, self-test/);
  const badArgs = await site.operator("POST", path, { command: "unlock", args: { seconds: 9999 } });
  assert.is(badArgs.status, 400);
  assert.match(String(badArgs.body.detail), /unlock args\.seconds/);
  const noDevice = await site.operator("POST", `/api/v1/devices/${site.site}/nope/commands`, { command: "reboot" });
  assert.is(noDevice.status, 404);

  const viewer = await site.operatorToken("viewer", "someone");
  const asViewer = await site.operator("POST", path, { command: "reboot" }, { authorization: `Bearer ${viewer}` });
  assert.is(asViewer.status, 403);
  assert.match(
    String(asViewer.body.detail),
    /needs fleet:operate, which the operator and admin roles have; the token has viewer/,
  );
  // A viewer reads the audit.
  const read = await site.operator("GET", path, undefined, { authorization: `Bearer ${viewer}` });
  assert.is(read.status, 200);
  // None of these was sent.
  assert.is((await listed("answers")).length, 1);
});

it("a kiosk that never answers: 202 while pending, then timeout once its expiry passed", async () => {
  const kiosk = new FakeKiosk("silent", "silent");
  await kiosk.connect();
  const res = await site.operator("POST", `/api/v1/devices/${site.site}/silent/commands`, {
    command: "print-test",
    expiresInSeconds: 60,
    waitSeconds: 0.3,
  });
  assert.is(res.status, 202, JSON.stringify(res.body));
  const c = res.body as unknown as CommandRecord;
  assert.is(c.status, "pending");
  assert.ok(c.deliveredAt, "the kiosk was online: delivered");
  await site.signal.until(() => kiosk.received.length === 1, "the kiosk got the command");
  assert.is((await rowOf("silent", c.id))?.status, "pending", "still pending before its expiry");

  skewMs += 120_000;
  const row = await rowOf("silent", c.id);
  assert.is(row?.status, "timeout");
  assert.match(String(row?.reason), /did not answer before it expired/);
  assert.match(await site.cloudMetrics(), /^paylane_commands_settled_total\{status="timeout"\} 1$/m, "counted for ops");
});

it("a command sent while the kiosk is offline is delivered at its birth and runs once, even delivered twice", async () => {
  const res = await site.operator("POST", `/api/v1/devices/${site.site}/late/commands`, {
    command: "rotate-logs",
    waitSeconds: 0,
  });
  assert.is(res.status, 202);
  const c = res.body as unknown as CommandRecord;
  assert.is(c.status, "pending");
  assert.is(c.deliveredAt, null, "the kiosk is offline: not delivered yet");

  // The kiosk comes online but its answer is lost: it reconnects, and the command comes again.
  const kiosk = new FakeKiosk("late", "silent");
  await kiosk.connect();
  await site.signal.until(() => kiosk.received.length === 1, "delivered at the birth");
  assert.is(kiosk.received[0]!.command.id, c.id);
  assert.ok((await rowOf("late", c.id))?.deliveredAt);
  await kiosk.disconnect();

  const again = new FakeKiosk("late");
  // The same kiosk, its memory intact: it ran it once already (kept across the reconnect).
  again.answered.set(c.id, {
    id: c.id,
    command: "rotate-logs",
    status: "done",
    result: { rotated: true },
    at: now().toISOString(),
  });
  await again.connect();
  await site.signal.until(async () => (await rowOf("late", c.id))?.status === "done", "done after the second birth");
  assert.is(again.received.length, 1, "delivered again on the second birth");
  assert.is(again.runs, 0, "answered from memory, not run again");
  assert.equal((await rowOf("late", c.id))?.result, { rotated: true });

  // Settled: a third birth does not send it again.
  await again.disconnect();
  const third = new FakeKiosk("late");
  await third.connect();
  const probe = await site.operator("POST", `/api/v1/devices/${site.site}/late/commands`, { command: "self-test" });
  assert.is(probe.status, 200);
  assert.equal(
    third.received.map((r) => r.name),
    ["self-test"],
    "only the new command reached it",
  );
});

it("a command that expires before the kiosk comes back is never delivered and is marked expired", async () => {
  const res = await site.operator("POST", `/api/v1/devices/${site.site}/gone/commands`, {
    command: "reboot",
    expiresInSeconds: 5,
    waitSeconds: 0,
  });
  assert.is(res.status, 202);
  const c = res.body as unknown as CommandRecord;
  skewMs += 10_000;

  const kiosk = new FakeKiosk("gone");
  await kiosk.connect();
  await site.signal.until(async () => (await rowOf("gone", c.id))?.status === "expired", "expired at the birth");
  assert.match(String((await rowOf("gone", c.id))?.reason), /expired before the device came online/);
  // A command sent after it arrives; the expired one, published before if at all, never did.
  const next = await site.operator("POST", `/api/v1/devices/${site.site}/gone/commands`, { command: "self-test" });
  assert.is(next.status, 200);
  assert.equal(
    kiosk.received.map((r) => r.name),
    ["self-test"],
  );
  assert.is(kiosk.runs, 1);
});

it("a command an operator's tool publishes on the broker is audited with the operator the gateway names", async () => {
  const kiosk = new FakeKiosk("direct");
  await kiosk.connect();
  const ops = await site.operatorClient("operator");
  const a = site.address("direct");
  const expiresAt = new Date(now().getTime() + 60_000).toISOString();
  // It claims to be someone else: the gateway stamps the sender's own id.
  await ops.publishAsync(
    topics.cmd(a, "unlock"),
    encode(CommandSchema, { id: "tool-cmd-1", args: { seconds: 3 }, expiresAt, by: "mallory" }),
    { qos: 1 },
  );
  await site.signal.until(async () => (await rowOf("direct", "tool-cmd-1"))?.status === "done", "audited and done");
  const row = (await rowOf("direct", "tool-cmd-1"))!;
  assert.is(row.requestedBy, "operator");
  assert.is(row.command, "unlock");
  assert.equal(row.args, { seconds: 3 });
  assert.is(row.expiresAt, expiresAt);
  assert.equal(row.result, { ran: "unlock", run: 1 });
});

it("the audit lists newest first, in pages", async () => {
  const first = await listed("late");
  assert.ok(first.length >= 2);
  for (let i = 1; i < first.length; i++) assert.ok(first[i - 1]!.requestedAt >= first[i]!.requestedAt);
  const page = await site.operator("GET", `/api/v1/devices/${site.site}/late/commands?limit=1`);
  const next = page.body.next as string;
  assert.ok(next);
  const page2 = await site.operator("GET", `/api/v1/devices/${site.site}/late/commands?limit=1&before=${next}`);
  assert.is((page2.body.items as CommandRecord[])[0]!.id, first[1]!.id);
});

it.run();
