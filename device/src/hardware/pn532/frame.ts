/**
 * PN532 host-controller frames (NXP UM0701-02 §6.2.1, pp. 28–31): the encoder
 * and a streaming decoder both sides of the wire use — the reader and the
 * simulator speak exactly the same bytes.
 *
 *   normal   00 00 FF LEN LCS TFI PD0..PDn DCS 00         (§6.2.1.1, LEN ≤ 255 incl. TFI)
 *   extended 00 00 FF FF FF LENM LENL LCS TFI PD.. DCS 00  (§6.2.1.2, ≤ 265 incl. TFI)
 *   ACK      00 00 FF 00 FF 00                             (§6.2.1.3)
 *   NACK     00 00 FF FF 00 00                             (§6.2.1.4)
 *   error    00 00 FF 01 FF 7F 81 00                       (§6.2.1.5)
 *
 * Lower byte of LEN + LCS is 0; lower byte of TFI + PD0 + … + PDn + DCS is 0.
 * Preamble and postamble may be any number of 0x00 bytes (§6.2.1.6), so the
 * decoder keys on the 00 FF start code alone.
 */

import type { Timers } from "../../timers.ts";

export const TFI_HOST_TO_PN532 = 0xd4;
export const TFI_PN532_TO_HOST = 0xd5;
/** The TFI of the application-level error frame (§6.2.1.5). */
export const TFI_ERROR = 0x7f;

/** TFI + packet data never exceeds 265 bytes in the PN532 firmware (§6.2.1.2). */
export const MAX_INFO_LENGTH = 265;
/** Start code through DCS of the largest extended frame: 00 FF FF FF LENM LENL LCS + 265 + DCS. */
const MAX_FRAME_BYTES = 7 + MAX_INFO_LENGTH + 1;
/** Room for one frame being completed plus one that may overlap it (see #innerFrame). */
export const DECODER_CAPACITY = 2 * MAX_FRAME_BYTES + 8;

export const ACK_FRAME: Uint8Array = Uint8Array.of(0x00, 0x00, 0xff, 0x00, 0xff, 0x00);
export const NACK_FRAME: Uint8Array = Uint8Array.of(0x00, 0x00, 0xff, 0xff, 0x00, 0x00);
export const ERROR_FRAME: Uint8Array = Uint8Array.of(0x00, 0x00, 0xff, 0x01, 0xff, 0x7f, 0x81, 0x00);

export type Frame =
  | { kind: "ack" }
  | { kind: "nack" }
  /** The PN532 saw a syntax error at application level (§6.2.1.5). */
  | { kind: "error" }
  | { kind: "info"; tfi: number; data: Uint8Array; extended: boolean };

/**
 * Why bytes were dropped. `garbage` counts bytes outside any frame (0x00
 * pre/postamble bytes are not garbage); the others count frames.
 */
export type DiscardReason = "garbage" | "lcs" | "dcs" | "length" | "truncated" | "overflow";

export const DISCARD_REASONS: readonly DiscardReason[] = ["garbage", "lcs", "dcs", "length", "truncated", "overflow"];

export type DecodeEvent = { type: "frame"; frame: Frame } | { type: "discard"; reason: DiscardReason; bytes: number };

export class Pn532FrameError extends Error {
  override name = "Pn532FrameError";
}

function checkByte(value: number, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xff) {
    throw new Pn532FrameError(`${what} must be a byte (0..255), got ${value}`);
  }
}

/** Two's-complement checksum: the byte that makes the lower byte of the sum 0. */
function checksum(bytes: ArrayLike<number>, from = 0, to = bytes.length): number {
  let sum = 0;
  for (let i = from; i < to; i++) sum += bytes[i] ?? 0;
  return (0x100 - (sum & 0xff)) & 0xff;
}

/**
 * Encodes an information frame. Uses the normal frame when TFI + data fit in
 * 255 bytes, the extended frame otherwise or when `extended` is asked for.
 */
export function encodeInfoFrame(tfi: number, data: ArrayLike<number>, opts: { extended?: boolean } = {}): Uint8Array {
  checkByte(tfi, "TFI");
  for (let i = 0; i < data.length; i++) checkByte(data[i] ?? -1, `data byte ${i}`);
  const length = 1 + data.length;
  if (length > MAX_INFO_LENGTH) {
    throw new Pn532FrameError(
      `frame too long: TFI + ${data.length} data bytes = ${length}, the PN532 takes at most ${MAX_INFO_LENGTH} (UM0701-02 §6.2.1.2)`,
    );
  }
  const extended = opts.extended === true || length > 0xff;
  const header = extended
    ? [0x00, 0x00, 0xff, 0xff, 0xff, length >> 8, length & 0xff, checksum([length >> 8, length & 0xff])]
    : [0x00, 0x00, 0xff, length, checksum([length])];
  const out = new Uint8Array(header.length + length + 2);
  out.set(header, 0);
  out[header.length] = tfi;
  out.set(Array.from(data), header.length + 1);
  out[header.length + length] = checksum(out, header.length, header.length + length);
  out[header.length + length + 1] = 0x00;
  return out;
}

/** A host → PN532 frame (TFI D4) carrying PD0 (command code) .. PDn. */
export function encodeCommand(pd: ArrayLike<number>): Uint8Array {
  return encodeInfoFrame(TFI_HOST_TO_PN532, pd);
}

/** A PN532 → host frame (TFI D5) carrying PD0 (command code + 1) .. PDn. */
export function encodeResponse(pd: ArrayLike<number>): Uint8Array {
  return encodeInfoFrame(TFI_PN532_TO_HOST, pd);
}

type Parse =
  | { kind: "incomplete" }
  | { kind: "bad"; reason: "lcs" | "dcs" | "length"; extent: number }
  | { kind: "ok"; frame: Frame; size: number };

/**
 * Streaming decoder: push bytes as they arrive, get frames and discards in
 * wire order. Never throws on input; memory stays within DECODER_CAPACITY.
 *
 * Like the chip and libnfc it trusts a header that checks out: LEN/LCS are
 * checked as soon as they arrive (a bad LCS drops the start code and the
 * search for the next 00 FF goes on), DCS once the body is in, and a frame
 * that passes both is delivered at once — a 00 FF inside its data is data and
 * never makes the decoder wait for more. A candidate whose span already holds
 * another complete frame that checks out was a cut-off frame whose LEN reached
 * over that one: it is dropped as truncated, so the whole frame is kept. A
 * partial frame is dropped when the line goes idle (flush; see IdleFlush).
 */
export class FrameDecoder {
  readonly #buf = new Uint8Array(DECODER_CAPACITY);
  #len = 0;
  /** Leading bytes left over from a rejected candidate: skipped without counting as garbage. */
  #quiet = 0;
  readonly #discarded: Record<DiscardReason, number> = {
    garbage: 0,
    lcs: 0,
    dcs: 0,
    length: 0,
    truncated: 0,
    overflow: 0,
  };

  /** Bytes held while waiting for the rest of a frame. */
  get buffered(): number {
    return this.#len;
  }

  /** Discards so far, by reason (garbage in bytes, the rest in frames). */
  get discarded(): Readonly<Record<DiscardReason, number>> {
    return { ...this.#discarded };
  }

  push(chunk: Uint8Array): DecodeEvent[] {
    const out: DecodeEvent[] = [];
    let offset = 0;
    while (offset < chunk.length) {
      const n = Math.min(chunk.length - offset, DECODER_CAPACITY - this.#len);
      if (n === 0) {
        // Cannot happen with the capacity above; kept so no input can wedge the decoder.
        this.#reject(out, "overflow", this.#len, 2);
        continue;
      }
      this.#buf.set(chunk.subarray(offset, offset + n), this.#len);
      this.#len += n;
      offset += n;
      this.#parse(out, false);
    }
    return out;
  }

  /** The line went quiet: a partial frame held is discarded as truncated. */
  flush(): DecodeEvent[] {
    const out: DecodeEvent[] = [];
    this.#parse(out, true);
    // What is left is a partial frame (or a lone 0x00 that might have begun one).
    if (this.#len >= 2) this.#reject(out, "truncated", this.#len, this.#len);
    this.reset();
    return out;
  }

  /** Drops held bytes (e.g. a new port was opened); counters are kept. */
  reset(): void {
    this.#len = 0;
    this.#quiet = 0;
  }

  #parse(out: DecodeEvent[], final: boolean): void {
    for (;;) {
      const start = this.#findStart(0);
      if (start < 0) {
        // Keep a trailing 0x00: it may be the first half of a start code.
        const keep = this.#len > 0 && this.#buf[this.#len - 1] === 0x00 ? 1 : 0;
        this.#skip(out, this.#len - keep);
        return;
      }
      this.#skip(out, start);
      const p = this.#parseAt(0);
      if (p.kind === "bad") {
        // Drop only the start code: a real frame may begin inside the rejected span.
        this.#reject(out, p.reason, p.extent, 2);
        this.#quiet = Math.max(this.#quiet, Math.min(p.extent, this.#len + 2) - 2);
        continue;
      }
      if (p.kind === "incomplete") {
        const next = this.#nextValidFrame(2);
        if (next >= 0) {
          this.#reject(out, "truncated", next, next);
          continue;
        }
        if (final || this.#len < DECODER_CAPACITY) return;
        this.#reject(out, "overflow", this.#len, 2);
        continue;
      }
      const inner = this.#innerFrame(p);
      if (inner >= 0) {
        this.#reject(out, "truncated", inner, inner);
        continue;
      }
      out.push({ type: "frame", frame: p.frame });
      this.#drop(p.size);
      this.#quiet = 0;
    }
  }

  /**
   * A complete, checksum-valid candidate at 0: the offset of a complete frame
   * that checks out inside its span (then the candidate is a cut-off frame
   * whose LEN swallowed it), or -1. Only bytes already here are looked at.
   * Only frames with both checksums count: a whole one hidden in real data
   * takes 00 FF plus two matching checksums, about 2^-32 per byte; the
   * 4-byte ACK and NACK patterns (00 FF 00 FF, 00 FF FF 00) are ordinary data.
   */
  #innerFrame(p: { frame: Frame; size: number }): number {
    if (p.frame.kind === "ack" || p.frame.kind === "nack") return -1;
    for (let j = this.#findStart(2); j >= 0 && j < p.size; j = this.#findStart(j + 1)) {
      const q = this.#parseAt(j);
      if (q.kind === "ok" && q.frame.kind !== "ack" && q.frame.kind !== "nack") return j;
    }
    return -1;
  }

  /** Offset of the first start code at or after `from` whose frame is complete and valid, or -1. */
  #nextValidFrame(from: number): number {
    for (let j = this.#findStart(from); j >= 0; j = this.#findStart(j + 1)) {
      if (this.#parseAt(j).kind === "ok") return j;
    }
    return -1;
  }

  #findStart(from: number): number {
    for (let i = from; i + 1 < this.#len; i++) {
      if (this.#buf[i] === 0x00 && this.#buf[i + 1] === 0xff) return i;
    }
    return -1;
  }

  #parseAt(j: number): Parse {
    const b = this.#buf;
    const avail = this.#len - j;
    if (avail < 4) return { kind: "incomplete" };
    const len = b[j + 2] ?? 0;
    const lcs = b[j + 3] ?? 0;
    if (len === 0x00 && lcs === 0xff) return { kind: "ok", frame: { kind: "ack" }, size: 4 };
    if (len === 0xff && lcs === 0x00) return { kind: "ok", frame: { kind: "nack" }, size: 4 };
    let header: number;
    let length: number;
    let extended = false;
    if (len === 0xff && lcs === 0xff) {
      if (avail < 7) return { kind: "incomplete" };
      const m = b[j + 4] ?? 0;
      const l = b[j + 5] ?? 0;
      if (((m + l + (b[j + 6] ?? 0)) & 0xff) !== 0) return { kind: "bad", reason: "lcs", extent: 7 };
      length = (m << 8) | l;
      header = 7;
      extended = true;
    } else {
      if (((len + lcs) & 0xff) !== 0) return { kind: "bad", reason: "lcs", extent: 4 };
      length = len;
      header = 4;
    }
    if (length < 1 || length > MAX_INFO_LENGTH) return { kind: "bad", reason: "length", extent: header };
    const size = header + length + 1;
    if (avail < size) return { kind: "incomplete" };
    let sum = 0;
    for (let i = j + header; i < j + size; i++) sum += b[i] ?? 0;
    if ((sum & 0xff) !== 0) return { kind: "bad", reason: "dcs", extent: size };
    const tfi = b[j + header] ?? 0;
    if (tfi === TFI_ERROR && length === 1) return { kind: "ok", frame: { kind: "error" }, size };
    const data = b.slice(j + header + 1, j + header + length);
    return { kind: "ok", frame: { kind: "info", tfi, data, extended }, size };
  }

  /** Records a rejected candidate at the head and drops `resumeAt` bytes (not counted as garbage). */
  #reject(out: DecodeEvent[], reason: Exclude<DiscardReason, "garbage">, bytes: number, resumeAt: number): void {
    this.#discarded[reason]++;
    out.push({ type: "discard", reason, bytes });
    this.#drop(Math.min(resumeAt, this.#len));
  }

  /** Drops n head bytes that belong to no frame, counting the non-zero ones as garbage. */
  #skip(out: DecodeEvent[], n: number): void {
    if (n <= 0) return;
    let garbage = 0;
    for (let i = Math.min(this.#quiet, n); i < n; i++) if (this.#buf[i] !== 0x00) garbage++;
    this.#drop(n);
    if (garbage > 0) {
      this.#discarded.garbage += garbage;
      out.push({ type: "discard", reason: "garbage", bytes: garbage });
    }
  }

  #drop(n: number): void {
    if (n <= 0) return;
    this.#buf.copyWithin(0, n, this.#len);
    this.#len -= n;
    this.#quiet = Math.max(0, this.#quiet - n);
  }
}

/**
 * Flushes a decoder when its line has been idle for `idleMs` while it holds
 * bytes: a frame cut off mid-way (a sender reset, a tool closing the port) is
 * dropped then, instead of waiting for bytes that never come. At 115200 baud a
 * frame's bytes follow each other within a millisecond; USB serial adapters
 * deliver in bursts a few ms apart.
 */
export class IdleFlush {
  readonly #decoder: FrameDecoder;
  readonly #timers: Timers;
  readonly #idleMs: number;
  readonly #onEvents: (events: DecodeEvent[]) => void;
  #timer: unknown;

  constructor(
    decoder: FrameDecoder,
    opts: { timers: Timers; idleMs: number; onEvents: (events: DecodeEvent[]) => void },
  ) {
    this.#decoder = decoder;
    this.#timers = opts.timers;
    this.#idleMs = opts.idleMs;
    this.#onEvents = opts.onEvents;
  }

  /** Pushes a chunk, reports what it decodes, and re-arms the idle timer while bytes are held. */
  push(chunk: Uint8Array): void {
    this.#timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    const events = this.#decoder.push(chunk);
    if (this.#decoder.buffered > 0) {
      this.#timer = this.#timers.setTimeout(() => {
        this.#timer = undefined;
        const flushed = this.#decoder.flush();
        if (flushed.length > 0) this.#onEvents(flushed);
      }, this.#idleMs);
    }
    if (events.length > 0) this.#onEvents(events);
  }

  /** Cancels the idle timer (the link is gone or the owner stops). */
  stop(): void {
    this.#timers.clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
