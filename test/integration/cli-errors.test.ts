/**
 * Issue 13, "every command a person runs": a mistake on the command line, in
 * the environment or in the config file is one line on stderr that names the
 * flag, variable or key and says how to get help, a non-zero exit (2: nothing
 * was started), and nothing on stdout. The real bins run as child processes.
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";

const root = join(import.meta.dirname, "..", "..");
/** Only a watchdog against a hung child: every case here exits by itself. */
const WATCHDOG_MS = 60_000;

interface Ended {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `file` with `args` in an environment holding only PATH, HOME and `env`. */
function run(file: string, args: string[], env: Record<string, string> = {}): Promise<Ended> {
  const child = spawn(process.execPath, ["--import", "tsx", file, ...args], {
    cwd: root,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const watchdog = setTimeout(() => child.kill("SIGKILL"), WATCHDOG_MS);
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => {
    stdout += d;
  });
  child.stderr.setEncoding("utf8").on("data", (d: string) => {
    stderr += d;
  });
  return new Promise((resolve) =>
    child.once("close", (code) => {
      clearTimeout(watchdog);
      resolve({ code, stdout, stderr });
    }),
  );
}

/** Exactly one line on stderr, matching every pattern; exit 2; no stack; nothing started (stdout empty). */
function assertRefused(ended: Ended, ...patterns: (string | RegExp)[]): void {
  const lines = ended.stderr.split("\n").filter((l) => l.trim() !== "");
  assert.is(lines.length, 1, `one line on stderr, got:\n${ended.stderr}`);
  for (const p of patterns) assert.match(lines[0]!, p);
  assert.not.match(ended.stderr, /^\s+at /m, "no stack trace");
  assert.is(ended.code, 2, ended.stderr);
  assert.is(ended.stdout, "", "nothing started, nothing logged");
  console.log(`  ${lines[0]}`);
}

let dir = "";
test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), "paylane-cli-errors-"));
});
test.after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A kiosk config that would start (an offline kiosk: nothing listens on port 9), plus `extra`. */
async function kioskConfig(name: string, extra: Record<string, unknown>): Promise<string> {
  const path = join(dir, name);
  const config = {
    site: "cli",
    device: "k1",
    secret: "cli-errors-secret-0123456",
    mqttUrl: "mqtt://127.0.0.1:9",
    cloudUrl: "http://127.0.0.1:9",
    dataDir: join(dir, "data"),
    http: { host: "127.0.0.1", port: 0 },
    reader: { type: "pn532-simulator" },
  };
  await writeFile(path, JSON.stringify({ ...config, ...extra }));
  return path;
}

// paylane-device

test("paylane-device: an unknown flag is named, with where help is", async () => {
  assertRefused(
    await run("device/src/main.ts", ["--config", "kiosk.json", "--bogus"]),
    /^paylane-device: failed to start: unknown option '--bogus'/,
    "paylane-device --help",
  );
});

test("paylane-device: a bad LOG_LEVEL is named", async () => {
  const config = await kioskConfig("env.json", {});
  assertRefused(
    await run("device/src/main.ts", ["--config", config], { LOG_LEVEL: "loud" }),
    /^paylane-device: failed to start: LOG_LEVEL: expected one of fatal, error, warn, info/,
  );
});

test("paylane-device: an unknown key in kiosk.json is refused, named with its file", async () => {
  const config = await kioskConfig("unknown-key.json", { readre: { type: "pn532" } });
  assertRefused(
    await run("device/src/main.ts", ["--config", config]),
    /^paylane-device: failed to start: /,
    config,
    /: unknown key "readre"$/,
  );
});

test("paylane-device: an unknown key inside a section is refused with its path", async () => {
  const config = await kioskConfig("unknown-nested.json", { http: { host: "127.0.0.1", port: 0, tls: true } });
  assertRefused(await run("device/src/main.ts", ["--config", config]), /http: unknown key "tls"/, config);
});

test("paylane-device: a bad value in kiosk.json names the field", async () => {
  const config = await kioskConfig("bad-value.json", { http: { host: "127.0.0.1", port: 70_000 } });
  assertRefused(await run("device/src/main.ts", ["--config", config]), /http\.port: expected a TCP port/, config);
});

// paylane-gateway

test("paylane-gateway: an unknown flag is named, with where help is", async () => {
  assertRefused(
    await run("gateway/src/main.ts", ["--port", "1883"]),
    /^paylane-gateway: failed to start: unknown option '--port'/,
    "paylane-gateway --help",
  );
});

test("paylane-gateway: MQTT_PORT=abc is named", async () => {
  assertRefused(
    await run("gateway/src/main.ts", [], { REGISTRY_PATH: join(dir, "registry.json"), MQTT_PORT: "abc" }),
    /^paylane-gateway: failed to start: MQTT_PORT: expected a TCP port/,
  );
});

test("paylane-gateway: a limit out of range is named with its bounds", async () => {
  assertRefused(
    await run("gateway/src/main.ts", [], { REGISTRY_PATH: join(dir, "registry.json"), MQTT_CONNECT_WINDOW_S: "0" }),
    /^paylane-gateway: failed to start: MQTT_CONNECT_WINDOW_S: expected an integer from 1 to 3600$/,
  );
});

// paylane-cloud

test("paylane-cloud: an unknown flag is named, with where help is", async () => {
  assertRefused(
    await run("cloud/src/main.ts", ["--databse-url", "postgres://x"]),
    /^paylane-cloud: failed to start: unknown option '--databse-url'/,
    "paylane-cloud --help",
  );
});

test("paylane-cloud: CLOUD_PORT=abc is named", async () => {
  assertRefused(
    await run("cloud/src/main.ts", [], { REGISTRY_PATH: join(dir, "registry.json"), CLOUD_PORT: "abc" }),
    /^paylane-cloud: failed to start: CLOUD_PORT: expected a TCP port, an integer from 0 to 65535$/,
  );
});

test("paylane-cloud: SITE_TIMEZONE=Mars/Olympus is refused with the IANA advice", async () => {
  assertRefused(
    await run("cloud/src/main.ts", [], { REGISTRY_PATH: join(dir, "registry.json"), SITE_TIMEZONE: "Mars/Olympus" }),
    "paylane-cloud: failed to start: SITE_TIMEZONE: unknown time zone 'Mars/Olympus' (use an IANA name such as Europe/Berlin)",
  );
});

test("paylane-cloud: a missing REGISTRY_PATH is named", async () => {
  assertRefused(await run("cloud/src/main.ts", []), /^paylane-cloud: failed to start: REGISTRY_PATH: required/);
});

// npm run tap

test("tap: an unknown flag is named, with where help is", async () => {
  assertRefused(
    await run("scripts/tap.ts", ["--uid", "04A2B3C4", "--card", "x"]),
    /^tap: unknown option '--card'/,
    "npm run tap -- --help",
  );
});

test("tap: a bad flag value is named with what is expected", async () => {
  assertRefused(
    await run("scripts/tap.ts", ["--uid", "04A2B3C4", "--url", "127.0.0.1:8081"]),
    /^tap: option '--url <url>' argument '127\.0\.0\.1:8081' is invalid\. expected an http:\/\/ URL/,
  );
});

test("tap: PAYLANE_DATA without a running site is named", async () => {
  const empty = join(dir, "no-site");
  assertRefused(
    await run("scripts/tap.ts", ["--uid", "04A2B3C4"], { PAYLANE_DATA: empty }),
    `tap: PAYLANE_DATA: no running site in ${empty} (no site.json)`,
  );
});

// paylane-ops

test("paylane-ops: an unknown flag is named, with where help is", async () => {
  assertRefused(
    await run("ops/src/main.ts", ["watch", "--bogus"]),
    /^paylane-ops: unknown option '--bogus'/,
    "paylane-ops --help",
  );
});

test("paylane-ops: a bad command argument is named before anything connects", async () => {
  assertRefused(
    await run("ops/src/main.ts", ["send", "demo/k1", "unlock", "--arg", "seconds=0"], {
      MQTT_URL: "mqtt://127.0.0.1:9",
    }),
    /^paylane-ops: --arg seconds: /,
  );
});

test("paylane-ops: an unknown setting is named with the known ones", async () => {
  assertRefused(
    await run("ops/src/main.ts", ["config", "set", "demo/k1", "idleTimeout=30"], { MQTT_URL: "mqtt://127.0.0.1:9" }),
    /^paylane-ops: idleTimeout: unknown setting; known: idleTimeoutSeconds, /,
  );
});

test.run();
