/**
 * Issue 12: a kiosk config without `reader` fell back to the PN532 simulator,
 * which turns `POST /api/sim/tap` on — a forgotten line made any local caller
 * a card reader. Now the reader is required: `paylane-device` refuses to
 * start with one line naming `reader.type` and both choices; the simulator
 * runs only when configured, and says so at start; with a real PN532
 * configured there is no `/api/sim/*`.
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type DeviceConfigInput, KioskDaemon, parseDeviceConfig } from "@paylane/device";
import { pino } from "pino";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { kioskPost } from "../support/kiosk-api.ts";

const root = join(import.meta.dirname, "..", "..");

/** An offline kiosk (nothing listens on port 9) in `dir`, with or without a reader. */
function kioskConfig(dir: string, reader?: DeviceConfigInput["reader"]): Record<string, unknown> {
  return {
    site: "sec",
    device: "k1",
    secret: "reader-required-secret-0123",
    mqttUrl: "mqtt://127.0.0.1:9",
    cloudUrl: "http://127.0.0.1:9",
    dataDir: join(dir, "data"),
    http: { host: "127.0.0.1", port: 0 },
    ...(reader ? { reader } : {}),
  };
}

/** Runs `paylane-device --config <path>` until it exits (at most `ms`, then it is killed and that is a failure). */
function runDevice(configPath: string, ms = 30_000): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", "device/src/main.ts", "--config", configPath], {
      cwd: root,
      env: { ...process.env, LOG_LEVEL: "info" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      output += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      output += d;
    });
    const timer = setTimeout(() => {
      output += `\n[test] still running after ${ms} ms: killed\n`;
      child.kill("SIGKILL");
    }, ms);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

test("a config without reader: the daemon exits non-zero with one line naming reader.type and both choices", async () => {
  const dir = await mkdtemp(join(tmpdir(), "paylane-reader-"));
  try {
    const configPath = join(dir, "k1.json");
    await writeFile(configPath, JSON.stringify(kioskConfig(dir)));
    const { code, output } = await runDevice(configPath);
    console.log(`  exit code ${code}: ${output.trim()}`);
    assert.ok(code !== null && code !== 0, `exit code ${code}:\n${output}`);
    const lines = output.split("\n").filter((l) => l.includes("reader.type"));
    assert.is(lines.length, 1, output);
    assert.match(lines[0]!, /pn532\\?".*pn532-simulator/, "names both choices");
    assert.ok(lines[0]!.includes(configPath), "names the config file");
    assert.not.match(output, /kiosk daemon started/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/** Log lines of a daemon, as text. */
function capture(): { logger: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  return { logger: pino({ level: "info" }, { write: (l: string) => void lines.push(l) }), lines };
}

test("with a real PN532 configured there is no /api/sim/tap, and no simulator line at start", async () => {
  const dir = await mkdtemp(join(tmpdir(), "paylane-reader-"));
  const log = capture();
  // no PN532 at that path: the reader is "disconnected", the daemon runs (booking codes still work)
  const config = parseDeviceConfig(kioskConfig(dir, { type: "pn532", path: "/nonexistent/paylane-reader" }));
  const daemon = new KioskDaemon({ config, logger: log.logger });
  await daemon.start();
  try {
    const tap = await kioskPost(daemon.port, config.dataDir, "/api/sim/tap", { uid: "04A2B3C4" });
    assert.is(tap.status, 404);
    assert.is(tap.headers.get("content-type"), "application/problem+json");
    assert.is((await daemon.state()).reader.simulated, false);
    assert.is((await daemon.journal.stats()).lastSeq, 0, "nothing journaled");
    assert.not.ok(log.lines.join("").includes("pn532-simulator"), "no simulator announced");
  } finally {
    await daemon.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

test("the simulator runs only when configured explicitly, and the start says so in one warning", async () => {
  const dir = await mkdtemp(join(tmpdir(), "paylane-reader-"));
  const log = capture();
  const config = parseDeviceConfig(kioskConfig(dir, { type: "pn532-simulator", pollIntervalMs: 5 }));
  const daemon = new KioskDaemon({ config, logger: log.logger });
  await daemon.start();
  try {
    const lines = log.lines.filter((l) => l.includes("pn532-simulator"));
    assert.is(lines.length, 1, log.lines.join(""));
    assert.is((JSON.parse(lines[0]!) as { level: number }).level, 40, "a warning");
    assert.match(lines[0]!, /\/api\/sim\/tap/);
    assert.is((await daemon.state()).reader.simulated, true);
    const tap = await kioskPost(daemon.port, config.dataDir, "/api/sim/tap", { uid: "zz" });
    assert.is(tap.status, 400, "the simulated reader answers (and validates the UID)");
  } finally {
    await daemon.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

test("http.host off loopback: start refuses with one line naming http.host", async () => {
  const dir = await mkdtemp(join(tmpdir(), "paylane-reader-"));
  const config = parseDeviceConfig({
    ...kioskConfig(dir, { type: "pn532-simulator" }),
    http: { host: "0.0.0.0", port: 0 },
  });
  const daemon = new KioskDaemon({ config, logger: pino({ level: "silent" }) });
  try {
    await daemon.start().then(
      () => assert.unreachable("a kiosk API on 0.0.0.0 must not start"),
      (err: Error) => {
        assert.match(err.message, /^http\.host 0\.0\.0\.0: .*loopback only; set http\.host to 127\.0\.0\.1/);
        assert.not.match(err.message, /\n/);
      },
    );
  } finally {
    await daemon.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

test.run();
