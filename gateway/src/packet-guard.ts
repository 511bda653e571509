/**
 * A maximum MQTT packet size, enforced on the bytes as they arrive, before
 * anything buffers a payload. aedes has no such option: its parser
 * (mqtt-packet) keeps every byte of a packet until the whole packet is there,
 * so one client announcing a 250 MB PUBLISH, even before CONNECT, made the
 * gateway hold 250 MB.
 *
 * Every MQTT packet starts with a fixed header: one byte of type and flags,
 * then the Remaining Length, a variable byte integer of 1 to 4 bytes, 7 bits
 * each, least significant group first, the high bit saying "another byte
 * follows" (MQTT 3.1.1 §2.2.3; MQTT 5 §1.5.5). `PacketSizeReader` follows
 * the packet boundaries of a byte stream through these headers without
 * keeping any payload; `PacketSizeGuard` puts it in front of the stream aedes
 * reads and destroys the connection as soon as a header announces more than
 * the limit.
 *
 * The size compared is the whole packet (fixed header plus Remaining Length),
 * as MQTT 5's Maximum Packet Size counts it (MQTT 5 §3.1.2.11.4).
 */
import { Duplex } from "node:stream";

/** The largest Remaining Length four bytes can carry: 268,435,455 (MQTT 3.1.1 §2.2.3). */
export const MAX_REMAINING_LENGTH = 268_435_455;

/** `announced`: the whole packet's size its fixed header announced. */
export type Violation = { kind: "oversize"; announced: number } | { kind: "malformed-length" };

/** Walks MQTT packet boundaries through a byte stream, chunk by chunk, holding no payload. */
export class PacketSizeReader {
  readonly maxPacketBytes: number;
  /** Bytes of the current packet's body still to skip; -1 while a fixed header is being read. */
  #bodyLeft = -1;
  /** Fixed header bytes read so far of the current packet (type byte included). */
  #headerBytes = 0;
  #length = 0;
  #multiplier = 1;

  constructor(maxPacketBytes: number) {
    if (!Number.isInteger(maxPacketBytes) || maxPacketBytes < 2) {
      throw new RangeError(`maxPacketBytes must be an integer of at least 2, not ${maxPacketBytes}`);
    }
    this.maxPacketBytes = maxPacketBytes;
  }

  /** Reads one chunk; returns the first violation in it, or null. After a violation the reader is done. */
  push(chunk: Uint8Array): Violation | null {
    let i = 0;
    while (i < chunk.length) {
      if (this.#bodyLeft > 0) {
        const skip = Math.min(this.#bodyLeft, chunk.length - i);
        this.#bodyLeft -= skip;
        i += skip;
        continue;
      }
      if (this.#bodyLeft === 0) this.#startPacket();
      const byte = chunk[i++]!;
      if (this.#headerBytes === 0) {
        // The type and flags byte; aedes judges it.
        this.#headerBytes = 1;
        continue;
      }
      this.#headerBytes++;
      this.#length += (byte & 0x7f) * this.#multiplier;
      if (byte & 0x80) {
        // A fifth length byte is malformed [MQTT 3.1.1 §2.2.3: at most four].
        if (this.#headerBytes === 5) return { kind: "malformed-length" };
        this.#multiplier *= 128;
        continue;
      }
      const announced = this.#headerBytes + this.#length;
      if (announced > this.maxPacketBytes) return { kind: "oversize", announced };
      this.#bodyLeft = this.#length;
    }
    return null;
  }

  #startPacket(): void {
    this.#bodyLeft = -1;
    this.#headerBytes = 0;
    this.#length = 0;
    this.#multiplier = 1;
  }
}

export interface PacketSizeGuardOptions {
  maxPacketBytes: number;
  /** The peer's address, when `inner` has none of its own (a WebSocket stream). */
  remoteAddress?: string;
  /** Called once, before the connection is destroyed. */
  onViolation: (violation: Violation) => void;
}

/**
 * The stream handed to `aedes.handle()` in place of the socket: reads pass
 * through a `PacketSizeReader`, writes go straight to the socket. On a
 * violation the socket is destroyed before the chunk reaches aedes, so at
 * most one socket read (64 KiB) of a hostile packet is ever held.
 *
 * `remoteAddress` is the socket's, for aedes' and the gateway's logs.
 */
export class PacketSizeGuard extends Duplex {
  readonly remoteAddress: string | undefined;
  readonly #inner: Duplex;
  readonly #reader: PacketSizeReader;
  readonly #onViolation: (violation: Violation) => void;

  constructor(inner: Duplex, options: PacketSizeGuardOptions) {
    super({ allowHalfOpen: false });
    this.#inner = inner;
    this.#reader = new PacketSizeReader(options.maxPacketBytes);
    this.#onViolation = options.onViolation;
    this.remoteAddress =
      options.remoteAddress ?? ("remoteAddress" in inner ? (inner.remoteAddress as string | undefined) : undefined);

    inner.on("data", (chunk: Buffer) => this.#onData(chunk));
    inner.once("end", () => this.push(null));
    inner.on("error", (err: Error) => this.destroy(err));
    inner.once("close", () => this.destroy());
  }

  #onData(chunk: Buffer): void {
    if (this.destroyed) return;
    const violation = this.#reader.push(chunk);
    if (violation) {
      this.#onViolation(violation);
      // No error: the gateway has said why; aedes sees a closed connection.
      this.destroy();
      return;
    }
    // Backpressure: aedes reads in batches; stop reading the socket until it asks again.
    if (!this.push(chunk)) this.#inner.pause();
  }

  override _read(): void {
    this.#inner.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.#inner.write(chunk)) callback();
    else this.#inner.once("drain", () => callback());
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (error?: Error | null) => void): void {
    this.#inner.cork();
    let ok = true;
    for (const { chunk } of chunks) ok = this.#inner.write(chunk);
    this.#inner.uncork();
    if (ok) callback();
    else this.#inner.once("drain", () => callback());
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#inner.end();
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#inner.destroy();
    callback(error);
  }
}
