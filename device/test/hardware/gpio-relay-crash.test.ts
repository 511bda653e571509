/**
 * Issue 3, "Relay: a crash (kill -9) during an unlock pulse leaves the relay
 * de-energised when the daemon comes back". A real child process drives the
 * relay on a sysfs-shaped folder whose value file outlives it, as a GPIO
 * output latch outlives a killed process.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { parseGpioConfig } from "../../src/hardware/gpio/config.ts";
import { GpioRoles } from "../../src/hardware/gpio/gpio-roles.ts";
import { SysfsGpio } from "../../src/hardware/gpio/sysfs.ts";
import { FakeTimers } from "../fake-timers.ts";

const repo = join(import.meta.dirname, "../../..");
const script = join(repo, "device/test/hardware/relay-crash-child.ts");
/** The child's relay, { bcm: 17 }, on its Pi 4 / kernel 6.6 tree: 512 + 17. */
const CRASH_CHILD_LINE = 529;
const WAIT_MS = 30_000; // only ever fails the test; the child answers in well under a second

let root = "";
const running = new Set<ChildProcess>();
test.before.each(async () => {
  root = await mkdtemp(join(tmpdir(), "paylane-relay-crash-"));
});
test.after.each(async () => {
  // a failed assertion must not leave a child pulsing for 30 s
  for (const proc of running) proc.kill("SIGKILL");
  running.clear();
  await rm(root, { recursive: true, force: true });
});

const relayValue = async () => (await readFile(join(root, "sys", `gpio${CRASH_CHILD_LINE}`, "value"), "utf8")).trim();

/** Starts the child script; waitFor() resolves on a stdout line starting with a prefix. */
function child(...flags: string[]) {
  const proc = spawn(process.execPath, ["--import", "tsx", script, join(root, "sys"), ...flags], {
    cwd: repo,
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.add(proc);
  proc.on("exit", () => running.delete(proc));
  const lines: string[] = [];
  let stderr = "";
  let buffered = "";
  const listeners = new Set<() => void>();
  proc.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    buffered += chunk;
    const parts = buffered.split("\n");
    buffered = parts.pop() ?? "";
    lines.push(...parts);
    for (const l of listeners) l();
  });
  proc.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.on("exit", (code, signal) => resolve({ code, signal })),
  );
  const waitFor = (prefix: string) =>
    new Promise<string>((resolve, reject) => {
      const check = () => {
        const hit = lines.find((l) => l.startsWith(prefix));
        if (hit) done(() => resolve(hit));
      };
      const timer = setTimeout(
        () => done(() => reject(new Error(`no "${prefix}" line within ${WAIT_MS} ms`))),
        WAIT_MS,
      );
      const done = (settle: () => void) => {
        clearTimeout(timer);
        listeners.delete(check);
        settle();
      };
      listeners.add(check);
      void exited.then(({ code, signal }) =>
        done(() =>
          reject(new Error(`child exited (${code ?? signal}) before "${prefix}":\n${lines.join("\n")}\n${stderr}`)),
        ),
      );
      check();
    });
  return { proc, waitFor, exited, stderr: () => stderr };
}

test("kill -9 during an unlock pulse: the latch stays energised, and the next start de-energises it first", async () => {
  const first = child("--pulse");
  assert.is(await first.waitFor("ready"), "ready value=0");
  assert.is(await first.waitFor("pulsing"), "pulsing value=1");
  first.proc.kill("SIGKILL");
  assert.equal(await first.exited, { code: null, signal: "SIGKILL" });
  assert.is(
    await relayValue(),
    "1",
    "nothing ran after SIGKILL: the line is stuck energised, as real hardware would be",
  );

  const second = child();
  assert.is(await second.waitFor("ready"), "ready value=0", "de-energised as soon as the roles have started");
  assert.is(await second.waitFor("stopped"), "stopped value=0");
  assert.equal(await second.exited, { code: 0, signal: null });
});

test("kill -9 with an active-low relay (energised = 0): an in-process restart drives it back to 1", async () => {
  const first = child("--pulse", "--active-low");
  assert.is(await first.waitFor("ready"), "ready value=1");
  assert.is(await first.waitFor("pulsing"), "pulsing value=0");
  first.proc.kill("SIGKILL");
  await first.exited;
  assert.is(await relayValue(), "0");

  const timers = new FakeTimers();
  const sysRoot = join(root, "sys");
  const roles = new GpioRoles({
    config: parseGpioConfig({ backend: "sysfs", sysfsRoot: sysRoot, relay: { line: { bcm: 17 }, activeLow: true } }),
    backend: new SysfsGpio({ root: sysRoot, timers }),
    timers,
    logger: pino({ level: "silent" }),
  });
  await roles.start();
  assert.is(await relayValue(), "1");
  assert.is(roles.health().roles.relay?.state, "ok");
  await roles.stop();
});

test("an uncaught exception during a pulse: the exit hook de-energises before the process is gone", async () => {
  const run = child("--throw");
  assert.is(await run.waitFor("pulsing"), "pulsing value=1");
  const { code } = await run.exited;
  assert.is(code, 1);
  assert.match(run.stderr(), "crash: uncaught exception while the door is open");
  assert.is(await relayValue(), "0");
});

test.run();
