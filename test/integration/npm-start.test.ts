/**
 * `npm start` as a new user runs it: the whole site on embedded defaults
 * (aedes, PGlite, in-process presence, two kiosks) as separate processes,
 * driven with `npm run tap`, then stopped with Ctrl-C. And the clear error
 * when a port is taken (on this machine Mosquitto already holds 1883).
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { kioskPost } from "../support/kiosk-api.ts";
import { freePortRun } from "../support/private-mosquitto.ts";

const root = join(import.meta.dirname, "..", "..");
const run = promisify(execFile);
const it = suite("npm start");

function startSite(env: Record<string, string>): {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
} {
  const child = spawn(process.execPath, ["--import", "tsx", join(root, "scripts/site.ts")], {
    cwd: root,
    env: { ...process.env, ...env, LOG_LEVEL: "warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (d) => {
    out += d;
  });
  child.stderr?.on("data", (d) => {
    out += d;
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { child, output: () => out, exited };
}

/** Resolves when `text` appears in the output, or rejects when the process exits first. */
function waitForOutput(site: ReturnType<typeof startSite>, text: string, timeoutMs = 90_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no "${text}" within ${timeoutMs} ms:\n${site.output()}`)),
      timeoutMs,
    );
    const check = () => {
      if (site.output().includes(text)) {
        clearTimeout(timer);
        resolve();
      }
    };
    site.child.stdout?.on("data", check);
    site.exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`site exited before "${text}":\n${site.output()}`));
    });
    check();
  });
}

it("a taken MQTT port is named, with the variable that moves it and the MQTT_URL alternative", async () => {
  const blocker: Server = createServer();
  await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", () => r()));
  const port = (blocker.address() as { port: number }).port;
  const dir = await mkdtemp(join(tmpdir(), "paylane-start-"));
  try {
    const site = startSite({ MQTT_PORT: String(port), PAYLANE_DATA: dir });
    assert.is(await site.exited, 1);
    assert.match(site.output(), new RegExp(`port ${port} on|port ${port} is already in use`));
    assert.match(site.output(), /MQTT_PORT/);
    assert.match(site.output(), /MQTT_URL=mqtt:\/\/127\.0\.0\.1:1883/);
  } finally {
    blocker.close();
    await rm(dir, { recursive: true, force: true });
  }
});

it("runs a whole site on embedded defaults; a tap from the terminal reaches the cloud; Ctrl-C stops it", async () => {
  const dir = await mkdtemp(join(tmpdir(), "paylane-start-"));
  // One run of five ports below the ephemeral range: MQTT, gateway HTTP, cloud, kiosks k1 and k2.
  const base = await freePortRun(5);
  const ports = { MQTT_PORT: base, GATEWAY_HTTP_PORT: base + 1, CLOUD_PORT: base + 2 };
  const kioskBase = base + 3;
  const env = Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, String(v)]));
  // Drop any external services from the environment: this is the embedded site.
  const site = startSite({
    ...env,
    KIOSK_PORT_BASE: String(kioskBase),
    PAYLANE_DATA: dir,
    MQTT_URL: "",
    DATABASE_URL: "",
    REDIS_URL: "",
  });
  try {
    await waitForOutput(site, "PayLane site is running");
    assert.match(site.output(), /04A2B3C4\s+Ada Lovelace/, "prints the demo members' card UIDs");
    assert.match(site.output(), new RegExp(`Kiosk k1\\s+http://127\\.0\\.0\\.1:${kioskBase}/`));

    const tap = await run(
      process.execPath,
      ["--import", "tsx", "scripts/tap.ts", "--kiosk", "k1", "--uid", "04A2B3C4"],
      {
        cwd: root,
        env: { ...process.env, PAYLANE_DATA: dir },
      },
    );
    assert.match(tap.stdout, /k1: Welcome, Ada Lovelace/);

    const cloud = `http://127.0.0.1:${ports.CLOUD_PORT}`;
    // operator reads need the token npm start wrote (never printed), /metrics its own
    const token = (await readFile(join(dir, "operator-token"), "utf8")).trim();
    const asOperator = { headers: { authorization: `Bearer ${token}` } };
    const metricsToken = (await readFile(join(dir, "metrics-token"), "utf8")).trim();
    // Across processes the only thing to watch is the API; poll it briefly.
    let items: Array<{ memberName: string; device: string }> = [];
    for (let i = 0; i < 100 && items.length === 0; i++) {
      items = ((await (await fetch(`${cloud}/api/v1/checkins`, asOperator)).json()) as { items: typeof items }).items;
      if (items.length === 0) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(
      items.map((c) => [c.memberName, c.device]),
      [["Ada Lovelace", "k1"]],
    );
    const devices = (await (await fetch(`${cloud}/api/v1/devices`, asOperator)).json()) as {
      items: Array<{ device: string; state: string }>;
    };
    assert.equal(
      devices.items.map((d) => [d.device, d.state]),
      [
        ["k1", "online"],
        ["k2", "online"],
      ],
    );
    const health = await fetch(`${cloud}/healthz`);
    assert.is(health.status, 200);
    assert.is((await fetch(`${cloud}/api/v1/checkins`)).status, 401, "no operator reads without a token");
    assert.match(
      await (await fetch(`${cloud}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } })).text(),
      /paylane_bridge_entries_total\{outcome="applied"\} 1/,
    );

    // a coffee from Ada's wallet on the embedded site (PGlite), and the ledger row through the operator API
    // as a tool on the kiosk: with the local API token k1 wrote to its data folder
    const post = (path: string, body: unknown) =>
      kioskPost(kioskBase, join(dir, "kiosks", "k1"), path, body).then(
        (r) => r.json() as Promise<Record<string, unknown>>,
      );
    const session = await post("/api/payments", { itemId: "coffee" });
    assert.is(session.state, "awaiting-card", JSON.stringify(session));
    const paid = await post("/api/sim/tap", { uid: "04A2B3C4" });
    assert.equal([paid.outcome, paid.authorization, paid.balance], ["approved", "online", 2250]);
    const ledger = (await (await fetch(`${cloud}/api/v1/payments?site=demo`, asOperator)).json()) as {
      items: Array<{ memberId: string; amount: number }>;
    };
    assert.equal(
      ledger.items.map((e) => [e.memberId, e.amount]),
      [["m-ada", -250]],
    );
    assert.not.ok(site.output().includes(token.split(".")[2]!), "the operator token is never printed");
  } finally {
    site.child.kill("SIGINT");
    const code = await site.exited;
    await rm(dir, { recursive: true, force: true });
    assert.is(code, 0, `site exited cleanly on Ctrl-C:\n${site.output()}`);
  }
});

it.run();
