/**
 * ZVT APDUs as they travel over TCP (ZVT-Protokoll PA00P015: over TCP/IP
 * there is no DLE/STX transport layer, just APDUs back to back):
 *
 *   CCRC APRC LEN DATA…          LEN < 0xFF
 *   CCRC APRC FF  LL HH DATA…    LEN = 0xFF: a 2-byte little-endian length follows
 *
 * Both the driver and the simulator encode and decode with this module, so
 * they speak exactly the same bytes.
 */

/** Positive acknowledgement: each side sends it for every command it receives. */
export const ACK: Uint8Array = Uint8Array.of(0x80, 0x00, 0x00);

/** Longest data part a 2-byte length can carry. */
export const MAX_DATA_LENGTH = 0xffff;

/**
 * Class bytes this subset ever sees: 04 and 06 (commands and status
 * messages), 08 (other ECR commands), 80 (ACK) and 84 (negative ACK, `84 XX 00`).
 */
const CLASSES = new Set([0x04, 0x06, 0x08, 0x80, 0x84]);

export interface Apdu {
  /** CCRC: the class byte. */
  cls: number;
  /** APRC: the instruction byte (or, in `84 XX 00`, the error code). */
  ins: number;
  data: Uint8Array;
}

export type ApduDecodeEvent = { type: "apdu"; apdu: Apdu } | { type: "discard"; bytes: number };

export class ZvtFrameError extends Error {
  override name = "ZvtFrameError";
}

export function encodeApdu(cls: number, ins: number, data: ArrayLike<number> = []): Uint8Array {
  for (const [what, v] of [
    ["class", cls],
    ["instruction", ins],
  ] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 0xff) throw new ZvtFrameError(`${what} must be a byte, got ${v}`);
  }
  if (data.length > MAX_DATA_LENGTH) {
    throw new ZvtFrameError(`APDU data too long: ${data.length} bytes, at most ${MAX_DATA_LENGTH}`);
  }
  // 0xFF is the escape to the extended form, so a length of exactly 255 needs it too.
  const header = data.length < 0xff ? [cls, ins, data.length] : [cls, ins, 0xff, data.length & 0xff, data.length >> 8];
  const out = new Uint8Array(header.length + data.length);
  out.set(header, 0);
  out.set(Array.from(data), header.length);
  return out;
}

/** `84 XX 00`: the command was refused with result code XX. */
export function negativeAck(code: number): Uint8Array {
  return encodeApdu(0x84, code);
}

export function isAck(a: Apdu): boolean {
  return a.cls === 0x80 && a.ins === 0x00;
}

export function isNegativeAck(a: Apdu): boolean {
  return a.cls === 0x84;
}

/** "06 0F" for logs. */
export function apduName(a: Pick<Apdu, "cls" | "ins">): string {
  return `${hexByte(a.cls)} ${hexByte(a.ins)}`;
}

export function hexByte(b: number): string {
  return b.toString(16).toUpperCase().padStart(2, "0");
}

/**
 * Streaming decoder: push TCP chunks as they arrive, get whole APDUs in wire
 * order. Never throws on input.
 *
 * A TCP stream of APDUs has no start marker or checksum, so resynchronising
 * after garbage is a heuristic: a byte that cannot begin an APDU of this
 * subset (an unknown class, or an ACK/NAK with a non-zero length) is dropped
 * and counted, and decoding retries at the next byte. Garbage that happens to
 * look like a header swallows the bytes after it; the driver's timeout is the
 * backstop for that.
 */
export class ApduDecoder {
  #buf = new Uint8Array(256);
  #len = 0;
  #discarded = 0;

  /** Bytes held while waiting for the rest of an APDU. */
  get buffered(): number {
    return this.#len;
  }

  /** Bytes dropped as garbage so far. */
  get discarded(): number {
    return this.#discarded;
  }

  push(chunk: Uint8Array): ApduDecodeEvent[] {
    this.#append(chunk);
    const out: ApduDecodeEvent[] = [];
    let garbage = 0;
    let at = 0;
    for (;;) {
      const avail = this.#len - at;
      if (avail < 3) break;
      const cls = this.#buf[at] ?? 0;
      const ins = this.#buf[at + 1] ?? 0;
      const len = this.#buf[at + 2] ?? 0;
      if (!CLASSES.has(cls) || ((cls === 0x80 || cls === 0x84) && len !== 0) || (cls === 0x80 && ins !== 0)) {
        garbage++;
        at++;
        continue;
      }
      let header = 3;
      let length = len;
      if (len === 0xff) {
        if (avail < 5) break;
        length = (this.#buf[at + 3] ?? 0) | ((this.#buf[at + 4] ?? 0) << 8);
        header = 5;
      }
      if (avail < header + length) break;
      if (garbage > 0) {
        out.push({ type: "discard", bytes: garbage });
        this.#discarded += garbage;
        garbage = 0;
      }
      const data = this.#buf.slice(at + header, at + header + length);
      out.push({ type: "apdu", apdu: { cls, ins, data } });
      at += header + length;
    }
    if (garbage > 0) {
      out.push({ type: "discard", bytes: garbage });
      this.#discarded += garbage;
    }
    this.#buf.copyWithin(0, at, this.#len);
    this.#len -= at;
    return out;
  }

  /** Drops held bytes (a new connection); the discard count is kept. */
  reset(): void {
    this.#len = 0;
    if (this.#buf.length > 4096) this.#buf = new Uint8Array(256);
  }

  #append(chunk: Uint8Array): void {
    const need = this.#len + chunk.length;
    if (need > this.#buf.length) {
      // At most one extended APDU (5 + 65535 bytes) is ever waited for, plus the chunk that completes it.
      const grown = new Uint8Array(Math.max(need, this.#buf.length * 2));
      grown.set(this.#buf.subarray(0, this.#len));
      this.#buf = grown;
    }
    this.#buf.set(chunk, this.#len);
    this.#len = need;
  }
}
