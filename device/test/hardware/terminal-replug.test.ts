/**
 * Terminal hot-plug with the daemon's setting (reconnectMs 1000): on TCP the
 * connection dropped and the terminal restarted on the same port; on a serial
 * line the device (a socat pty) gone and back at the same path. Each time the
 * driver's state says so within 2 s, with no restart of the driver, and the
 * terminal's return is timed from just after a failed try (the worst case of
 * the retry schedule). A payment in flight when the line drops ends
 * "disconnected" and is never sent again. Real time: waits are on events.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pino } from "pino";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Signal } from "../../../test/support/signal.ts";
import { openPtyPair, type PtyPair } from "../../src/hardware/serial/pty-pair.ts";
import { openSerialPort, type SerialLink } from "../../src/hardware/serial/serial-link.ts";
import type { TerminalState } from "../../src/hardware/terminal/terminal.ts";
import { ZvtTerminal, type ZvtTerminalOptions } from "../../src/hardware/terminal/zvt.ts";
import { ZvtSimulator } from "../../src/hardware/terminal/zvt-simulator.ts";

const test = suite("terminal replug");
const WAIT_MS = 10_000;
const REPORTED_WITHIN_MS = 2000;

class Rig {
  readonly signal = new Signal();
  readonly logs: string[] = [];
  readonly sim = new ZvtSimulator({ onChange: this.signal.notify });
  readonly changes: { state: TerminalState; at: number }[] = [];
  terminal!: ZvtTerminal;

  open(where: Pick<ZvtTerminalOptions, "host" | "port" | "serial">): ZvtTerminal {
    const sink = new Writable({
      write: (chunk, _enc, done) => {
        this.logs.push(String(chunk));
        this.signal.notify();
        done();
      },
    });
    this.terminal = new ZvtTerminal({
      ...where,
      reconnectMs: 1000,
      logger: pino({ level: "info" }, sink),
      onStateChange: (state) => {
        this.changes.push({ state, at: Date.now() });
        this.signal.notify();
      },
    });
    return this.terminal;
  }

  /** Resolves with when the driver last turned `s`, once it is `s`. */
  state(s: TerminalState): Promise<number> {
    return this.signal.until(
      () => (this.terminal.state === s ? (this.changes.findLast((c) => c.state === s)?.at ?? 1) : undefined),
      `terminal ${s}`,
      WAIT_MS,
    );
  }

  /** Resolves once the driver has logged `n` failed tries to reach the terminal since the rig began. */
  failedTries(n: number): Promise<true> {
    return this.signal.until(
      () => this.logs.filter((l) => l.includes("payment terminal unreachable")).length >= n,
      `${n} failed tries logged`,
      WAIT_MS,
    );
  }

  async close(): Promise<void> {
    await this.terminal?.close();
    await this.sim.stop();
  }
}

test("TCP: a dropped connection and a restarted terminal are each seen within 2 s, and payments go on", async () => {
  const rig = new Rig();
  try {
    const { port } = await rig.sim.start();
    await rig.open({ host: "127.0.0.1", port }).connect();
    assert.is(rig.terminal.state, "ready");

    let at = Date.now();
    rig.sim.dropConnections();
    assert.ok((await rig.state("disconnected")) - at < REPORTED_WITHIN_MS, "drop seen late");
    assert.ok((await rig.state("ready")) - at < REPORTED_WITHIN_MS + 1000, "relinked late");

    // Restarted: gone for longer than one try, back on the same port.
    await rig.sim.stop();
    await rig.state("disconnected");
    await rig.failedTries(1);
    await rig.sim.start(port);
    at = Date.now();
    assert.ok((await rig.state("ready")) - at < REPORTED_WITHIN_MS, "return seen late");
    assert.is((await rig.terminal.charge({ amount: 250, currency: "EUR", reference: "tcp-1" })).status, "approved");
    assert.ok(rig.logs.some((l) => l.includes("payment terminal back")));
    // A terminal that stays away is logged once, not once a try.
    assert.is(rig.logs.filter((l) => l.includes("payment terminal unreachable")).length, 1);
  } finally {
    await rig.close();
  }
});

test("TCP: a payment in flight when the connection drops ends disconnected and is not sent again", async () => {
  const rig = new Rig();
  try {
    const { port } = await rig.sim.start();
    await rig.open({ host: "127.0.0.1", port }).connect();
    rig.sim.nextOutcome("timeout");
    const charge = rig.terminal.charge({ amount: 700, currency: "EUR", reference: "tcp-2" });
    await rig.signal.until(() => rig.sim.stats.charges === 1 && rig.sim.stats.acks >= 2, "the card awaited", WAIT_MS);
    rig.sim.dropConnections();
    assert.is((await charge).status, "disconnected");
    await rig.state("ready");
    assert.is((await rig.terminal.charge({ amount: 900, currency: "EUR", reference: "tcp-3" })).status, "approved");
    assert.equal({ charges: rig.sim.stats.charges, approved: rig.sim.stats.approved }, { charges: 2, approved: 1 });
    assert.equal(rig.sim.lastCharge, { amount: 900, currency: "EUR" });
  } finally {
    await rig.close();
  }
});

test("serial: the device gone and back at the same path is seen within 2 s each way, and payments go on", async () => {
  const dir = await mkdtemp(join(tmpdir(), "paylane-zvt-replug-"));
  const paths = { devicePath: join(dir, "ttyZVT"), peerPath: join(dir, "zvt-sim") };
  const rig = new Rig();
  let pair: PtyPair | undefined;
  let line: SerialLink | undefined;
  const plugIn = async () => {
    pair = await openPtyPair(paths);
    line = await openSerialPort(paths.peerPath, { baudRate: 9600 });
    rig.sim.attach(line);
  };
  const unplug = async () => {
    await line?.close();
    await pair?.close();
  };
  try {
    await plugIn();
    await rig.open({ serial: { path: paths.devicePath } }).connect();
    assert.is((await rig.terminal.charge({ amount: 100, currency: "EUR", reference: "ser-1" })).status, "approved");

    let at = Date.now();
    await unplug();
    assert.ok((await rig.state("disconnected")) - at < REPORTED_WITHIN_MS, "unplug seen late");
    await rig.failedTries(1);
    await plugIn();
    at = Date.now();
    assert.ok((await rig.state("ready")) - at < REPORTED_WITHIN_MS, "replug seen late");
    assert.is((await rig.terminal.charge({ amount: 200, currency: "EUR", reference: "ser-2" })).status, "approved");
    assert.equal(
      { charges: rig.sim.stats.charges, registrations: rig.sim.stats.registrations },
      { charges: 2, registrations: 2 },
    );
  } finally {
    await rig.close();
    await unplug();
    await rm(dir, { recursive: true, force: true });
  }
});

test.run();
