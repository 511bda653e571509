/**
 * The PN532 frame decoder under random and damaged byte streams (fast-check):
 * it never throws, its buffer stays bounded, and every intact frame is still
 * decoded — in order — however it is surrounded by garbage, damaged frames or
 * cut-off frames, and however the stream is chunked.
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
      for (const s of segments) {
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
      const d = new FrameDecoder();
      const got = feed(d, Uint8Array.from(parts), sizes).flatMap((e) => (e.type === "frame" ? [key(e.frame)] : []));
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

test.run();
