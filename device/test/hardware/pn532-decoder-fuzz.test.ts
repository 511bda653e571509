/**
 * The PN532 frame decoder under random and damaged byte streams (fast-check):
 * it never throws, its buffer stays bounded, and every intact frame is still
 * decoded — in order — however it is surrounded by garbage, damaged frames or
 * cut-off frames, and however the stream is chunked — and a frame whose data
 * holds 00 FF is delivered as soon as it is whole, never held for more bytes.
 */
import fc from "fast-check";
import { test } from "uvu";
import * as assert from "uvu/assert";
import {
  ACK_FRAME,
  DECODER_CAPACITY,
  type DecodeEvent,
  encodeInfoFrame,
  type Frame,
  FrameDecoder,
} from "../../src/hardware/pn532/frame.ts";

/** Feeds `bytes` in chunks of the given sizes (cycled), checking the bound after every push. */
function feed(d: FrameDecoder, bytes: Uint8Array, sizes: number[]): DecodeEvent[] {
  const out: DecodeEvent[] = [];
  let at = 0;
  for (let i = 0; at < bytes.length; i++) {
    const n = Math.max(1, sizes[i % sizes.length] ?? 1);
    out.push(...d.push(bytes.subarray(at, at + n)));
    at += n;
    if (d.buffered > DECODER_CAPACITY) throw new Error(`decoder holds ${d.buffered} bytes`);
  }
  out.push(...d.flush());
  return out;
}

function key(f: Frame): string {
  return f.kind === "info" ? `${f.tfi}:${Array.from(f.data).join(",")}` : f.kind;
}

/** True when `wanted` appears in `got` in order (other frames may sit between). */
function inOrder(wanted: string[], got: string[]): boolean {
  let i = 0;
  for (const g of got) if (i < wanted.length && g === wanted[i]) i++;
  return i === wanted.length;
}

const chunkSizes = fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 8 });

// Payload bytes without fast-check's bias toward 00/FF: a payload that itself
// holds a complete, checksum-valid frame is ambiguous on the wire for any decoder.
const payload = fc.array(fc.noBias(fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 40 });

const validFrame = fc
  .record({ tfi: fc.constantFrom(0xd4, 0xd5), data: payload, extended: fc.boolean() })
  .map(({ tfi, data, extended }) => ({ tfi, data: Uint8Array.from(data), extended }));

type Segment =
  | { kind: "valid"; frame: { tfi: number; data: Uint8Array; extended: boolean } }
  | { kind: "ack" }
  | { kind: "garbage"; bytes: Uint8Array }
  | { kind: "corrupt"; bytes: Uint8Array }
  | { kind: "truncated"; bytes: Uint8Array }
  | { kind: "inserted"; bytes: Uint8Array };

function encode(f: { tfi: number; data: Uint8Array; extended: boolean }): Uint8Array {
  return encodeInfoFrame(f.tfi, f.data, { extended: f.extended });
}

// One byte between LEN and DCS changed: exactly one checksum no longer holds.
const corrupted = fc.tuple(validFrame, fc.nat(), fc.integer({ min: 1, max: 255 })).map(([f, at, delta]) => {
  const bytes = encode(f);
  const header = f.extended ? 5 : 3;
  const i = header + (at % (bytes.length - 1 - header));
  bytes[i] = ((bytes[i] ?? 0) + delta) & 0xff;
  return { original: f, bytes };
});

const segment: fc.Arbitrary<Segment> = fc.oneof(
  validFrame.map((frame): Segment => ({ kind: "valid", frame })),
  fc.constant<Segment>({ kind: "ack" }),
  fc.uint8Array({ minLength: 1, maxLength: 30 }).map((bytes): Segment => ({ kind: "garbage", bytes })),
  corrupted.map(({ bytes }): Segment => ({ kind: "corrupt", bytes })),
  fc.tuple(validFrame, fc.nat()).map(([f, at]): Segment => {
    const bytes = encode(f);
    return { kind: "truncated", bytes: bytes.slice(0, 3 + (at % (bytes.length - 4))) };
  }),
  fc.tuple(validFrame, fc.nat(), fc.integer({ min: 0, max: 255 })).map(([f, at, extra]): Segment => {
    const bytes = encode(f);
    const i = 4 + (at % (bytes.length - 5));
    return { kind: "inserted", bytes: Uint8Array.from([...bytes.subarray(0, i), extra, ...bytes.subarray(i)]) };
  }),
);

test("random bytes in random chunks: no throw, bounded buffer, nothing held after flush", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 4000 }), chunkSizes, (bytes, sizes) => {
      const d = new FrameDecoder();
      feed(d, bytes, sizes);
      assert.is(d.buffered, 0);
    }),
    { numRuns: 300 },
  );
});

test("start-code-heavy noise (only 00, FF and small values) cannot wedge or grow the decoder", () => {
  const noisy = fc.uint8Array({ maxLength: 3000 }).map((b) => b.map((x) => [0x00, 0xff, 0x01, 0xfe][x % 4] ?? 0));
  fc.assert(
    fc.property(noisy, chunkSizes, (bytes, sizes) => {
      feed(new FrameDecoder(), bytes, sizes);
    }),
    { numRuns: 300 },
  );
});

test("intact frames among garbage, damaged, cut-off and padded frames are all decoded, in order", () => {
  fc.assert(
    fc.property(fc.array(segment, { minLength: 1, maxLength: 30 }), chunkSizes, (segments, sizes) => {
      const wanted: string[] = [];
      const parts: number[] = [];
      const d = new FrameDecoder();
      const got: string[] = [];
      const take = (events: DecodeEvent[]) => {
        for (const e of events) if (e.type === "frame") got.push(key(e.frame));
      };
      for (const s of segments) {
        if (s.kind === "truncated") {
          // A frame is cut off by a sender that stops (reset, port closed): silence follows, and the
          // idle line drops it. Without that gap a cut frame whose LEN runs over the next frame
          // passes its DCS by chance 1 time in 256, like on any PN532 line.
          take(feed(d, Uint8Array.from(parts.splice(0)), sizes));
          take(feed(d, s.bytes, sizes));
          continue;
        }
        if (s.kind === "valid") {
          wanted.push(key({ kind: "info", ...s.frame }));
          parts.push(...encode(s.frame));
        } else if (s.kind === "ack") {
          wanted.push("ack");
          parts.push(...ACK_FRAME);
        } else {
          parts.push(...s.bytes);
        }
      }
      take(feed(d, Uint8Array.from(parts), sizes));
      if (!inOrder(wanted, got)) {
        throw new Error(`expected ${wanted.length} intact frames in order; decoded ${JSON.stringify(got)}`);
      }
    }),
    { numRuns: 500 },
  );
});

test("a frame with one byte changed is never delivered, and is counted by reason", () => {
  fc.assert(
    fc.property(corrupted, chunkSizes, ({ original, bytes }, sizes) => {
      const d = new FrameDecoder();
      const got = feed(d, bytes, sizes).flatMap((e) => (e.type === "frame" ? [key(e.frame)] : []));
      assert.not.ok(got.includes(key({ kind: "info", ...original })));
      const c = d.discarded;
      assert.ok(c.lcs + c.dcs + c.length + c.truncated >= 1, `counted: ${JSON.stringify(c)}`);
    }),
    { numRuns: 300 },
  );
});

test("a frame after a long run of garbage is decoded promptly, without waiting for a flush", () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 2000 }), validFrame, (garbage, f) => {
      const d = new FrameDecoder();
      // Garbage without start codes, then the frame: nothing is ambiguous, so no flush is needed.
      const clean = garbage.map((b) => (b === 0x00 ? 0x01 : b));
      d.push(clean);
      const got = d.push(encode(f)).flatMap((e) => (e.type === "frame" ? [key(e.frame)] : []));
      assert.equal(got, [key({ kind: "info", ...f })]);
      assert.ok(d.discarded.garbage >= clean.length);
    }),
    { numRuns: 200 },
  );
});

// Data holding 00 FF: followed by anything, by a header that checks out and claims a long frame, by
// an extended-frame marker, or as the last data bytes (DCS FF then reads like a NACK's start).
const startCodeInData = fc
  .record({
    before: payload,
    after: fc.array(fc.noBias(fc.integer({ min: 0, max: 255 })), { maxLength: 20 }),
    tail: fc.oneof(
      fc.constant<number[]>([]),
      fc.integer({ min: 0x20, max: 0xff }).map((len) => [len, (0x100 - len) & 0xff]),
      fc.constant([0xff, 0xff]),
      fc.constant([0x00]),
    ),
    tfi: fc.constantFrom(0xd4, 0xd5),
    atEnd: fc.boolean(),
  })
  .map(({ before, after, tail, tfi, atEnd }) => {
    const data = atEnd ? [...before, 0x00, 0xff] : [...before, 0x00, 0xff, ...tail, ...after];
    return { tfi, data: Uint8Array.from(data), extended: false };
  });

test("a frame with 00 FF in its data is delivered as soon as its DCS is in, without waiting for more", () => {
  fc.assert(
    fc.property(startCodeInData, chunkSizes, (f, sizes) => {
      const d = new FrameDecoder();
      const bytes = encode(f);
      // Everything up to the DCS, no postamble and no flush: nothing else will come.
      const events: DecodeEvent[] = [];
      let at = 0;
      for (let i = 0; at < bytes.length - 1; i++) {
        const n = Math.min(bytes.length - 1 - at, Math.max(1, sizes[i % sizes.length] ?? 1));
        events.push(...d.push(bytes.subarray(at, at + n)));
        at += n;
      }
      const got = events.flatMap((e) => (e.type === "frame" ? [key(e.frame)] : []));
      assert.equal(got, [key({ kind: "info", ...f })]);
    }),
    { numRuns: 500 },
  );
});

for (const [what, tail] of [
  ["data ending 00 with DCS FF (00 FF then the postamble, then silence)", [0x00]],
  ["data ending 00 FF 00 with DCS FF (an ACK's bytes)", [0x00, 0xff, 0x00]],
] as const) {
  test(`a frame with ${what} is delivered at once`, () => {
    // D5 41 00 …: InDataExchange status OK and a block; the byte after the status is chosen so the DCS is FF.
    const data = [0x41, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, ...tail];
    let sum = 0xd5;
    for (const b of data) sum += b;
    data[2] = ((data[2] ?? 0) + 0x101 - (sum & 0xff)) & 0xff;
    const bytes = encodeInfoFrame(0xd5, data);
    assert.is(bytes[bytes.length - 2], 0xff, "DCS FF");
    const d = new FrameDecoder();
    const got = d.push(bytes).flatMap((e) => (e.type === "frame" ? [key(e.frame)] : []));
    assert.equal(got, [key({ kind: "info", tfi: 0xd5, data: Uint8Array.from(data), extended: false })]);
  });
}

test.run();
