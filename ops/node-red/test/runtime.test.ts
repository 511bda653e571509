/**
 * A real Node-RED runtime (require("node-red"), as `node-red` runs it) with
 * this package installed into its userDir the way `npm install <path>` does
 * (a link in userDir/node_modules), running the example flow
 * examples/kiosk-offline-webhook.json with its broker and webhook pointed at
 * the test's own: a kiosk drops off the gateway and the webhook receives the POST.
 */
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { topics } from "@paylane/protocol";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { address, birth, SITE, TestBroker, will } from "./support.ts";

const require = createRequire(import.meta.url);
// biome-ignore lint/suspicious/noExplicitAny: node-red ships no types
const RED: any = require("node-red");
const PACKAGE_DIR = join(import.meta.dirname, "..");
const EXAMPLE = join(PACKAGE_DIR, "examples", "kiosk-offline-webhook.json");

const broker = new TestBroker();
const posts: { path: string; type: string; body: unknown }[] = [];
let webhook: Server;
let userDir = "";

type FlowNode = { id: string; type: string; [k: string]: unknown };

test.before(async () => {
  await broker.start(["k1"]);
  webhook = createServer((req: IncomingMessage, res) => {
    let text = "";
    req.on("data", (d) => {
      text += d;
    });
    req.on("end", () => {
      posts.push({ path: req.url ?? "", type: req.headers["content-type"] ?? "", body: JSON.parse(text) });
      broker.signal.notify();
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => webhook.listen(0, "127.0.0.1", resolve));
});

test.after(async () => {
  await RED.stop();
  await broker.stop();
  await new Promise((resolve) => webhook.close(resolve));
  if (userDir) await rm(userDir, { recursive: true, force: true });
});

test("the runtime loads the nodes and the example flow posts to the webhook when a kiosk goes offline", async () => {
  // The kiosk is online before Node-RED starts: that is the baseline, not a change.
  const kiosk = await broker.kiosk("k1", { will: will("k1", 4) });
  await kiosk.publishAsync(topics.status(address("k1")), birth(4), { qos: 1, retain: true });

  userDir = await mkdtemp(join(tmpdir(), "paylane-node-red-"));
  await mkdir(join(userDir, "node_modules"));
  await symlink(PACKAGE_DIR, join(userDir, "node_modules", "node-red-contrib-paylane"), "dir");
  const flow: FlowNode[] = JSON.parse(await readFile(EXAMPLE, "utf8"));
  const config = flow.find((n) => n.type === "paylane-broker")!;
  const post = flow.find((n) => n.type === "http request")!;
  const status = flow.find((n) => n.type === "paylane status")!;
  config.url = broker.url;
  const { port } = webhook.address() as AddressInfo;
  post.url = `http://127.0.0.1:${port}/hooks/paylane`;
  await writeFile(join(userDir, "flows.json"), JSON.stringify(flow));
  // credentialSecret false: the credentials file is plain JSON, as the editor would have saved it.
  await writeFile(join(userDir, "flows_cred.json"), JSON.stringify({ [config.id]: { ...broker.operator } }));

  RED.init(createServer(), {
    userDir,
    flowFile: "flows.json",
    credentialSecret: false,
    httpAdminRoot: false,
    httpNodeRoot: false,
    logging: { console: { level: process.env.TEST_LOG_LEVEL === "debug" ? "info" : "off" } },
    externalModules: { autoInstall: false },
    telemetry: { enabled: false },
  });
  const started = new Promise<void>((resolve) => RED.events.once("flows:started", () => resolve()));
  await RED.start();
  await started;

  const info = RED.nodes.getModuleInfo("node-red-contrib-paylane");
  assert.ok(info, "the package is among the runtime's modules");
  assert.equal(
    info.nodes.map((n: { name: string; types: string[]; err?: unknown }) => [n.name, n.types, n.err ?? null]),
    [
      ["paylane-broker", ["paylane-broker"], null],
      ["paylane-status", ["paylane status"], null],
      ["paylane-events", ["paylane events"], null],
      ["paylane-command", ["paylane command"], null],
      ["paylane-alert", ["paylane alert"], null],
    ],
  );

  // What the editor gets for each node: its registration, edit dialog and help text.
  for (const { name, types } of info.nodes as { name: string; types: string[] }[]) {
    const html: string = RED.nodes.getNodeConfig(`node-red-contrib-paylane/${name}`, "en-US");
    const type = types[0]!;
    assert.ok(html.includes(`RED.nodes.registerType("${type}"`), `${name} registers ${type}`);
    assert.ok(html.includes(`data-template-name="${type}"`), `${name} has an edit dialog`);
    assert.ok(html.includes(`data-help-name="${type}"`), `${name} has help text`);
    assert.ok(html.includes(type === "paylane-broker" ? 'category: "config"' : 'category: "paylane"'), name);
  }

  await RED.nodes.getNode(status.id).subscribed;
  assert.is(posts.length, 0, "the kiosk online at start is no webhook");

  // The kiosk's connection dies: the gateway publishes its Will.
  kiosk.stream.destroy();
  await broker.signal.until(() => posts.length >= 1, "the webhook POST", 20_000);
  const [hook] = posts;
  assert.is(hook!.path, "/hooks/paylane");
  assert.match(hook!.type, /^application\/json/);
  const body = hook!.body as { text: string; kiosk: Record<string, unknown> };
  assert.match(body.text, new RegExp(`^Kiosk ${SITE}/k1 went offline \\(connection-lost\\) at `));
  assert.equal(
    { ...body.kiosk, at: undefined },
    { site: SITE, device: "k1", state: "offline", session: 4, cause: "connection-lost", at: undefined },
  );
});

test.run();
