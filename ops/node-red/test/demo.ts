/**
 * Try the nodes by hand (docs/node-red.md): starts the aedes gateway with a
 * site `s1`, kiosk `k1` and an operator, prepares a Node-RED user directory
 * with this package linked in (as `npm install <path>` does) and the example
 * flow pointed at this broker and at a webhook receiver this script runs,
 * then takes k1 offline (its connection dropped, so the gateway publishes its
 * Will) when you press Enter. Ctrl-C ends it.
 *
 *   npx tsx ops/node-red/test/demo.ts <node-red user dir> [mqtt port]
 *   npx node-red -u <node-red user dir>          (in another terminal)
 */
import { mkdir, readFile, symlink, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { topics } from "@paylane/protocol";
import { address, birth, TestBroker, will } from "./support.ts";

const [userDirArg, portArg] = process.argv.slice(2);
if (!userDirArg) {
  console.error("usage: npx tsx ops/node-red/test/demo.ts <node-red user dir> [mqtt port]");
  process.exit(2);
}
const userDir = resolve(userDirArg);
const packageDir = join(import.meta.dirname, "..");

const broker = new TestBroker();
await broker.start(["k1"], Number(portArg ?? 0));
const webhook = createServer((req, res) => {
  let body = "";
  req.on("data", (d) => {
    body += d;
  });
  req.on("end", () => {
    console.log(`webhook received ${req.method} ${req.url} ${req.headers["content-type"]}\n${body}`);
    res.writeHead(204).end();
  });
});
await new Promise<void>((done) => webhook.listen(0, "127.0.0.1", done));
const webhookUrl = `http://127.0.0.1:${(webhook.address() as AddressInfo).port}/hooks/paylane`;

await mkdir(join(userDir, "node_modules"), { recursive: true });
await symlink(packageDir, join(userDir, "node_modules", "node-red-contrib-paylane"), "dir").catch((err) => {
  if (err.code !== "EEXIST") throw err;
});
const flow = JSON.parse(await readFile(join(packageDir, "examples", "kiosk-offline-webhook.json"), "utf8"));
const config = flow.find((n: { type: string }) => n.type === "paylane-broker");
config.url = broker.url;
flow.find((n: { type: string }) => n.type === "http request").url = webhookUrl;
await writeFile(join(userDir, "flows.json"), JSON.stringify(flow, null, 2));
// Node-RED encrypts this file with its own key the first time it saves credentials.
await writeFile(join(userDir, "flows_cred.json"), JSON.stringify({ [config.id]: broker.operator }), { mode: 0o600 });

const kiosk = await broker.kiosk("k1", { will: will("k1", 1) });
await kiosk.publishAsync(topics.status(address("k1")), birth(1), { qos: 1, retain: true });
console.log(`broker ${broker.url}, operator ${broker.operator.username}; webhook ${webhookUrl}`);
console.log(`Node-RED user dir ${userDir} is ready: npx node-red -u ${userDir}`);
console.log("kiosk s1/k1 is online; press Enter to drop its connection");

const input = createInterface({ input: process.stdin });
input.once("line", () => {
  kiosk.stream.destroy();
  console.log("k1's connection dropped");
});
process.on("SIGINT", () => {
  input.close();
  webhook.close();
  broker.stop().then(() => process.exit(0));
});
