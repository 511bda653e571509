/**
 * A serial line whose far end goes ends the port, also when the read comes
 * after Linux hung the tty up (every read then returns 0 bytes, where
 * bindings-cpp 13 reads again forever and the port never closes: CI saw a
 * terminal unplugged and never reported gone). The real case is made to
 * happen every time: the port is opened but not read until the pty's far end
 * (socat) is gone, so the first read meets the hung-up tty. Then the read
 * itself, with a stand-in for fs.read: 0 bytes, EAGAIN, a close meanwhile.
 */
import { SerialPortStream } from "@serialport/stream";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { within } from "../../../test/support/within.ts";
import { hangUpAwareBinding, readOrHangUp } from "../../src/hardware/serial/hangup-binding.ts";
import { openPtyPair } from "../../src/hardware/serial/pty-pair.ts";

const test = suite("serial hang-up");

test("a port first read after its far end went closes, with the device hung up as the reason", async () => {
  const pty = await openPtyPair();
  const port = new SerialPortStream({
    binding: hangUpAwareBinding,
    path: pty.devicePath,
    baudRate: 9600,
    autoOpen: false,
  });
  try {
    await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
    // socat ends: the master side closes and the kernel hangs our side up. Nothing has read yet.
    await pty.close();
    const closed = new Promise<Error | null>((resolve) => port.once("close", resolve));
    port.on("data", () => {}); // the first read
    const reason = await within(closed, 5000, "the port to close after its far end went");
    assert.match(String(reason?.message), /hung up/);
  } finally {
    if (port.isOpen) await new Promise((resolve) => port.close(resolve));
    await pty.close();
  }
});

/** A port binding as readOrHangUp sees it; `readable()` is what its poller would say next. */
function fakePort() {
  const waiting: ((err: Error | null) => void)[] = [];
  const port = {
    isOpen: true,
    fd: 7 as number | null,
    poller: { once: (_event: "readable", listener: (err: Error | null) => void) => waiting.push(listener) },
    read: () => Promise.reject(new Error("not used")),
  };
  return { port, readable: () => waiting.shift()?.(null), waiting };
}

/** A stand-in for fs.read giving each of `results` in turn; past the end it says the read loops. */
function reads(results: (number | string)[]) {
  let calls = 0;
  const read = (async (_fd: number, buffer: Buffer) => {
    const r = results[calls++];
    if (r === undefined) throw new Error(`read called ${calls} times: it loops`);
    if (typeof r === "string") throw Object.assign(new Error(r), { code: r });
    buffer.fill(0x41, 0, r);
    return { bytesRead: r, buffer };
  }) as unknown as Parameters<typeof readOrHangUp>[4];
  return { read, calls: () => calls };
}

test("0 bytes is the hang-up: the read fails once, it does not read again", async () => {
  const { port } = fakePort();
  const r = reads([0]);
  const err = await readOrHangUp(port, Buffer.alloc(8), 0, 8, r.read).catch((e: Error) => e);
  assert.instance(err, Error);
  assert.match((err as Error).message, /hung up/);
  assert.is.not((err as { canceled?: boolean }).canceled, true, "a canceled error would not close the stream");
  assert.is(r.calls(), 1);
});

test("nothing to read yet (EAGAIN) waits for the poller, then returns what came", async () => {
  const { port, readable, waiting } = fakePort();
  const r = reads(["EAGAIN", 3]);
  const pending = readOrHangUp(port, Buffer.alloc(8), 0, 8, r.read);
  await new Promise((resolve) => setImmediate(resolve));
  assert.is(waiting.length, 1, "waits on the poller, not on another read");
  readable();
  const { bytesRead, buffer } = await pending;
  assert.is(bytesRead, 3);
  assert.is(buffer.subarray(0, 3).toString(), "AAA");
});

test("a port closed while the read waited ends it as canceled, which the stream ignores", async () => {
  const { port, readable } = fakePort();
  const r = reads(["EAGAIN"]);
  const pending = readOrHangUp(port, Buffer.alloc(8), 0, 8, r.read).catch((e: Error) => e);
  await new Promise((resolve) => setImmediate(resolve));
  port.isOpen = false;
  port.fd = null;
  readable();
  const err = await pending;
  assert.is((err as { canceled?: boolean }).canceled, true);
  assert.is(r.calls(), 1);
});

test("a read error other than EAGAIN is passed on, and closes the stream", async () => {
  const { port } = fakePort();
  const err = await readOrHangUp(port, Buffer.alloc(8), 0, 8, reads(["EIO"]).read).catch((e: Error) => e);
  assert.is((err as NodeJS.ErrnoException).code, "EIO");
});

test.run();
