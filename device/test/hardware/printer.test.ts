/**
 * The ReceiptPrinter unit against the printer simulator: receipts come out,
 * paper-out never holds up the caller, paper status reaches ops, a printer
 * that goes quiet or away is reopened with backoff and prints again.
 * Time is FakeTimers; with a pty only real I/O is awaited (guarded).
 */
import { rmSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { within } from "../../../test/support/within.ts";
import type { PaperStatus } from "../../src/hardware/printer/escpos.ts";
import { MemoryTransport } from "../../src/hardware/printer/memory-transport.ts";
import {
  type PaperState,
  type PrinterHealth,
  ReceiptPrinter,
  type ReceiptPrinterOptions,
} from "../../src/hardware/printer/printer.ts";
import type { CheckInReceipt, PaymentReceipt } from "../../src/hardware/printer/receipt.ts";
import { SerialTransport } from "../../src/hardware/printer/serial-transport.ts";
import { PrinterSimulator } from "../../src/hardware/printer/simulator.ts";
import { TransportError } from "../../src/hardware/printer/transport.ts";
import { FakeTimers } from "../fake-timers.ts";
import { PtyPair, PtyPeer } from "./printer-harness.ts";

const test = suite("receipt-printer");

const checkin: CheckInReceipt = {
  kind: "checkin",
  venue: "Riverside Pool",
  kiosk: "k-03",
  at: new Date("2024-05-01T09:05:00Z"),
  timeZone: "Europe/Berlin",
  memberName: "Ana Silva",
  transactionId: "ci_0001",
  cardUid: "04A1B2C3D4E5F6",
};
const payment: PaymentReceipt = {
  ...checkin,
  kind: "payment",
  transactionId: "pay_0002",
  item: "Day pass",
  amount: { minor: 1250, currency: "EUR" },
  newBalance: { minor: 750, currency: "EUR" },
};

/** Lets pending I/O callbacks and promise chains run (one event-loop turn; no wall-clock wait). */
const turn = () => new Promise<void>((r) => setImmediate(r));
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await turn();
}

/** A memory link whose writes can stall like a printer holding flow control; a stalled write fails on close. */
class StallingTransport extends MemoryTransport {
  stall = false;
  #release: (() => void) | undefined;
  override async write(data: Uint8Array): Promise<void> {
    if (this.stall && data.length > 3) {
      await new Promise<void>((resolve) => {
        this.#release = resolve;
      });
      throw new TransportError("closed", "memory link closed");
    }
    return super.write(data);
  }
  override async close(): Promise<void> {
    this.#release?.();
    return super.close();
  }
}

interface Rig {
  timers: FakeTimers;
  transport: StallingTransport;
  sim: PrinterSimulator;
  printer: ReceiptPrinter;
  paperEvents: [PaperStatus, PaperState][];
  changes: PrinterHealth[];
  opens: number[];
  detach: () => void;
}

function rig(opts: Partial<ReceiptPrinterOptions> = {}): Rig {
  const timers = new FakeTimers();
  const transport = new StallingTransport({ timers });
  const opens: number[] = [];
  const open = transport.open.bind(transport);
  transport.open = () => {
    opens.push(timers.now().getTime());
    return open();
  };
  const sim = new PrinterSimulator();
  const detach = sim.attach(transport.peer);
  const paperEvents: [PaperStatus, PaperState][] = [];
  const changes: PrinterHealth[] = [];
  const printer = new ReceiptPrinter({
    transport,
    timers,
    logger: pino({ level: "silent" }),
    onPaperStatus: (p, prev) => paperEvents.push([p, prev]),
    onChange: (h) => changes.push(h),
    ...opts,
  });
  return { timers, transport, sim, printer, paperEvents, changes, opens, detach };
}

const rigs: Rig[] = [];
function fresh(opts?: Partial<ReceiptPrinterOptions>): Rig {
  const r = rig(opts);
  rigs.push(r);
  return r;
}
test.after.each(async () => {
  for (const r of rigs.splice(0)) await r.printer.stop();
});

test("start reads the paper sensor; a receipt prints and the simulator gets exactly it", async () => {
  const { printer, sim, paperEvents } = fresh();
  await printer.start();
  assert.equal(printer.health, { state: "ok", paper: "ok", lastError: undefined });
  assert.equal(paperEvents, [["ok", "unknown"]]);
  assert.equal(await printer.print(checkin), { printed: true });
  assert.is(sim.receipts.length, 1);
  assert.equal(sim.receipts[0]?.qr, ["ci_0001"]);
  assert.equal(await printer.print(payment), { printed: true });
  assert.equal(sim.receipts[1]?.qr, ["pay_0002"]);
});

test("paper out: print() resolves at once with paper-out, nothing prints, ops are told; near-end; back to ok", async () => {
  const { printer, sim, timers, paperEvents } = fresh();
  await printer.start();
  sim.setPaper("out");
  const result = await printer.print(payment);
  assert.equal(result, { printed: false, reason: "paper-out" });
  assert.is(sim.receipts.length, 0);
  assert.equal(paperEvents.at(-1), ["out", "ok"]);
  assert.equal(printer.health, { state: "degraded", paper: "out", lastError: "paper out" });

  sim.setPaper("near-end");
  assert.equal(await printer.print(payment), { printed: true }, "a reloaded-but-low roll prints right away");
  assert.equal(paperEvents.at(-1), ["near-end", "out"]);
  assert.equal(printer.health, { state: "ok", paper: "near-end", lastError: undefined });

  // Idle: the periodic status poll notices the new roll without printing anything.
  sim.setPaper("ok");
  timers.advance(30_000);
  await settle();
  assert.equal(paperEvents.at(-1), ["ok", "near-end"]);
  assert.is(printer.health.paper, "ok");
  assert.is(sim.receipts.length, 1);
});

test("paper running out during printing is reported as not printed", async () => {
  const { printer, sim } = fresh();
  await printer.start();
  // Paper runs out as soon as the receipt's own bytes arrive.
  const off = sim.onReceipt(() => sim.setPaper("out"));
  const r = await printer.print(checkin);
  off();
  assert.equal(r, { printed: false, reason: "paper-out", detail: "paper ran out while printing" });
});

test("a printer that stops answering: not-responding, degraded, then disconnected and reopened with backoff", async () => {
  const { printer, timers, detach, sim, transport, opens } = fresh({ statusTimeoutMs: 500, missedLimit: 3 });
  await printer.start();
  detach();
  const pending = printer.print(checkin);
  await settle();
  timers.advance(500);
  assert.equal((await pending).printed, false);
  assert.equal(await pending, { printed: false, reason: "not-responding", detail: printer.health.lastError });
  assert.is(printer.health.state, "degraded");
  assert.match(printer.health.lastError ?? "", /no answer to DLE EOT 4 within 500 ms \(1 in a row\)/);

  // Two more unanswered polls make three in a row: disconnected.
  for (let i = 0; i < 2; i++) {
    timers.advance(30_000);
    await settle();
    timers.advance(500);
    await settle();
  }
  assert.is(printer.health.state, "disconnected");
  assert.is(printer.health.paper, "unknown");
  assert.equal(await printer.print(checkin), {
    printed: false,
    reason: "disconnected",
    detail: printer.health.lastError,
  });
  assert.is(transport.isOpen, false);

  // Reopened after 1 s; the printer answers again.
  sim.attach(transport.peer);
  const before = opens.length;
  timers.advance(999);
  await settle();
  assert.is(opens.length, before);
  timers.advance(1);
  await settle();
  assert.is(opens.length, before + 1);
  assert.is(printer.health.state, "ok");
  assert.equal(await printer.print(checkin), { printed: true });
});

test("transport loss → disconnected → reopened with exponential backoff → prints again", async () => {
  const { printer, timers, transport, opens, sim } = fresh({ reconnectMinMs: 1000, reconnectMaxMs: 8000 });
  await printer.start();
  transport.unplug();
  // The next use of the link finds it gone.
  assert.equal((await printer.print(checkin)).printed, false);
  assert.is(printer.health.state, "disconnected");
  assert.equal(await printer.print(checkin), {
    printed: false,
    reason: "disconnected",
    detail: printer.health.lastError,
  });

  const t0 = timers.now().getTime();
  const at = () => opens.slice(1).map((t) => t - t0);
  timers.advance(1000);
  await settle();
  timers.advance(2000);
  await settle();
  timers.advance(4000);
  await settle();
  timers.advance(8000);
  await settle();
  timers.advance(8000);
  await settle();
  assert.equal(at(), [1000, 3000, 7000, 15000, 23000], "1 s, 2 s, 4 s, 8 s, then capped at 8 s");
  assert.is(printer.health.state, "disconnected");
  assert.match(printer.health.lastError ?? "", /unplugged/);

  transport.replug();
  timers.advance(8000);
  await settle();
  assert.is(printer.health.state, "ok");
  assert.equal(await printer.print(payment), { printed: true });
  assert.equal(sim.receipts.at(-1)?.qr, ["pay_0002"]);

  // A fresh loss is noticed at once, idle as the printer is (the link reports it), and the backoff starts again from 1 s.
  const lostAt = timers.now().getTime();
  transport.unplug();
  await settle();
  assert.is(printer.health.state, "disconnected");
  transport.replug();
  timers.advance(1000);
  await settle();
  assert.is(opens.at(-1), lostAt + 1000);
  assert.is(printer.health.state, "ok");
});

test("a print stuck on the link times out, resets the link and never blocks the caller", async () => {
  const { printer, timers, transport } = fresh({ printTimeoutMs: 5000 });
  await printer.start();
  transport.stall = true;
  let result: unknown;
  const p = printer.print(checkin).then((r) => {
    result = r;
  });
  await settle();
  timers.advance(4999);
  await settle();
  assert.is(result, undefined);
  timers.advance(1);
  await p;
  assert.equal(result, { printed: false, reason: "timeout", detail: "not printed within 5000 ms" });
  await settle();
  assert.is(printer.health.state, "disconnected");
  transport.stall = false;
  timers.advance(1000);
  await settle();
  assert.is(printer.health.state, "ok");
  assert.equal(await printer.print(checkin), { printed: true });
});

test("print() never rejects: a bad receipt resolves with the problem named; too many waiting → busy", async () => {
  const { printer, timers, detach } = fresh({ maxQueued: 2 });
  assert.equal(await printer.print(checkin), { printed: false, reason: "stopped" });
  await printer.start();
  const bad = await printer.print({ ...checkin, timeZone: "Nowhere/Land" });
  assert.is(bad.printed, false);
  assert.match(bad.printed ? "" : (bad.detail ?? ""), /timeZone must be an IANA zone/);
  detach();
  const a = printer.print(checkin);
  const b = printer.print(checkin);
  assert.equal(await printer.print(checkin), { printed: false, reason: "busy", detail: "2 receipts already waiting" });
  await settle();
  timers.advance(500);
  await settle();
  timers.advance(500);
  assert.equal((await a).printed, false);
  assert.equal((await b).printed, false);
});

test("selfTest: paper ok, near end, out, silent printer, stopped", async () => {
  const { printer, sim, timers, detach } = fresh();
  assert.equal(await printer.selfTest(), { ok: false, detail: "printer unit is not started" });
  await printer.start();
  assert.equal(await printer.selfTest(), { ok: true, detail: "printer on memory answers; paper ok" });
  sim.setPaper("near-end");
  assert.equal(await printer.selfTest(), {
    ok: true,
    detail: "printer on memory answers; paper near end, replace the roll soon",
  });
  sim.setPaper("out");
  assert.equal(await printer.selfTest(), { ok: false, detail: "printer on memory is out of paper" });
  detach();
  const pending = printer.selfTest();
  await settle();
  timers.advance(500);
  assert.equal(await pending, { ok: false, detail: "printer on memory did not answer DLE EOT 4 within 500 ms" });
});

test("stop() clears every timer, closes the link, and later prints say stopped", async () => {
  const { printer, timers, transport } = fresh();
  await printer.start();
  assert.ok(timers.pending > 0, "the status poll is scheduled");
  await printer.stop();
  assert.is(timers.pending, 0);
  assert.is(transport.isOpen, false);
  assert.equal(await printer.print(checkin), { printed: false, reason: "stopped" });

  // Also while a reconnect is pending.
  transport.unplug();
  await printer.start();
  assert.is(printer.health.state, "disconnected");
  await printer.stop();
  assert.is(timers.pending, 0);
});

test("hot-plug: a vanished device node disconnects at the next look; its return reconnects then, not at the next backoff step", async () => {
  // A cable with a device node: present() is what a stat of /dev/ttyUSB0 or /dev/usb/lp0 would say.
  const r = fresh({ reconnectMinMs: 1000, reconnectMaxMs: 60_000, presenceIntervalMs: 500 });
  const { printer, timers, transport, opens } = r;
  Object.assign(transport, { present: async () => !transport.unplugged });
  await printer.start();
  assert.is(printer.health.state, "ok");
  transport.unplug();
  await settle();
  assert.is(printer.health.state, "disconnected");
  // Away for a while: the backoff grows to 32 s between tries.
  for (let i = 0; i < 130; i++) {
    timers.advance(500);
    await settle();
  }
  const lastTry = opens.at(-1) as number;
  transport.replug();
  timers.advance(500);
  await settle();
  assert.is(opens.at(-1), timers.now().getTime(), "reopened at the first look after the replug");
  assert.ok(timers.now().getTime() - lastTry < 32_000, "before the next backoff step");
  assert.is(printer.health.state, "ok");
});

test("a failing status listener does not break printing", async () => {
  const { printer } = fresh({
    onPaperStatus: () => {
      throw new Error("telemetry down");
    },
  });
  await printer.start();
  assert.equal(await printer.print(checkin), { printed: true });
});

test.run();

// --- through a real device path ----------------------------------------------

const pty = suite("receipt-printer over a pty");
let dir = "";
pty.before(async () => {
  dir = await mkdtemp(join(tmpdir(), "paylane-printer-"));
});
pty.after(() => rmSync(dir, { recursive: true, force: true }));

pty("serial port on a pty: prints, loses the port, reopens with backoff, prints again", async () => {
  const pair = new PtyPair(dir, "int");
  await pair.start();
  const peer = new PtyPeer(pair.b);
  await peer.open();
  const sim = new PrinterSimulator();
  sim.attach(peer);
  const timers = new FakeTimers();
  const waiters = new Set<() => void>();
  const printer = new ReceiptPrinter({
    transport: new SerialTransport({ path: pair.a, baudRate: 115200, timers }),
    timers,
    logger: pino({ level: "silent" }),
    onChange: () => {
      for (const w of waiters) w();
    },
  });
  /** Resolves when the printer reports `state` (checked on each health change). */
  const reaches = (state: string) =>
    new Promise<void>((resolve) => {
      const check = () => {
        if (printer.health.state !== state) return;
        waiters.delete(check);
        resolve();
      };
      waiters.add(check);
      check();
    });
  try {
    await within(printer.start(), 3000, "printer start");
    assert.is(printer.health.state, "ok");
    const first = sim.nextReceipt();
    assert.equal(await within(printer.print(checkin), 3000, "print"), { printed: true });
    assert.equal((await within(first, 3000, "the receipt at the printer")).qr, ["ci_0001"]);

    // The port goes away (USB-serial adapter pulled).
    await peer.close();
    await pair.stop();
    const lost = await within(printer.print(payment), 3000, "print on a lost port");
    assert.equal(lost.printed, false);
    assert.is(printer.health.state, "disconnected");

    // Back: the next reopen (1 s of fake time) finds it and prints.
    await pair.start();
    await peer.open();
    const ok = reaches("ok");
    timers.advance(1000);
    await within(ok, 3000, "the printer to come back");
    const second = sim.nextReceipt();
    assert.equal(await within(printer.print(payment), 3000, "print after reconnect"), { printed: true });
    assert.equal((await within(second, 3000, "the receipt at the printer")).qr, ["pay_0002"]);
  } finally {
    await printer.stop();
    await peer.close();
    await pair.stop();
  }
});

pty.run();
