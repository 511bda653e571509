/**
 * Commands at the kiosk (`cmd/{name}` → `cmd-result`): each command's run
 * and its refusals, expiry, and at-most-once: the same id delivered again —
 * at once, later, or to a desk restarted on the same database — is answered
 * with the first outcome and never runs twice. A reboot waits for the
 * customer paying at the kiosk.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CommandResult } from "@paylane/protocol";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Signal } from "../../test/support/signal.ts";
import { CommandLog } from "../src/command-log.ts";
import type { PaymentTerminal } from "../src/hardware/terminal/terminal.ts";
import { CommandDesk } from "../src/kiosk/command-desk.ts";
import { CustomerPresence } from "../src/kiosk/customer-presence.ts";
import { type KioskCommandDeps, kioskCommands } from "../src/kiosk/kiosk-commands.ts";
import { OperatingMode } from "../src/kiosk/kiosk-mode.ts";
import type { KioskKit } from "../src/kiosk/kit.ts";
import type { Peripherals } from "../src/peripherals.ts";
import type { Replica } from "../src/replica.ts";
import { SettingsStore } from "../src/settings-store.ts";
import { Sqlite } from "../src/sqlite.ts";
import { testKit } from "./kiosk-kit.ts";

interface Ctx {
  dir: string;
  db: Sqlite;
  kit: KioskKit & { clock: import("./fake-timers.ts").FakeTimers };
  published: CommandResult[];
  calls: string[];
  desk: CommandDesk;
  mode: OperatingMode;
  presence: CustomerPresence;
  printed: unknown[];
  pulses: number[];
  /** What the fake peripherals have (a printer, a relay) and how they answer. */
  hw: { printer: boolean; paperOut: boolean; relay: boolean };
  deps: KioskCommandDeps;
  /** Notified on each answer published. */
  signal: Signal;
}

const test = suite<Ctx>("command desk");

/** Fake peripherals: a printer that records, a relay that records its pulses, self-tests that pass. */
function fakePeripherals(ctx: Ctx): Peripherals {
  const relay = {
    pulse: (ms: number) => {
      ctx.pulses.push(ms);
      return true;
    },
    health: {},
  };
  return {
    get printer() {
      if (!ctx.hw.printer) return undefined;
      return {
        print: async (receipt: unknown) => {
          ctx.printed.push(receipt);
          return ctx.hw.paperOut ? { printed: false, reason: "paper-out" } : { printed: true };
        },
      };
    },
    get gpio() {
      return ctx.hw.relay ? { relay } : undefined;
    },
    selfTest: async () => ({
      ok: true,
      peripherals: {
        reader: { ok: true, detail: "firmware 1.6" },
        printer: { ok: true, detail: "paper ok" },
        "gpio.relay": { ok: true, detail: "not pulsed; reads de-energised" },
      },
    }),
  } as unknown as Peripherals;
}

/** A desk on the database in `ctx.dir` (a second call: the same kiosk after a restart). */
async function openDesk(ctx: Ctx): Promise<void> {
  ctx.db = await Sqlite.open(join(ctx.dir, "journal.db"));
  ctx.mode = await OperatingMode.open(ctx.kit, await SettingsStore.open(ctx.db));
  ctx.presence = new CustomerPresence(ctx.kit);
  ctx.presence.start();
  ctx.deps = {
    presence: ctx.presence,
    mode: ctx.mode,
    peripherals: fakePeripherals(ctx),
    terminal: { state: "ready" } as PaymentTerminal,
    replica: { info: async () => ({ siteName: "Venue", timezone: "UTC" }) } as unknown as Replica,
    uplink: {
      replayFrom: async (from) => {
        ctx.calls.push(`replay from ${from}`);
        return { resendingFrom: 42 };
      },
    },
    restart: () => ctx.calls.push("restart"),
    reopenLogs: () => ctx.calls.push("reopen logs"),
  };
  ctx.desk = new CommandDesk(ctx.kit, {
    log: await CommandLog.open(ctx.db),
    handlers: kioskCommands(ctx.kit, ctx.deps),
    publish: (r) => {
      ctx.published.push(r);
      ctx.signal.notify();
    },
  });
  await ctx.desk.start();
}

test.before.each(async (ctx) => {
  ctx.dir = await mkdtemp(join(tmpdir(), "paylane-commands-"));
  ctx.kit = testKit(ctx.dir, { printer: { type: "simulator" } });
  ctx.published = [];
  ctx.signal = new Signal();
  ctx.calls = [];
  ctx.printed = [];
  ctx.pulses = [];
  ctx.hw = { printer: true, paperOut: false, relay: true };
  await openDesk(ctx);
});

test.after.each(async (ctx) => {
  ctx.presence.stop();
  await ctx.db.close();
  await rm(ctx.dir, { recursive: true, force: true });
});

const cmd = (id: string, args: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) =>
  Buffer.from(JSON.stringify({ id, args, by: "ops:ada", ...extra }));

/** The statuses published for `id`, in order. */
const statuses = (ctx: Ctx, id: string) => ctx.published.filter((r) => r.id === id).map((r) => r.status);

function final(r: CommandResult | undefined): CommandResult {
  assert.ok(r, "the command was answered");
  return r as CommandResult;
}

test("self-test: accepted, then done with each peripheral's result, the payment terminal included", async (ctx) => {
  const r = final(await ctx.desk.handle("self-test", cmd("c1")));
  assert.equal(statuses(ctx, "c1"), ["accepted", "done"]);
  assert.is(r.status, "done");
  const result = (r as { result: { ok: boolean; peripherals: Record<string, { ok: boolean }> } }).result;
  assert.ok(result.ok);
  assert.equal(Object.keys(result.peripherals).sort(), ["gpio.relay", "printer", "reader", "terminal"]);
  assert.is(r.command, "self-test");
});

test("self-test: a terminal idle since boot is linked up, not reported faulty; one that cannot link is, with why", async (ctx) => {
  const peripherals = (r: CommandResult) =>
    (r as { result: { peripherals: Record<string, { ok: boolean; detail: string }> } }).result.peripherals;
  let state: PaymentTerminal["state"] = "disconnected";
  ctx.deps.terminal = {
    get state() {
      return state;
    },
    connect: async () => {
      state = "ready";
    },
  } as unknown as PaymentTerminal;
  await ctx.desk.stop();
  ctx.desk = new CommandDesk(ctx.kit, {
    log: await CommandLog.open(ctx.db),
    handlers: kioskCommands(ctx.kit, ctx.deps),
    publish: (r) => ctx.published.push(r),
  });
  await ctx.desk.start();
  assert.equal(peripherals(final(await ctx.desk.handle("self-test", cmd("t1")))).terminal, {
    ok: true,
    detail: "payment terminal ready",
  });
  state = "disconnected";
  (ctx.deps.terminal as { connect: () => Promise<void> }).connect = async () => {
    throw new Error("connect ECONNREFUSED 127.0.0.1:20007");
  };
  const refused = peripherals(final(await ctx.desk.handle("self-test", cmd("t2")))).terminal;
  assert.equal(refused, { ok: false, detail: "payment terminal unreachable: connect ECONNREFUSED 127.0.0.1:20007" });
});

test("print-test: a test receipt goes through the printer; paper out or no printer fails with why", async (ctx) => {
  assert.is(final(await ctx.desk.handle("print-test", cmd("p1"))).status, "done");
  assert.is(ctx.printed.length, 1);
  assert.match(JSON.stringify(ctx.printed[0]), /PRINTER TEST/);
  ctx.hw.paperOut = true;
  const out = final(await ctx.desk.handle("print-test", cmd("p2")));
  assert.is(out.status, "failed");
  assert.match((out as { reason: string }).reason, /did not print: paper-out/);
  ctx.hw.printer = false;
  const none = final(await ctx.desk.handle("print-test", cmd("p3")));
  assert.match((none as { reason: string }).reason, /no receipt printer/);
});

test("unlock: the relay is energised for the seconds asked, renewed past its longest pulse", async (ctx) => {
  const r = final(await ctx.desk.handle("unlock", cmd("u1", { seconds: 8 })));
  assert.is(r.status, "done");
  assert.equal(ctx.pulses, [8000]);
  // 60 s: a 30 s pulse, renewed 25 s later for the remaining 35 s (capped at 30 s), then for the last 10 s.
  ctx.pulses.length = 0;
  await ctx.desk.handle("unlock", cmd("u2", { seconds: 60 }));
  ctx.kit.clock.advance(25_000);
  ctx.kit.clock.advance(25_000);
  ctx.kit.clock.advance(25_000);
  assert.equal(ctx.pulses, [30_000, 30_000, 10_000]);
  // Default 5 s when no seconds are given.
  ctx.pulses.length = 0;
  await ctx.desk.handle("unlock", cmd("u3"));
  assert.equal(ctx.pulses, [5000]);
});

test("unlock: the latest unlock says how long the door stays open, a shorter one too", async (ctx) => {
  await ctx.desk.handle("unlock", cmd("long", { seconds: 300 }));
  await ctx.desk.handle("unlock", cmd("short", { seconds: 5 }));
  assert.equal(ctx.pulses, [30_000, 5000]);
  ctx.kit.clock.advance(25_000);
  ctx.kit.clock.advance(25_000);
  assert.equal(ctx.pulses, [30_000, 5000], "the 300 s unlock's renewals were called off");
});

test("unlock without a relay, or with seconds out of range: failed, nothing energised", async (ctx) => {
  const bad = final(await ctx.desk.handle("unlock", cmd("u1", { seconds: 0 })));
  assert.is(bad.status, "failed");
  assert.match((bad as { reason: string }).reason, /bad arguments for unlock: args\.seconds/);
  assert.equal(statuses(ctx, "u1"), ["failed"], "refused before it was accepted");
  const extra = final(await ctx.desk.handle("unlock", cmd("u2", { seconds: 5, door: "back" })));
  assert.match((extra as { reason: string }).reason, /door/);
  ctx.hw.relay = false;
  const none = final(await ctx.desk.handle("unlock", cmd("u3", { seconds: 5 })));
  assert.match((none as { reason: string }).reason, /no door relay/);
  assert.equal(ctx.pulses, []);
});

test("replay-from asks the uplink to replay from `from`; a bad `from` is refused", async (ctx) => {
  const r = final(await ctx.desk.handle("replay-from", cmd("r1", { from: 7 })));
  assert.equal((r as { result: unknown }).result, { resendingFrom: 42 });
  assert.equal(ctx.calls, ["replay from 7"]);
  const bad = final(await ctx.desk.handle("replay-from", cmd("r2", { from: "seven" })));
  assert.match((bad as { reason: string }).reason, /args\.from/);
  assert.equal(ctx.calls, ["replay from 7"]);
});

test("set-mode changes the mode, kept across a restart; an unknown mode is refused", async (ctx) => {
  const r = final(await ctx.desk.handle("set-mode", cmd("m1", { mode: "maintenance" })));
  assert.equal((r as { result: unknown }).result, { mode: "maintenance", previous: "in-service" });
  assert.is(ctx.mode.mode, "maintenance");
  const bad = final(await ctx.desk.handle("set-mode", cmd("m2", { mode: "party" })));
  assert.match((bad as { reason: string }).reason, /args\.mode/);
  ctx.presence.stop();
  await ctx.db.close();
  await openDesk(ctx);
  assert.is(ctx.mode.mode, "maintenance", "the restarted kiosk is still in maintenance");
});

test("rotate-logs reopens the log file; a kiosk logging to stdout says there is none", async (ctx) => {
  assert.is(final(await ctx.desk.handle("rotate-logs", cmd("l1"))).status, "done");
  assert.equal(ctx.calls, ["reopen logs"]);
  ctx.deps.reopenLogs = undefined;
  ctx.desk = new CommandDesk(ctx.kit, {
    log: await CommandLog.open(ctx.db),
    handlers: kioskCommands(ctx.kit, ctx.deps),
    publish: (r) => ctx.published.push(r),
  });
  const r = final(await ctx.desk.handle("rotate-logs", cmd("l2")));
  assert.is(r.status, "failed");
  assert.match((r as { reason: string }).reason, /standard output.*no log file to rotate/);
});

test("reboot: done is published first, then the process is asked to restart", async (ctx) => {
  const order: string[] = [];
  ctx.deps.restart = () => order.push(`restart after ${ctx.published.map((r) => r.status).join(",")}`);
  ctx.desk = new CommandDesk(ctx.kit, {
    log: await CommandLog.open(ctx.db),
    handlers: kioskCommands(ctx.kit, ctx.deps),
    publish: (r) => ctx.published.push(r),
  });
  final(await ctx.desk.handle("reboot", cmd("b1")));
  assert.equal(order, ["restart after accepted,done"]);
});

test("reboot waits for the customer paying at the kiosk, and never restarts mid-payment", async (ctx) => {
  const session = {
    id: "pay-1",
    kind: "purchase",
    amount: 250,
    currency: "EUR",
    state: "awaiting-card",
    expiresAt: "2024-05-01T09:01:00.000Z",
  } as const;
  ctx.kit.bus.emit("payment-progressed", { step: "session", session });
  const answered = ctx.desk.handle("reboot", cmd("b1"));
  let settled = false;
  void answered.then(() => (settled = true));
  // The card is tapped and authorized meanwhile: still busy.
  ctx.kit.bus.emit("decision-busy", true);
  await ctx.signal.until(() => statuses(ctx, "b1").length > 0, "the reboot accepted", 5000);
  // Let the handler reach its wait: a few turns of the loop, with nothing else to do.
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  assert.equal(statuses(ctx, "b1"), ["accepted"], "accepted at once, not done while the customer pays");
  assert.equal(ctx.calls, []);
  assert.not.ok(settled);
  ctx.kit.bus.emit("payment-progressed", {
    step: "answered",
    result: {
      sessionId: "pay-1",
      kind: "purchase",
      outcome: "approved",
      message: "Paid",
      amount: 250,
      currency: "EUR",
      at: "t",
    },
    receipt: undefined,
  });
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  assert.equal(ctx.calls, [], "the payment's decision has not ended yet");
  ctx.kit.bus.emit("decision-busy", false);
  const r = final(await answered);
  assert.is(r.status, "done");
  assert.equal(ctx.calls, ["restart"]);
});

test("a reboot without a restart hook fails with why", async (ctx) => {
  ctx.deps.restart = undefined;
  ctx.desk = new CommandDesk(ctx.kit, {
    log: await CommandLog.open(ctx.db),
    handlers: kioskCommands(ctx.kit, ctx.deps),
    publish: (r) => ctx.published.push(r),
  });
  const r = final(await ctx.desk.handle("reboot", cmd("b1")));
  assert.match((r as { reason: string }).reason, /restart hook/);
});

test("an unknown command fails naming it and the commands known; a payload with no id is not answered", async (ctx) => {
  const r = final(await ctx.desk.handle("self-destruct", cmd("x1")));
  assert.is(r.status, "failed");
  assert.match((r as { reason: string }).reason, /unknown command "self-destruct".*reboot, self-test/);
  const envelope = final(await ctx.desk.handle("reboot", Buffer.from(JSON.stringify({ id: "x2", args: [] }))));
  assert.match((envelope as { reason: string }).reason, /not a valid command: args/);
  assert.is(await ctx.desk.handle("reboot", Buffer.from("not json")), undefined);
  assert.is(await ctx.desk.handle("reboot", Buffer.from(JSON.stringify({ args: {} }))), undefined);
  assert.equal(ctx.calls, []);
});

test("a command past its expiry is answered expired and nothing is done", async (ctx) => {
  const past = new Date(ctx.kit.now().getTime() - 1000).toISOString();
  const r = final(await ctx.desk.handle("unlock", cmd("e1", { seconds: 5 }, { expiresAt: past })));
  assert.is(r.status, "expired");
  assert.match((r as { reason: string }).reason, /expired at/);
  assert.equal(statuses(ctx, "e1"), ["expired"]);
  assert.equal(ctx.pulses, []);
  const future = new Date(ctx.kit.now().getTime() + 60_000).toISOString();
  assert.is(final(await ctx.desk.handle("unlock", cmd("e2", { seconds: 5 }, { expiresAt: future }))).status, "done");
});

test("the same id twice runs once: the repeat gets the first answer", async (ctx) => {
  const first = final(await ctx.desk.handle("unlock", cmd("d1", { seconds: 5 })));
  const again = final(await ctx.desk.handle("unlock", cmd("d1", { seconds: 5 })));
  assert.equal(again, first);
  assert.equal(ctx.pulses, [5000], "the relay was pulsed once");
  assert.equal(statuses(ctx, "d1"), ["accepted", "done", "done"]);
  // A refusal is remembered too: the same id with good arguments now is still the refusal.
  await ctx.desk.handle("unlock", cmd("d2", { seconds: 0 }));
  const refusedAgain = final(await ctx.desk.handle("unlock", cmd("d2", { seconds: 5 })));
  assert.is(refusedAgain.status, "failed");
  assert.equal(ctx.pulses, [5000]);
});

test("the same id delivered twice at once runs once", async (ctx) => {
  const [a, b] = await Promise.all([
    ctx.desk.handle("print-test", cmd("d1")),
    ctx.desk.handle("print-test", cmd("d1")),
  ]);
  assert.equal(a, b);
  assert.is(ctx.printed.length, 1);
});

test("the same id after a restart of the daemon (same database) runs once", async (ctx) => {
  await ctx.desk.handle("print-test", cmd("d1"));
  ctx.presence.stop();
  await ctx.db.close();
  ctx.published.length = 0;
  await openDesk(ctx);
  const again = final(await ctx.desk.handle("print-test", cmd("d1")));
  assert.is(again.status, "done");
  assert.equal(statuses(ctx, "d1"), ["done"], "answered from the log, not run");
  assert.is(ctx.printed.length, 1);
});

test("a command interrupted by a restart is not run again: it fails asking for a new id", async (ctx) => {
  const log = await CommandLog.open(ctx.db);
  await log.record(
    "print-test",
    { id: "i1", command: "print-test", status: "accepted", at: "2024-05-01T09:00:00.000Z" },
    ctx.kit.now(),
  );
  const r = final(await ctx.desk.handle("print-test", cmd("i1")));
  assert.is(r.status, "failed");
  assert.match((r as { reason: string }).reason, /interrupted.*new id/);
  assert.is(ctx.printed.length, 0);
});

test("the remembered ids are bounded by age and count", async (ctx) => {
  const log = await CommandLog.open(ctx.db, { keepMs: 60_000, keepCount: 3 });
  const at = (s: number) => new Date(ctx.kit.now().getTime() + s * 1000);
  for (let i = 0; i < 5; i++) {
    await log.record("self-test", { id: `k${i}`, status: "done", at: at(i).toISOString() }, at(i));
  }
  assert.is(await log.prune(at(5)), 2, "the two oldest go beyond 3");
  assert.ok(await log.get("k4"));
  assert.is(await log.get("k0"), undefined);
  assert.is(await log.prune(at(64)), 2, "k2 and k3 are older than a minute by then");
  assert.is(await log.count(), 1);
});

test.run();
