/**
 * Issue 3: "a crash (kill -9) during an unlock pulse leaves the relay
 * de-energised when the daemon comes back". The real kiosk daemon runs as a
 * child process (`paylane-device --config`), its relay on a sysfs-shaped
 * folder whose value file outlives the process as a GPIO output latch does.
 * The kiosk is offline on purpose: it decides from its replica and journal.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type DeviceConfigInput, Replica } from "@paylane/device";
import type { TapResult } from "@paylane/protocol/kiosk-api";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { createFakeSysfs, PI4_KERNEL_6_6 } from "../../device/test/hardware/fake-sysfs.ts";
import { kioskPost } from "../support/kiosk-api.ts";

const repo = join(import.meta.dirname, "../..");
const main = join(repo, "device/src/main.ts");
/** BCM 17 on a Pi 4 with a 6.6 kernel: chip base 512. */
const RELAY_LINE = 529;
const ADA = { id: "m-ada", name: "Ada Lovelace", cardUid: "04A2B3C4", code: null, status: "active" as const };
const WAIT_MS = 30_000; // only ever fails the test

let root = "";
const children = new Set<ChildProcess>();

test.before.each(async () => {
  root = await mkdtemp(join(tmpdir(), "paylane-relay-daemon-"));
});
test.after.each(async () => {
  for (const c of children) c.kill("SIGKILL");
  children.clear();
  await rm(root, { recursive: true, force: true });
});

const relay = async () => (await readFile(join(root, "sys", `gpio${RELAY_LINE}`, "value"), "utf8")).trim();

/** Starts the daemon; resolves with its HTTP port once it logs that it started. */
function startDaemon(configPath: string): Promise<{ proc: ChildProcess; port: number }> {
  const proc = spawn(process.execPath, ["--import", "tsx", main, "--config", configPath], {
    cwd: repo,
    env: { ...process.env, LOG_LEVEL: "info" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(proc);
  proc.on("exit", () => children.delete(proc));
  let out = "";
  let err = "";
  proc.stderr.setEncoding("utf8").on("data", (c: string) => {
    err += c;
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`daemon did not start:\n${out}\n${err}`)), WAIT_MS);
    proc.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`daemon exited (${code}) before starting:\n${out}\n${err}`));
    });
    proc.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      out += chunk;
      for (const line of out.split("\n")) {
        if (!line.includes('"kiosk daemon started"')) continue;
        clearTimeout(timer);
        resolve({ proc, port: (JSON.parse(line) as { port: number }).port });
        return;
      }
    });
  });
}

test("kill -9 mid-pulse: the relay is latched on until the daemon comes back, then off at once", async () => {
  await createFakeSysfs(join(root, "sys"), { chips: PI4_KERNEL_6_6, lines: [RELAY_LINE] });
  const dataDir = join(root, "data");
  await mkdir(dataDir, { recursive: true });
  const replica = await Replica.open(join(dataDir, "replica.db"));
  await replica.replace(
    { site: "crash", version: 1, timezone: "UTC", siteName: "Crash venue", members: [ADA] },
    new Date(),
  );
  await replica.close();
  const config: DeviceConfigInput = {
    site: "crash",
    device: "k1",
    secret: "crash-test-secret-0123456789",
    // nothing listens on port 9: the kiosk is offline and decides on its own
    mqttUrl: "mqtt://127.0.0.1:9",
    cloudUrl: "http://127.0.0.1:9",
    dataDir,
    http: { host: "127.0.0.1", port: 0 },
    reader: { type: "pn532-simulator", pollIntervalMs: 5 },
    gpio: {
      backend: "sysfs",
      sysfsRoot: join(root, "sys"),
      relay: { line: { bcm: 17 }, pulseMs: 30_000 },
    },
  };
  const configPath = join(root, "k1.json");
  await writeFile(configPath, JSON.stringify(config));

  const first = await startDaemon(configPath);
  assert.is(await relay(), "0", "de-energised at start");
  const res = await kioskPost(first.port, dataDir, "/api/sim/tap", { uid: ADA.cardUid });
  const result = (await res.json()) as TapResult;
  assert.is(result.outcome, "welcome", JSON.stringify(result));
  assert.is(await relay(), "1", "the door is unlocked for the 30 s pulse");

  const exited = new Promise((resolve) => first.proc.once("exit", resolve));
  first.proc.kill("SIGKILL");
  await exited;
  assert.is(await relay(), "1", "a killed process leaves the output latched, as real GPIO would");

  const second = await startDaemon(configPath);
  assert.is(await relay(), "0", "the daemon drives the relay off before anything else when it comes back");
  const state = (await (await fetch(`http://127.0.0.1:${second.port}/api/state`)).json()) as { backlog: number };
  assert.is(state.backlog, 1, "the check-in answered before the crash is still in the journal");
  second.proc.kill("SIGTERM");
});

test.run();
