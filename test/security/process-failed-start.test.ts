/**
 * Issue 12, process hygiene: a start that fails late — after the journal,
 * the reader, the database or the MQTT bridge are already open — exits
 * non-zero within a bound, with exactly one line on stderr naming the cause
 * (no stack), instead of a process left running with only `exitCode` set.
 * For paylane-device, paylane-cloud and `npm start`'s runner.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { freePortRun, PrivateMosquitto } from "../support/private-mosquitto.ts";
import { PG_URL } from "../support/site.ts";

const root = join(import.meta.dirname, "..", "..");
const it = suite("a failed start");

/** How long a failed start may take to end the process (PGlite and tsx start-up included). */
const EXIT_BOUND_MS = 60_000;

interface Ended {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a service's entry point; a process still running after the bound is killed and reported. */
function runUntilExit(script: string, args: string[], env: Record<string, string>): Promise<Ended> {
  const started = Date.now();
  const child = spawn(process.execPath, ["--import", "tsx", join(root, script), ...args], {
    cwd: root,
    env: { ...process.env, LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
    // its own process group, so that a runner left running is killed with everything it spawned
    detached: true,
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => {
    stdout += d;
  });
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      process.kill(-child.pid!, "SIGKILL");
      reject(
        new Error(
          `${script} was still running ${EXIT_BOUND_MS / 1000} s after a failed start\nstderr:\n${stderr}\nstdout (tail):\n${stdout.slice(-2000)}`,
        ),
      );
    }, EXIT_BOUND_MS);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      // the streams may still hold the last bytes
      setImmediate(() => resolve({ code, signal, stdout, stderr, ms: Date.now() - started }));
    });
  });
}

function assertOneLine(ended: Ended, pattern: RegExp): void {
  const lines = ended.stderr.split("\n").filter((l) => l.trim() !== "");
  assert.is(lines.length, 1, `exactly one line on stderr, got:\n${ended.stderr}`);
  assert.match(lines[0]!, pattern);
  assert.not.match(ended.stderr, /^\s+at /m, "no stack trace");
  assert.not.match(ended.stdout, /^\s+at /m, "no stack trace on stdout either");
}

async function holdPort(): Promise<{ port: number; server: Server }> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return { port: (server.address() as { port: number }).port, server };
}

it("paylane-device: the HTTP port is taken after the journal and the reader are open → exit 1, one line", async () => {
  const dir = await mkdtemp(join(tmpdir(), "paylane-failed-start-"));
  const held = await holdPort();
  try {
    const configPath = join(dir, "kiosk.json");
    await writeFile(
      configPath,
      JSON.stringify({
        site: "s1",
        device: "k1",
        secret: randomBytes(18).toString("base64url"),
        // nothing listens on port 1: the uplink keeps trying in the background, as it does offline
        mqttUrl: "mqtt://127.0.0.1:1",
        cloudUrl: "http://127.0.0.1:1",
        dataDir: join(dir, "data"),
        http: { host: "127.0.0.1", port: held.port },
        reader: { type: "pn532-simulator" },
        printer: { type: "simulator" },
      }),
    );
    const ended = await runUntilExit("device/src/main.ts", ["--config", configPath], {});
    console.log(`  paylane-device exited ${ended.code} after ${ended.ms} ms: ${ended.stderr.trim()}`);
    assert.is(ended.code, 1);
    assert.match(ended.stdout, /PN532 initialised/, "the failure came late: the reader was already up");
    assertOneLine(
      ended,
      new RegExp(
        `^paylane-device: failed to start: port ${held.port} on 127\\.0\\.0\\.1 is already in use; set http\\.port`,
      ),
    );
  } finally {
    held.server.close();
    await rm(dir, { recursive: true, force: true });
  }
});

it("paylane-cloud: CLOUD_PORT is taken after the database and the MQTT bridge are up → exit 1, one line", async () => {
  const dir = await mkdtemp(join(tmpdir(), "paylane-failed-start-"));
  const schema = `t_${randomBytes(6).toString("hex")}`;
  const broker = new PrivateMosquitto(dir);
  await broker.start();
  const held = await holdPort();
  try {
    const registryPath = join(dir, "registry.json");
    await writeFile(registryPath, JSON.stringify({ version: 1, devices: [], services: [] }));
    const ended = await runUntilExit("cloud/src/main.ts", [], {
      CLOUD_PORT: String(held.port),
      DATABASE_URL: PG_URL,
      DATABASE_SCHEMA: schema,
      MQTT_URL: broker.url,
      REGISTRY_PATH: registryPath,
      REDIS_URL: "",
    });
    console.log(`  paylane-cloud exited ${ended.code} after ${ended.ms} ms: ${ended.stderr.trim()}`);
    assert.is(ended.code, 1);
    assert.match(ended.stdout, /bridge connected to broker/, "the failure came late: the bridge was already up");
    assertOneLine(
      ended,
      new RegExp(
        `^paylane-cloud: failed to start: port ${held.port} on 127\\.0\\.0\\.1 is already in use; set CLOUD_PORT`,
      ),
    );
  } finally {
    held.server.close();
    await broker.kill();
    const client = new pg.Client({ connectionString: PG_URL });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await client.end();
    await rm(dir, { recursive: true, force: true });
  }
});

it("paylane-cloud: an unreachable DATABASE_URL → exit 1, one line naming DATABASE_URL", async () => {
  const dir = await mkdtemp(join(tmpdir(), "paylane-failed-start-"));
  try {
    const registryPath = join(dir, "registry.json");
    await writeFile(registryPath, JSON.stringify({ version: 1, devices: [], services: [] }));
    const ended = await runUntilExit("cloud/src/main.ts", [], {
      CLOUD_PORT: "0",
      DATABASE_URL: "postgres://paylane:hunter2@127.0.0.1:1/x",
      MQTT_URL: "mqtt://127.0.0.1:1",
      REGISTRY_PATH: registryPath,
      REDIS_URL: "",
    });
    console.log(`  paylane-cloud exited ${ended.code} after ${ended.ms} ms: ${ended.stderr.trim()}`);
    assert.is(ended.code, 1);
    assertOneLine(ended, /^paylane-cloud: failed to start: .*DATABASE_URL.*ECONNREFUSED/);
    assert.not.match(ended.stderr + ended.stdout, /hunter2/, "the database password is never echoed");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

it("npm start: a part that cannot start → exit 1, one line naming what failed, nothing left running", async () => {
  const dir = await mkdtemp(join(tmpdir(), "paylane-failed-start-"));
  const base = await freePortRun(5);
  try {
    const ended = await runUntilExit("scripts/site.ts", [], {
      LOG_LEVEL: "warn",
      PAYLANE_DATA: dir,
      MQTT_PORT: String(base),
      GATEWAY_HTTP_PORT: String(base + 1),
      CLOUD_PORT: String(base + 2),
      KIOSK_PORT_BASE: String(base + 3),
      MQTT_URL: "",
      REDIS_URL: "",
      // the gateway starts; the cloud cannot reach its database
      DATABASE_URL: "postgres://127.0.0.1:1/x",
    });
    console.log(`  npm start exited ${ended.code} after ${ended.ms} ms: ${ended.stderr.trim()}`);
    assert.is(ended.code, 1);
    assertOneLine(ended, /^paylane-cloud: failed to start: .*DATABASE_URL/);
    // the gateway it had started is gone too: its port is free again
    const again = createServer();
    await new Promise<void>((resolve, reject) => {
      again.once("error", reject);
      again.listen(base, "127.0.0.1", () => resolve());
    });
    again.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

it.run();
