/**
 * One contract, three transports: in-memory, a serial port (serialport) and a
 * USB printer device file (node:fs FileHandle). The two real ones run on a
 * socat pty pair, so they open a real device path and move bytes through the
 * kernel as on a kiosk; the printer end is serialport on the pair's other side.
 *
 * Why a pty for the device-file transport (not a FIFO or socketpair): a pty
 * is a character device read and written through one read/write fd, like
 * /dev/usb/lp0, it supports O_NONBLOCK the same way, and it can vanish (socat
 * stopped) to play the printer being unplugged. A FIFO is one-way; a
 * socketpair cannot be opened by path.
 *
 * Timeouts run on FakeTimers; only real I/O is awaited, behind a wall-clock
 * guard that can only fail a test.
 */
import { rmSync } from "node:fs";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { within } from "../../../test/support/within.ts";
import { DeviceFileTransport } from "../../src/hardware/printer/device-file-transport.ts";
import { MemoryTransport } from "../../src/hardware/printer/memory-transport.ts";
import { SerialTransport } from "../../src/hardware/printer/serial-transport.ts";
import { type PrinterEnd, type PrinterTransport, TransportError } from "../../src/hardware/printer/transport.ts";
import { realTimers } from "../../src/timers.ts";
import { FakeTimers } from "../fake-timers.ts";
import { PtyPair, PtyPeer, received } from "./printer-harness.ts";

interface Harness {
  transport: PrinterTransport;
  timers: FakeTimers;
  /** The printer end of the link. */
  peer: PrinterEnd;
  /** Pulls the cable; resolves once it is out. */
  unplug(): Promise<void>;
  replug(): Promise<void>;
  dispose(): Promise<void>;
}

const dir = await mkdtemp(join(tmpdir(), "paylane-printer-"));
process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
let n = 0;

async function ptyHarness(make: (path: string, timers: FakeTimers) => PrinterTransport): Promise<Harness> {
  const pair = new PtyPair(dir, `p${++n}`);
  await pair.start();
  const peer = new PtyPeer(pair.b);
  await peer.open();
  const timers = new FakeTimers();
  const transport = make(pair.a, timers);
  return {
    transport,
    timers,
    peer,
    unplug: async () => {
      await peer.close();
      await pair.stop();
    },
    replug: async () => {
      await pair.start();
      await peer.open();
    },
    dispose: async () => {
      await transport.close();
      await peer.close();
      await pair.stop();
    },
  };
}

const factories: Record<string, () => Promise<Harness>> = {
  memory: async () => {
    const timers = new FakeTimers();
    const transport = new MemoryTransport({ timers });
    return {
      transport,
      timers,
      peer: transport.peer,
      unplug: async () => transport.unplug(),
      replug: async () => transport.replug(),
      dispose: () => transport.close(),
    };
  },
  "serial (pty)": () => ptyHarness((path, timers) => new SerialTransport({ path, baudRate: 115200, timers })),
  // Polling cadence on the real clock (it waits for real bytes); read timeouts on the fake one.
  "device file (pty)": () =>
    ptyHarness((path, timers) => new DeviceFileTransport({ path, timers, pollTimers: realTimers, pollIntervalMs: 2 })),
};

/** Reads until `count` bytes came, asserting no read returns more than `max`. */
async function readAll(t: PrinterTransport, count: number, max: number): Promise<number[]> {
  const out: number[] = [];
  while (out.length < count) {
    const got = await within(t.read(max, 60_000), 3000, `${count} bytes from the printer`);
    assert.ok(got.length >= 1 && got.length <= max, `read returned ${got.length} bytes for max ${max}`);
    out.push(...got);
  }
  return out;
}

async function rejectsWith(p: Promise<unknown>, code: RegExp): Promise<TransportError> {
  try {
    await p;
  } catch (err) {
    assert.instance(err, TransportError);
    assert.match((err as TransportError).code, code);
    return err as TransportError;
  }
  throw new Error("expected a rejection");
}

function contract(name: string, make: () => Promise<Harness>): void {
  const test = suite(`transport contract: ${name}`);
  let h: Harness;
  test.before.each(async () => {
    h = await make();
  });
  test.after.each(async () => {
    await h.dispose();
  });

  test("nothing goes out before open(); the error names the link", async () => {
    assert.is(h.transport.isOpen, false);
    const err = await rejectsWith(h.transport.write(Uint8Array.of(1)), /not-open/);
    assert.match(err.message, /not open/);
    await rejectsWith(h.transport.read(1, 10), /not-open/);
  });

  test("bytes written reach the printer exactly, a large job included", async () => {
    await h.transport.open();
    assert.is(h.transport.isOpen, true);
    const job = Uint8Array.from({ length: 10_000 }, (_, i) => (i * 7 + 3) & 0xff);
    const arriving = received(h.peer, job.length);
    await within(h.transport.write(job), 3000, "the write");
    assert.equal(await arriving, job);
  });

  test("bytes from the printer are read, at most `max` at a time, the rest kept for the next read", async () => {
    await h.transport.open();
    h.peer.write(Uint8Array.of(0x12, 0x1e, 0x7e));
    assert.equal(await readAll(h.transport, 3, 2), [0x12, 0x1e, 0x7e]);
  });

  test("a read with nothing to read resolves empty when its timeout passes", async () => {
    await h.transport.open();
    let settled = false;
    const p = h.transport.read(1, 500).then((b) => {
      settled = true;
      return b;
    });
    h.timers.advance(499);
    await new Promise((r) => setImmediate(r));
    assert.is(settled, false, "still waiting before the timeout");
    h.timers.advance(1);
    assert.equal([...(await within(p, 3000, "the read timeout"))], []);
  });

  test("discardInput() drops a stale answer so the next read gets the fresh one", async () => {
    await h.transport.open();
    h.peer.write(Uint8Array.of(0xaa, 0xbb));
    assert.equal(await readAll(h.transport, 1, 1), [0xaa]);
    await h.transport.discardInput();
    h.peer.write(Uint8Array.of(0xcc));
    assert.equal(await readAll(h.transport, 1, 1), [0xcc]);
  });

  test("close(): a waiting read is rejected, I/O is refused, close twice is fine, reopen works", async () => {
    await h.transport.open();
    const waiting = rejectsWith(h.transport.read(1, 60_000), /closed/);
    await h.transport.close();
    await waiting;
    assert.is(h.transport.isOpen, false);
    await rejectsWith(h.transport.write(Uint8Array.of(1)), /not-open/);
    await h.transport.close();
    await h.transport.open();
    const arriving = received(h.peer, 2);
    await h.transport.write(Uint8Array.of(0x1b, 0x40));
    assert.equal([...(await arriving)], [0x1b, 0x40]);
  });

  test("unplugged: the next write fails, the link reports closed, cannot reopen until it is back", async () => {
    await h.transport.open();
    await h.unplug();
    await rejectsWith(h.transport.write(Uint8Array.of(0x10, 0x04, 0x04)), /lost|not-open|io/);
    assert.is(h.transport.isOpen, false);
    const err = await rejectsWith(h.transport.open(), /open-failed/);
    assert.match(err.message, /cannot open/);
    await h.replug();
    await h.transport.open();
    const arriving = received(h.peer, 3);
    await h.transport.write(Uint8Array.of(0x10, 0x04, 0x04));
    assert.equal([...(await arriving)], [0x10, 0x04, 0x04]);
  });

  test.run();
}

for (const [name, make] of Object.entries(factories)) contract(name, make);

const deviceFile = suite("device file transport");

deviceFile(
  "discardInput() also drains bytes still in the kernel, so a late answer is never taken for a fresh one",
  async () => {
    // Nothing reads the device between queries, so a late status byte waits in the kernel, not in
    // our buffer. A regular file stands in for that queue deterministically: its byte is there
    // before open and is only ever read by the transport.
    const path = join(dir, "late-answer");
    await writeFile(path, Uint8Array.of(0x7e));
    const timers = new FakeTimers();
    const t = new DeviceFileTransport({ path, timers, pollIntervalMs: 10 });
    await t.open();
    try {
      await t.discardInput();
      let settled = false;
      const p = t.read(1, 100).finally(() => {
        settled = true;
      });
      // Let the read's first look at the device finish: it either returns the byte or, finding
      // nothing, schedules its next poll (a second fake timer beside the read timeout).
      const looked = async () => {
        while (!settled && timers.pending < 2) await new Promise((r) => setImmediate(r));
      };
      await within(looked(), 3000, "the first device read");
      timers.advance(100);
      assert.equal([...(await p)], [], "the stale 0x7E was drained");
    } finally {
      await t.close();
    }
  },
);

deviceFile("the path and options are checked up front", () => {
  const timers = new FakeTimers();
  assert.throws(
    () => new DeviceFileTransport({ path: "", timers }),
    /printer device path must be a path like \/dev\/usb\/lp0/,
  );
  assert.throws(
    () => new DeviceFileTransport({ path: "/dev/usb/lp0", timers, pollIntervalMs: 0 }),
    /pollIntervalMs must be > 0/,
  );
  assert.throws(
    () => new SerialTransport({ path: "/dev/ttyUSB0", baudRate: 0, timers }),
    /baudRate must be a positive integer, got 0/,
  );
});

deviceFile.run();
