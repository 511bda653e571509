/**
 * Serial hot-plug as the daemon lives it: Peripherals drives a PN532 at a
 * device path served by `paylane-sim pn532` (spawned through its bin, as a
 * user would). Stopping the simulator removes the pty (socat stops), like a
 * pulled USB adapter; starting it again brings the same path back. Each
 * change must reach Peripherals.health() — what telemetry and /healthz
 * report — within 2 s, with no restart, and the next card must still work.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Signal } from "../../../test/support/signal.ts";
import { HEALTH_MS, type PeripheralsRig, peripheralsFor } from "./peripherals-rig.ts";

const test = suite("pn532 replug reaches health");
const BIN = join(import.meta.dirname, "../../bin/paylane-sim.mjs");
const START_MS = 15_000;

const ctx = {} as { dir: string; path: string; sim?: ChildProcess; rig: PeripheralsRig; taps: string[] };
const signal = new Signal();

async function startSim(card: string): Promise<void> {
  const sim = spawn(process.execPath, [BIN, "pn532", "--link", ctx.path, "--card", card], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  ctx.sim = sim;
  let out = "";
  sim.stdout?.setEncoding("utf8").on("data", (t: string) => {
    out += t;
    signal.notify();
  });
  sim.on("exit", signal.notify);
  await signal.until(
    () => {
      if (sim.exitCode !== null) throw new Error(`paylane-sim exited (${sim.exitCode}): ${out}`);
      return out.includes("PN532 v1.6 on ");
    },
    "paylane-sim pn532 ready",
    START_MS,
  );
}

async function stopSim(): Promise<void> {
  const sim = ctx.sim;
  if (!sim || sim.exitCode !== null) return;
  const exited = new Promise((resolve) => sim.once("exit", resolve));
  sim.kill("SIGINT");
  await exited;
}

/** The reader's state as health() reports it, within HEALTH_MS; returns how long it took. */
const healthWithin = (state: string, what: string) =>
  ctx.rig.healthWithin((h) => h.reader.state === state, `reader "${state}" ${what}`);

test.before(async () => {
  ctx.dir = await mkdtemp(join(tmpdir(), "paylane-replug-"));
  ctx.path = join(ctx.dir, "ttyPN532");
  ctx.taps = [];
  ctx.rig = peripheralsFor(ctx.dir, { reader: { type: "pn532", path: ctx.path } }, signal);
});

test.after(async () => {
  await ctx.rig.peripherals.stop();
  await stopSim();
  await rm(ctx.dir, { recursive: true, force: true });
});

test("the reader's pty goes away and comes back twice: health follows within 2 s each time, cards still read", async () => {
  await startSim("9A3B5C01");
  await ctx.rig.peripherals.start({
    onCard: async (uid) => {
      ctx.taps.push(uid);
      signal.notify();
    },
    onCallStaff: () => {},
    onChange: signal.notify,
    onPaper: () => {},
  });
  await healthWithin("ok", "at start");
  await signal.until(() => ctx.taps.includes("9A3B5C01"), "the first card", HEALTH_MS);

  const took: number[] = [];
  for (const card of ["DEADBEEF", "04A1B2C3D4E5F6"]) {
    await stopSim();
    took.push(await healthWithin("disconnected", "after the pty disappeared"));
    await startSim(card);
    took.push(await healthWithin("ok", "after the pty came back at the same path"));
    await signal.until(() => ctx.taps.includes(card), `card ${card} after the replug`, HEALTH_MS);
  }
  assert.equal(ctx.taps, ["9A3B5C01", "DEADBEEF", "04A1B2C3D4E5F6"]);
  // Each healthWithin above already failed past 2 s, counted from the pty gone (simulator exited) or back (ready).
  console.log(`  health followed each change in ${took.join(", ")} ms`);
});

test.run();
