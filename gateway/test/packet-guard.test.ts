/**
 * The packet size guard: the Remaining Length variable byte integer of MQTT
 * 3.1.1 §2.2.3 decoded across any chunk boundary, packet boundaries followed
 * through bodies, and the guard stream closing its socket on the first
 * oversize header while normal traffic passes through unchanged.
 */
import { Duplex, PassThrough } from "node:stream";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { KeyedSemaphore } from "../src/limits.ts";
import { MAX_REMAINING_LENGTH, PacketSizeGuard, PacketSizeReader, type Violation } from "../src/packet-guard.ts";

/** The spec's own examples (§2.2.3, Table 2.4) and each length-byte boundary. */
const ENCODINGS: [number, number[]][] = [
  [0, [0x00]],
  [127, [0x7f]],
  [128, [0x80, 0x01]],
  [16_383, [0xff, 0x7f]],
  [16_384, [0x80, 0x80, 0x01]],
  [2_097_151, [0xff, 0xff, 0x7f]],
  [2_097_152, [0x80, 0x80, 0x80, 0x01]],
  [MAX_REMAINING_LENGTH, [0xff, 0xff, 0xff, 0x7f]],
];

const header = (length: number[]) => Uint8Array.from([0x30, ...length]);

/** The Remaining Length encoding of §2.2.3, written out for the tests' own packets. */
function encodeLength(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return out;
}

/** A QoS 0 PUBLISH (§3.3): fixed header, topic with its length, payload. */
function publish(topic: string, payloadBytes: number): Buffer {
  const name = Buffer.from(topic, "utf8");
  const body = Buffer.concat([
    Buffer.from([name.length >> 8, name.length & 0xff]),
    name,
    Buffer.alloc(payloadBytes, 1),
  ]);
  return Buffer.concat([Buffer.from([0x30, ...encodeLength(body.length)]), body]);
}

const PINGREQ = Buffer.from([0xc0, 0x00]);
/** A CONNECT's bytes as far as the guard cares: type 1, and a body of the length it announces. */
const CONNECT = Buffer.concat([Buffer.from([0x10, 20]), Buffer.alloc(20, 7)]);

/** Feeds `bytes` in chunks of `size` bytes; the first violation, or null. */
function feed(reader: PacketSizeReader, bytes: Uint8Array, size: number): Violation | null {
  for (let i = 0; i < bytes.length; i += size) {
    const violation = reader.push(bytes.subarray(i, i + size));
    if (violation) return violation;
  }
  return null;
}

test("the tests' own encoder matches the spec's table", () => {
  for (const [length, bytes] of ENCODINGS) assert.equal(encodeLength(length), bytes);
});

test("decodes every Remaining Length of the spec's table, whole or split byte by byte", () => {
  for (const [length, bytes] of ENCODINGS) {
    for (const size of [1, 2, 5]) {
      // A limit one byte short of the packet: the announced size is exactly header + length.
      const announced = 1 + bytes.length + length;
      const reader = new PacketSizeReader(Math.max(2, announced - 1));
      const violation = feed(reader, header(bytes), size);
      if (announced - 1 < 2) continue;
      assert.equal(violation, { kind: "oversize", announced }, `length ${length} in chunks of ${size}`);
    }
  }
});

test("a packet of exactly the limit passes; one byte more does not", () => {
  const body = new Uint8Array(200);
  const packet = Uint8Array.from([0x30, 0xc8, 0x01, ...body]); // 200 = 0xc8 0x01
  assert.is(new PacketSizeReader(203).push(packet), null);
  assert.equal(new PacketSizeReader(202).push(packet), { kind: "oversize", announced: 203 });
});

test("follows packet boundaries through bodies, so a large header after small packets is still caught", () => {
  const small = publish("paylane/v1/s1/k1/telemetry", 300);
  const ping = PINGREQ;
  // 250 MB announced, as the attacker did: 250,000,000 = 0x80 0xe5 0x9a 0x77.
  const huge = header([0x80, 0xe5, 0x9a, 0x77]);
  const stream = Buffer.concat([small, ping, small, ping, huge, Buffer.alloc(1000)]);
  for (const size of [1, 3, 7, 64, 1024, stream.length]) {
    const reader = new PacketSizeReader(1024);
    assert.equal(feed(reader, stream, size), { kind: "oversize", announced: 250_000_005 }, `chunks of ${size}`);
  }
  // The same traffic without the huge packet passes whole.
  assert.is(feed(new PacketSizeReader(1024), Buffer.concat([small, ping, small, ping]), 5), null);
});

test("a fifth length byte is malformed", () => {
  assert.equal(new PacketSizeReader(1 << 20).push(header([0x80, 0x80, 0x80, 0x80, 0x01])), {
    kind: "malformed-length",
  });
});

test("a limit below 2 bytes is refused", () => {
  assert.throws(() => new PacketSizeReader(1), /at least 2/);
  assert.throws(() => new PacketSizeReader(2.5), /integer/);
});

/** A socket stand-in: what the guard writes lands in `written`; `emitData` is the peer sending. */
class FakeSocket extends Duplex {
  written: Buffer[] = [];
  override _read(): void {}
  override _write(chunk: Buffer, _e: BufferEncoding, cb: () => void): void {
    this.written.push(chunk);
    cb();
  }
  emitData(chunk: Uint8Array): void {
    this.push(chunk);
  }
}

const closed = (stream: Duplex) =>
  new Promise<void>((resolve) => (stream.destroyed ? resolve() : stream.once("close", () => resolve())));

test("the guard passes traffic both ways and closes the socket on an oversize header, before the payload", async () => {
  const socket = new FakeSocket();
  const seen: Violation[] = [];
  const guard = new PacketSizeGuard(socket, {
    maxPacketBytes: 1024,
    remoteAddress: "192.0.2.7",
    onViolation: (v) => seen.push(v),
  });
  assert.is(guard.remoteAddress, "192.0.2.7");
  const received: Buffer[] = [];
  const out = new PassThrough();
  guard.pipe(out);
  out.on("data", (chunk: Buffer) => received.push(chunk));

  const connect = Buffer.concat([CONNECT, publish("paylane/v1/s1/k1/telemetry", 900)]);
  socket.emitData(connect);
  guard.write(Buffer.from([0x20, 0x02, 0x00, 0x00])); // a CONNACK back
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(Buffer.concat(received), connect);
  assert.equal(Buffer.concat(socket.written), Buffer.from([0x20, 0x02, 0x00, 0x00]));

  // The header arrives split over two reads; the rest never reaches the reading side.
  socket.emitData(Uint8Array.from([0x30, 0x80]));
  socket.emitData(Uint8Array.from([0xe5, 0x9a, 0x77, 1, 2, 3]));
  await closed(socket);
  await closed(guard);
  assert.equal(seen, [{ kind: "oversize", announced: 250_000_005 }]);
  // The header's first read passed (its length was not complete yet); nothing after it did.
  assert.equal(Buffer.concat(received), Buffer.concat([connect, Buffer.from([0x30, 0x80])]));
});

test("KeyedSemaphore runs at most `limit` tasks per key, in order, and forgets idle keys", async () => {
  const semaphore = new KeyedSemaphore(2);
  let running = 0;
  let most = 0;
  const order: number[] = [];
  const gates: (() => void)[] = [];
  const task = (i: number) =>
    semaphore.run("a", async () => {
      running++;
      most = Math.max(most, running);
      order.push(i);
      await new Promise<void>((resolve) => gates.push(resolve));
      running--;
      return i;
    });
  const other = semaphore.run("b", async () => "b");
  const results = Promise.all([0, 1, 2, 3, 4].map(task));
  assert.is(await other, "b", "another key is not held up");
  while (order.length < 5) {
    await new Promise((resolve) => setImmediate(resolve));
    gates.shift()?.();
  }
  for (const open of gates.splice(0)) open();
  assert.equal(await results, [0, 1, 2, 3, 4]);
  assert.equal(order, [0, 1, 2, 3, 4]);
  assert.is(most, 2);
  assert.is(semaphore.size, 0);
});

test.run();
