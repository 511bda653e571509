/**
 * ZVT's serial transport (zvt-serial.ts): the bytes of a frame as the ZVT
 * spec and ecrterm make them (DLE STX, DLE doubled, DLE ETX, CRC-16 low byte
 * first), the decoder's resynchronisation, and the ACK/NAK/repeat rules over
 * an in-memory cable on fake timers. Then the driver paying the simulator
 * through a real pty pair (socat) at 9600 baud.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Signal } from "../../../test/support/signal.ts";
import { createLinkPair } from "../../src/hardware/serial/link-pair.ts";
import { openPtyPair } from "../../src/hardware/serial/pty-pair.ts";
import { openSerialPort } from "../../src/hardware/serial/serial-link.ts";
import { ZvtTerminal } from "../../src/hardware/terminal/zvt.ts";
import { ACK } from "../../src/hardware/terminal/zvt-frame.ts";
import { registration } from "../../src/hardware/terminal/zvt-messages.ts";
import {
  crc16,
  encodeSerialFrame,
  SerialFrameDecoder,
  type SerialFrameEvent,
  zvtSerialLink,
} from "../../src/hardware/terminal/zvt-serial.ts";
import { ZvtSimulator } from "../../src/hardware/terminal/zvt-simulator.ts";
import { FakeTimers } from "../fake-timers.ts";
import { show as hex } from "./bytes.ts";

const test = suite("zvt serial transport");

const turn = () => new Promise<void>((r) => setImmediate(r));

test("CRC-16 is CCITT as ZVT computes it (reflected 0x8408, start 0): 123456789 gives 0x2189", () => {
  assert.is(crc16(new TextEncoder().encode("123456789")), 0x2189);
});

test("the APDU ACK 80 00 00 goes as 10 02 80 00 00 10 03 F5 1F, as in ZVT traces", () => {
  assert.is(hex(encodeSerialFrame(ACK)), "10 02 80 00 00 10 03 F5 1F");
});

test("a 10 in the APDU is doubled on the wire and counted once in the CRC", () => {
  const apdu = Uint8Array.of(0x06, 0x01, 0x02, 0x10, 0x20);
  const frame = encodeSerialFrame(apdu);
  assert.is(hex(frame.subarray(0, 9)), "10 02 06 01 02 10 10 20 10");
  const events = new SerialFrameDecoder().push(frame);
  assert.equal(events, [{ type: "frame", apdu }]);
});

test("frames split anywhere, ACK/NAK bytes between them, and line noise are told apart", () => {
  const a = encodeSerialFrame(registration("000000", 0x18, 978));
  const b = encodeSerialFrame(ACK);
  const wire = Uint8Array.from([0x06, 0xaa, 0xbb, ...a, 0x15, ...b]);
  const d = new SerialFrameDecoder();
  const events: SerialFrameEvent[] = [];
  for (let i = 0; i < wire.length; i += 3) events.push(...d.push(wire.subarray(i, i + 3)));
  assert.equal(
    events.map((e) => e.type),
    ["ack", "discard", "frame", "nak", "frame"],
  );
  assert.equal(events[1], { type: "discard", bytes: 2 });
});

test("a corrupted frame is reported (so it is NAKed) and the next frame still decodes", () => {
  const good = encodeSerialFrame(ACK);
  const bad = Uint8Array.from(good);
  bad[3] = 0x01;
  const d = new SerialFrameDecoder();
  assert.equal(d.push(bad), [{ type: "bad-frame", reason: "CRC mismatch" }]);
  assert.equal(d.push(good), [{ type: "frame", apdu: ACK }]);
  // A frame cut short by a new DLE STX: the broken one is dropped, the new one read.
  const cut = good.subarray(0, 5);
  assert.equal(
    d.push(Uint8Array.from([...cut, ...good])).map((e) => e.type),
    ["bad-frame", "frame"],
  );
});

test("a write resolves once the peer ACKs; a NAK makes the frame go again; a frame refused 3 times ends the line", async () => {
  const timers = new FakeTimers();
  const pair = createLinkPair("/dev/ttyZVT");
  const link = zvtSerialLink(pair.host, { timers, ackTimeoutMs: 1000 });
  const seen: string[] = [];
  pair.device.onData((chunk) => seen.push(hex(chunk)));
  let lost: Error | undefined;
  link.onClose((err) => {
    lost = err;
  });

  let done = false;
  const first = link.write(ACK).then(() => {
    done = true;
  });
  await turn();
  assert.equal(seen, ["10 02 80 00 00 10 03 F5 1F"]);
  await pair.device.write(Uint8Array.of(0x15));
  await turn();
  assert.is(seen.length, 2, "sent again after the NAK");
  assert.not.ok(done);
  await pair.device.write(Uint8Array.of(0x06));
  await first;
  assert.is(link.counters.repeats, 1);

  // No answer at all: repeated after each ackTimeoutMs, then given up.
  const second = link.write(ACK).catch((err: Error) => err);
  await turn();
  timers.advance(1000);
  await turn();
  timers.advance(1000);
  await turn();
  assert.is(seen.length, 5, "three tries of the second frame");
  timers.advance(1000);
  const err = await second;
  assert.instance(err, Error);
  assert.match(String(lost?.message), /not acknowledged 3 times; the line is given up/);
  assert.is(timers.pending, 0);
});

test("a frame arriving with a bad CRC is answered NAK and not delivered; a good one ACK and delivered", async () => {
  const pair = createLinkPair();
  const link = zvtSerialLink(pair.host, { timers: new FakeTimers() });
  const got: string[] = [];
  const answers: string[] = [];
  link.onData((apdu) => got.push(hex(apdu)));
  pair.device.onData((chunk) => answers.push(hex(chunk)));
  const bad = encodeSerialFrame(ACK);
  bad[bad.length - 1] = 0x00; // the CRC's high byte is 0x1F
  await pair.device.write(bad);
  await pair.device.write(encodeSerialFrame(ACK));
  await turn();
  assert.equal(answers, ["15", "06"]);
  assert.equal(got, ["80 00 00"]);
  assert.is(link.counters.naksSent, 1);
  await link.close();
});

test("the driver pays the simulator over a real pty pair at 9600 baud, ZVT's serial framing on both ends", async () => {
  const dir = await mkdtemp(join(tmpdir(), "paylane-zvt-serial-"));
  const pair = await openPtyPair({ devicePath: join(dir, "ttyZVT"), peerPath: join(dir, "zvt-sim") });
  const signal = new Signal();
  const sim = new ZvtSimulator({ onChange: signal.notify });
  const line = await openSerialPort(pair.peerPath, { baudRate: 9600 });
  sim.attach(line);
  const terminal = new ZvtTerminal({
    serial: { path: pair.devicePath },
    logger: pino({ level: "silent" }),
    onStateChange: signal.notify,
  });
  try {
    const approved = await terminal.charge({ amount: 1250, currency: "EUR", reference: "pty-1" });
    assert.equal(approved, {
      status: "approved",
      reference: "000001-0001",
      approvalCode: approved.status === "approved" ? approved.approvalCode : "",
      cardLabel: "VISA •••• 4242",
    });
    sim.nextOutcome("decline");
    const declined = await terminal.charge({ amount: 300, currency: "EUR", reference: "pty-2" });
    assert.is(declined.status, "declined");
    assert.is(terminal.state, "ready");
    assert.equal(
      { charges: sim.stats.charges, approved: sim.stats.approved, registrations: sim.stats.registrations },
      { charges: 2, approved: 1, registrations: 1 },
    );
  } finally {
    await terminal.close();
    sim.dropConnections();
    await line.close();
    await pair.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test.run();
