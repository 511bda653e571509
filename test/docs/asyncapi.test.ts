/**
 * The MQTT reference is generated and stays true (issue 19): the AsyncAPI
 * 3.0 document validates with @asyncapi/parser (and the parser does catch a
 * broken document), every topic the protocol can build is a channel, every
 * zod schema the code encodes or decodes on MQTT is a message's payload, the
 * operations agree with the ACL and with the protocol's direction of each
 * channel, and the committed docs/reference/ equals a fresh generation.
 */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { type Diagnostic, Parser } from "@asyncapi/parser";
import { checkPublish, checkSubscribe } from "@paylane/gateway";
import * as protocol from "@paylane/protocol";
import { COMMAND_ARGS, DEVICE_IN, DEVICE_OUT, ENTRY_KINDS, EntrySchema, parseTopic, topics } from "@paylane/protocol";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { parse } from "yaml";
import type { z } from "zod";
import { accessOf, addressOf, buildAsyncApi, operationsOf } from "../../scripts/docs/asyncapi.ts";
import {
  CHANNELS,
  FILTER_BUILDERS,
  OWN_PROBE,
  PART_SCHEMAS,
  type Probe,
  ROLES,
} from "../../scripts/docs/mqtt-catalogue.ts";
import { generateReferences, REFERENCE_DIR, REFERENCE_FILES, ROOT } from "../../scripts/docs/reference.ts";

type Json = Record<string, unknown>;

const ERROR = 0;
const WARNING = 1;
const parser = new Parser();

const show = (d: Diagnostic[]) =>
  d
    .map(
      (x) => `  [${["error", "warning", "info", "hint"][x.severity]}] ${x.code} at ${x.path.join("/")}: ${x.message}`,
    )
    .join("\n");

let fresh: Awaited<ReturnType<typeof generateReferences>>;
let doc: Json;

test.before(async () => {
  fresh = await generateReferences();
  doc = parse(fresh["asyncapi.yaml"]) as Json;
});

test("the generated AsyncAPI 3.0 document validates with @asyncapi/parser: no error, no warning", async () => {
  const { document, diagnostics } = await parser.parse(fresh["asyncapi.yaml"]);
  const bad = diagnostics.filter((d) => d.severity === ERROR || d.severity === WARNING);
  assert.equal(bad, [], `the parser reports:\n${show(bad)}`);
  assert.is(doc.asyncapi, "3.0.0");
  assert.ok(document, "the parser returned no document");
  assert.is(document.channels().length, CHANNELS.length);
  assert.is(document.operations().length, Object.keys(doc.operations as Json).length);
});

test("control: the parser reports a broken $ref and a missing required field in the same document", async () => {
  const broken = structuredClone(doc);
  const ops = broken.operations as Record<string, Json>;
  const first = Object.keys(ops)[0] as string;
  (ops[first] as Json).channel = { $ref: "#/channels/no-such-channel" };
  delete (broken.info as Json).version;
  const errors = (await parser.validate(JSON.stringify(broken))).filter((d) => d.severity === ERROR);
  assert.ok(
    errors.some((d) => d.message.includes("no-such-channel") || d.path.join("/").includes(first)),
    `no error names the broken reference:\n${show(errors)}`,
  );
  assert.ok(
    errors.some((d) => d.message.includes("version")),
    `no error names the missing info.version:\n${show(errors)}`,
  );
});

/** MQTT topic filter matching (`+` one level, `#` the rest). */
function matches(filter: string, topic: string): boolean {
  const f = filter.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true;
    if (i >= t.length || (f[i] !== "+" && f[i] !== t[i])) return false;
  }
  return f.length === t.length;
}

/** The channel address as a regex over concrete topics. */
const addressRegex = (address: string) =>
  new RegExp(`^${address.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(/\\?\{[a-z]+\\?\}/g, "[^/]+")}$`);

test("every topic the protocol's topics module builds is a channel (or a filter over channels)", () => {
  const channels = (doc.channels ?? {}) as Record<string, Json>;
  const concrete = CHANNELS.map((c) => c.topic(OWN_PROBE));
  for (const key of Object.keys(topics) as Array<keyof typeof topics>) {
    const channel = CHANNELS.find((c) => c.builder === key);
    if (channel) {
      const address = (channels[channel.id] as Json | undefined)?.address as string;
      assert.ok(address, `channel ${channel.id} (topics.${key}) missing from the document`);
      assert.is(address, addressOf(channel).address);
      assert.match(channel.topic(OWN_PROBE), addressRegex(address), `topics.${key} does not match ${address}`);
      continue;
    }
    const filter = FILTER_BUILDERS[key];
    assert.ok(
      filter,
      `topics.${key} is neither a channel nor a known filter: add it to scripts/docs/mqtt-catalogue.ts`,
    );
    const covered = concrete.filter((t) => matches(filter(OWN_PROBE as Probe), t));
    assert.ok(covered.length > 0, `topics.${key} (${filter(OWN_PROBE)}) matches no channel`);
  }
  // And every device channel the protocol knows (DEVICE_OUT, DEVICE_IN, cmd) is one of them.
  const documented = new Set(concrete.map((t) => parseTopic(t)?.channel).filter(Boolean));
  assert.equal([...documented].sort(), [...DEVICE_OUT, ...DEVICE_IN, "cmd"].sort());
});

/** Source files of the parts that speak MQTT. */
async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (e.name === "node_modules" || e.name === "dist") continue;
    const path = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await sources(path)));
    else if (/\.(ts|js|mjs)$/.test(e.name) && !e.name.endsWith(".test.ts")) out.push(path);
  }
  return out;
}

test("every zod schema encoded or decoded on MQTT is a message payload; every entry kind and command has its schema", async () => {
  const used = new Set<string>();
  for (const part of ["device/src", "cloud/src", "gateway/src", "ops/src", "ops/node-red"]) {
    for (const file of await sources(join(ROOT, part)).catch(() => [])) {
      const text = await readFile(file, "utf8");
      for (const m of text.matchAll(/\b(?:encode|decode)\(\s*([A-Z][A-Za-z]+Schema)\b/g)) used.add(m[1] as string);
    }
  }
  assert.ok(used.size >= 10, `found only ${[...used].join(", ")} — did the scan break?`);
  const payloads = new Set<z.ZodType>(CHANNELS.flatMap((c) => c.messages.map((m) => m.schema)));
  const components = ((doc.components as Json).schemas ?? {}) as Json;
  for (const name of used) {
    const schema = (protocol as Record<string, unknown>)[name] as z.ZodType | undefined;
    assert.ok(schema, `${name} is encoded or decoded but is not exported by @paylane/protocol`);
    assert.ok(payloads.has(schema), `${name} goes on the wire but no channel carries it as a payload`);
    const message = CHANNELS.flatMap((c) => c.messages).find((m) => m.schema === schema);
    assert.ok(message && components[message.schemaId], `${name} is not in components.schemas`);
  }
  for (const [kind, schema] of Object.entries(ENTRY_KINDS)) {
    assert.is(PART_SCHEMAS[`EntryBody.${kind}`], schema, `entry kind ${kind}`);
    assert.ok(components[`EntryBody.${kind}`], `EntryBody.${kind} missing`);
  }
  assert.is(PART_SCHEMAS.Entry, EntrySchema);
  const commandMessages = ((doc.channels as Record<string, Json>).command?.messages ?? {}) as Json;
  for (const name of Object.keys(COMMAND_ARGS)) {
    assert.ok(commandMessages[`command.${name}`], `command ${name} has no message`);
    assert.ok(components[`CommandArgs.${name}`], `CommandArgs.${name} missing`);
  }
  // Nothing dangles: every component schema is referenced from somewhere else in the document.
  const text = JSON.stringify({ ...doc, components: { ...(doc.components as Json), schemas: undefined } });
  const schemaText = JSON.stringify(components);
  for (const name of Object.keys(components)) {
    const ref = JSON.stringify(`#/components/schemas/${name}`);
    assert.ok(text.includes(ref) || schemaText.includes(ref), `components.schemas.${name} is never referenced`);
  }
});

test("operations agree with the gateway's ACL and with the protocol's direction of each channel", () => {
  const operations = doc.operations as Record<string, Json>;
  const identity = (role: string) => ROLES.find((r) => r.id === role)?.identity;
  for (const { role, action, channel } of operationsOf()) {
    const id = `${role}.${action}.${channel.id}`;
    assert.ok(operations[id], `operation ${id} missing`);
    const who = identity(role);
    assert.ok(who);
    const topic = channel.topic(OWN_PROBE);
    const decision = action === "send" ? checkPublish(who, topic, false) : checkSubscribe(who, topic);
    assert.ok(decision.allowed, `${id}: the ACL refuses it (${decision.allowed ? "" : decision.reason})`);
  }
  const kiosk = (action: string) =>
    Object.keys(operations)
      .filter((id) => id.startsWith(`kiosk.${action}.`))
      .map((id) => id.split(".")[2])
      .sort();
  // The kiosk sends what topics.ts calls DEVICE_OUT and receives DEVICE_IN and its commands,
  // plus the read-back of its own status and the cloud's status.
  assert.equal(kiosk("send"), [...DEVICE_OUT].sort());
  assert.equal(kiosk("receive"), [...DEVICE_IN, "command", "status", "cloud-status"].sort());
  // The events channel says bridges share it through `$share/{group}/…`: the ACL lets the bridge do so, not a kiosk.
  const shared = `$share/bridge/${topics.fleet("events", OWN_PROBE.site)}`;
  assert.ok(checkSubscribe(identity("cloud")!, shared).allowed, shared);
  assert.not.ok(checkSubscribe(identity("kiosk")!, shared).allowed, shared);
  // Viewers publish nothing; nobody but the kiosk and the cloud touches events (member ids are in bodies).
  assert.not.ok(Object.keys(operations).some((id) => id.startsWith("viewer.send.")));
  assert.equal(
    Object.keys(operations)
      .filter((id) => id.endsWith(".events"))
      .sort(),
    ["cloud.receive.events", "kiosk.send.events"],
  );
});

test("retain rules: a channel documented as never retained refuses a retained publish for every role", () => {
  for (const channel of CHANNELS) {
    for (const role of ROLES) {
      const a = accessOf(role.id, channel);
      if (!a.publish) continue;
      if (channel.retained === "never") assert.not.ok(a.retain, `${role.id} may retain on ${channel.id}`);
      else assert.ok(a.retain, `${role.id} publishes ${channel.id} (retained: ${channel.retained}) but may not retain`);
    }
  }
  const channels = doc.channels as Record<string, Json>;
  const access = (channels.events as Json)["x-paylane-access"] as Record<string, { publish: boolean }>;
  assert.ok(access.kiosk?.publish);
  assert.not.ok(access.viewer?.publish);
});

test("the committed docs/reference/ equals a fresh generation (npm run docs:reference)", async () => {
  for (const file of REFERENCE_FILES) {
    const committed = await readFile(join(ROOT, REFERENCE_DIR, file), "utf8").catch(() => "");
    if (committed === fresh[file]) continue;
    const a = committed.split("\n");
    const b = fresh[file].split("\n");
    const line = a.findIndex((l, i) => l !== b[i]);
    assert.unreachable(
      `${REFERENCE_DIR}/${file} differs from a fresh generation at line ${line + 1}:\n  committed: ${a[line]}\n  fresh:     ${b[line]}\nrun npm run docs:reference and commit the result`,
    );
  }
  assert.ok(fresh["mqtt-api.md"].includes("generated by npm run docs:reference — do not edit"));
  assert.ok(fresh["asyncapi.yaml"].startsWith("# generated by npm run docs:reference — do not edit"));
  // The page renders the document: every channel's address is on it.
  for (const c of Object.values(buildAsyncApi().channels as Record<string, Json>)) {
    assert.ok(fresh["mqtt-api.md"].includes(`\`${c.address}\``), `${c.address} missing from mqtt-api.md`);
  }
});

test.run();
