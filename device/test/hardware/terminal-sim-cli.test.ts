/**
 * `paylane-sim terminal --link <path>` as a process, paid through by our ZVT
 * driver over the pty with ZVT's serial transport: the readable trace it
 * prints (no password, no full card number), outcomes chosen on its stdin,
 * and the terminal unplugged and plugged back (the process stops, its pty
 * goes; a new one appears at the same path): the driver's state follows
 * within 2 s each way with no restart, and a payment in flight when the line
 * drops ends "disconnected" and is never sent again. Real time (a real
 * process and pty): every wait is on an event, bounded only to fail.
 */
// run-tests: alone (its 2 s are the driver's with a real simulator process, not a share of two cores with another suite)
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { findPans } from "../../../test/support/pan-scan.ts";
import { Signal } from "../../../test/support/signal.ts";
import type { TerminalState } from "../../src/hardware/terminal/terminal.ts";
import { ZvtTerminal } from "../../src/hardware/terminal/zvt.ts";

const test = suite("paylane-sim terminal");
const BIN = join(import.meta.dirname, "../../bin/paylane-sim.mjs");
const PASSWORD = "314159";
const WAIT_MS = 15_000;
/** The promise: a plugged or unplugged terminal shows within 2 s. */
const REPORTED_WITHIN_MS = 2000;

const signal = new Signal();

/** One `paylane-sim terminal` process; its stdout lines, as they come. */
class SimProcess {
  readonly lines: string[] = [];
  readonly child: ChildProcess;
  exited = false;

  constructor(link: string) {
    this.child = spawn(process.execPath, [BIN, "terminal", "--link", link, "--password", PASSWORD], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    let rest = "";
    const take = (chunk: Buffer) => {
      const parts = (rest + chunk.toString("utf8")).split("\n");
      rest = parts.pop() ?? "";
      this.lines.push(...parts);
      signal.notify();
    };
    this.child.stdout?.on("data", take);
    this.child.stderr?.on("data", take);
    this.child.on("exit", () => {
      this.exited = true;
      signal.notify();
    });
  }

  get text(): string {
    return this.lines.join("\n");
  }

  /** Resolves with the time the first line matching `pattern` was seen. */
  async line(pattern: RegExp, what: string): Promise<number> {
    await signal.until(
      () => this.lines.some((l) => pattern.test(l)),
      `${what} (printed so far:\n${this.text})`,
      WAIT_MS,
    );
    return Date.now();
  }

  say(word: string): void {
    this.child.stdin?.write(`${word}\n`);
  }

  async stop(): Promise<number> {
    if (!this.exited) this.child.kill("SIGTERM");
    await signal.until(() => this.exited, "the simulator process to exit", WAIT_MS);
    return Date.now();
  }
}

interface Ctx {
  dir: string;
  link: string;
  sim: SimProcess;
  terminal: ZvtTerminal;
  states: { state: TerminalState; at: number }[];
}
const ctx = {} as Ctx;

const state = (s: TerminalState) =>
  signal.until(
    () => (ctx.terminal.state === s ? (ctx.states.findLast((e) => e.state === s)?.at ?? Date.now()) : undefined),
    `terminal ${s}`,
    WAIT_MS,
  );

test.before(async () => {
  ctx.dir = await mkdtemp(join(tmpdir(), "paylane-sim-terminal-"));
  ctx.link = join(ctx.dir, "ttyZVT");
  ctx.states = [];
  ctx.sim = new SimProcess(ctx.link);
  await ctx.sim.line(/^ZVT terminal at /, "the simulator's banner");
  ctx.terminal = new ZvtTerminal({
    serial: { path: ctx.link },
    password: PASSWORD,
    // The daemon's setting (factory.ts, TERMINAL_RECONNECT_MS): the 2 s below hold with it.
    reconnectMs: 1000,
    logger: pino({ level: "silent" }),
    onStateChange: (s) => {
      ctx.states.push({ state: s, at: Date.now() });
      signal.notify();
    },
  });
});

test.after(async () => {
  await ctx.terminal?.close();
  await ctx.sim?.stop();
  await rm(ctx.dir, { recursive: true, force: true });
});

test("a payment through the simulator's pty is approved, and its trace reads as words", async () => {
  await ctx.terminal.connect();
  const outcome = await ctx.terminal.charge({ amount: 1250, currency: "EUR", reference: "cli-1" });
  assert.is(outcome.status, "approved");
  assert.is(outcome.status === "approved" && outcome.cardLabel, "VISA •••• 4242");
  await ctx.sim.line(/^→ Completion \(06 0F\)$/, "the final Completion");
  const trace = ctx.sim.text;
  for (const line of [
    "← Registration (06 00) password ******, currency EUR, config 0x18",
    "← Authorisation (06 01) 12.50 EUR",
    "→ Intermediate status (04 FF) insert card",
    "→ Status information (04 0F) 12.50 EUR, approved, card VISA ****4242, trace 000001",
  ]) {
    assert.ok(
      ctx.sim.lines.some((l) => l.startsWith(line)),
      `missing "${line}" in:\n${trace}`,
    );
  }
  assert.not.ok(trace.includes(PASSWORD), "the password was printed");
  assert.equal(findPans(trace), [], "a card number was printed");
});

test("an outcome typed on the simulator's stdin decides the next payment", async () => {
  ctx.sim.say("decline");
  await ctx.sim.line(/^next payment: decline$/, "the simulator taking the command");
  const outcome = await ctx.terminal.charge({ amount: 300, currency: "EUR", reference: "cli-2" });
  assert.is(outcome.status, "declined");
  ctx.sim.say("refund");
  await ctx.sim.line(/^unknown command "refund": type approve, decline, timeout$/, "the refusal of an unknown command");
  assert.is(ctx.terminal.state, "ready");
});

test("the terminal unplugged and plugged back: disconnected, then ready, each within 2 s, no restart", async () => {
  const gone = await ctx.sim.stop();
  const down = await state("disconnected");
  assert.ok(down - gone < REPORTED_WITHIN_MS, `disconnected ${down - gone} ms after the pty went`);

  ctx.sim = new SimProcess(ctx.link);
  const back = await ctx.sim.line(/^ZVT terminal at /, "the new simulator's banner");
  const up = await state("ready");
  assert.ok(up - back < REPORTED_WITHIN_MS, `ready ${up - back} ms after the pty returned`);
  const outcome = await ctx.terminal.charge({ amount: 500, currency: "EUR", reference: "cli-3" });
  assert.is(outcome.status, "approved");
});

test("a payment in flight when the line drops ends disconnected, and the next terminal never sees it again", async () => {
  ctx.sim.say("timeout");
  await ctx.sim.line(/^next payment: timeout$/, "the simulator taking the command");
  const charge = ctx.terminal.charge({ amount: 700, currency: "EUR", reference: "cli-4" });
  await ctx.sim.line(/^→ Intermediate status \(04 FF\) insert card$/, "the terminal asking for the card");
  await ctx.sim.stop();
  const outcome = await charge;
  assert.is(outcome.status, "disconnected");

  ctx.sim = new SimProcess(ctx.link);
  await ctx.sim.line(/^ZVT terminal at /, "the new simulator's banner");
  await state("ready");
  const next = await ctx.terminal.charge({ amount: 900, currency: "EUR", reference: "cli-5" });
  assert.is(next.status, "approved");
  await ctx.sim.line(/^→ Completion \(06 0F\)$/, "the final Completion");
  const authorisations = ctx.sim.lines.filter((l) => l.startsWith("← Authorisation"));
  assert.equal(authorisations, ["← Authorisation (06 01) 9.00 EUR"], "the lost 7.00 EUR payment was sent again");
});

test.run();
