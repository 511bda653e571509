/**
 * ZVT's transport layer on a serial line (RS-232; ZVT-Protokoll PA00P016,
 * "Transport-Protocol"). Over TCP the APDUs travel bare (./zvt-frame.ts); on a
 * serial line each APDU is one frame:
 *
 *   DLE STX  APDU (every 10 doubled)  DLE ETX  CRC-lo CRC-hi
 *
 * CRC-16/CCITT as ZVT computes it (reflected polynomial 0x8408, start 0,
 * i.e. CRC-16/KERMIT) over the un-doubled APDU and the ETX byte, low byte
 * first. The receiver answers each frame with one byte: ACK (06) when the
 * CRC holds, NAK (15) when not; the sender repeats a frame on NAK or when
 * neither comes in time, three tries in all, then gives the line up.
 *
 * The spec's timers are not all modelled: a frame waits `ackTimeoutMs` for
 * its ACK/NAK; a frame cut short is dropped at the next DLE STX (and NAKed)
 * rather than after an inter-character timeout.
 *
 * `zvtSerialLink` puts this layer under a SerialLink, so the ZVT driver and
 * the simulator run unchanged over it: each write() is one APDU (resolved
 * once the peer ACKed its frame), onData() delivers whole APDUs whose CRC
 * held. The ZVT application ACK (80 00 00) is an APDU like any other and
 * travels framed too.
 */
import { realTimers, type Timers } from "../../timers.ts";
import { LinkListeners, notOpen, type SerialLink, SerialLinkError } from "../serial/serial-link.ts";

export const DLE = 0x10;
export const STX = 0x02;
export const ETX = 0x03;
/** Transport-level acknowledgement of one frame (not the APDU `80 00 00`). */
export const ACK_BYTE = 0x06;
export const NAK_BYTE = 0x15;

/** ZVT's serial default: 9600 baud, 8 data bits, no parity. */
export const ZVT_SERIAL_BAUD = 9600;

/** CRC-16/CCITT as ZVT and ecrterm compute it: reflected 0x8408, initial 0, no final XOR. */
export function crc16(bytes: ArrayLike<number>, crc = 0): number {
  let c = crc;
  for (let i = 0; i < bytes.length; i++) {
    c ^= (bytes[i] ?? 0) & 0xff;
    for (let bit = 0; bit < 8; bit++) c = c & 1 ? (c >>> 1) ^ 0x8408 : c >>> 1;
  }
  return c;
}

/** The CRC a frame carries for `apdu`: over the APDU and ETX. */
function frameCrc(apdu: ArrayLike<number>): number {
  return crc16([ETX], crc16(apdu));
}

/** One APDU as a serial frame. */
export function encodeSerialFrame(apdu: ArrayLike<number>): Uint8Array {
  const out: number[] = [DLE, STX];
  for (let i = 0; i < apdu.length; i++) {
    const b = apdu[i] ?? 0;
    out.push(b);
    if (b === DLE) out.push(DLE);
  }
  const crc = frameCrc(apdu);
  out.push(DLE, ETX, crc & 0xff, crc >> 8);
  return Uint8Array.from(out);
}

export type SerialFrameEvent =
  | { type: "frame"; apdu: Uint8Array }
  /** A whole frame whose CRC did not match: answer NAK. */
  | { type: "bad-frame"; reason: string }
  | { type: "ack" }
  | { type: "nak" }
  /** Bytes outside any frame that were neither ACK nor NAK. */
  | { type: "discard"; bytes: number };

/**
 * Streaming decoder for the serial line: frames, and the ACK/NAK bytes
 * between them. Never throws on input. It resynchronises on DLE STX: a new
 * frame start inside a frame drops the broken one (reported as bad-frame,
 * answered with NAK, so the sender repeats it).
 */
export class SerialFrameDecoder {
  #state: "idle" | "dle" | "body" | "body-dle" | "crc" = "idle";
  #apdu: number[] = [];
  #crc: number[] = [];
  #garbage = 0;

  /** True while a frame has started and not ended. */
  get inFrame(): boolean {
    return this.#state !== "idle" && this.#state !== "dle";
  }

  push(chunk: ArrayLike<number>): SerialFrameEvent[] {
    const out: SerialFrameEvent[] = [];
    const flushGarbage = () => {
      if (this.#garbage > 0) out.push({ type: "discard", bytes: this.#garbage });
      this.#garbage = 0;
    };
    for (let i = 0; i < chunk.length; i++) {
      const b = (chunk[i] ?? 0) & 0xff;
      switch (this.#state) {
        case "idle":
          if (b === ACK_BYTE || b === NAK_BYTE) {
            flushGarbage();
            out.push({ type: b === ACK_BYTE ? "ack" : "nak" });
          } else if (b === DLE) this.#state = "dle";
          else this.#garbage++;
          break;
        case "dle":
          if (b === STX) {
            flushGarbage();
            this.#start();
          } else {
            this.#garbage++;
            if (b !== DLE) {
              this.#garbage++;
              this.#state = "idle";
            }
          }
          break;
        case "body":
          if (b === DLE) this.#state = "body-dle";
          else this.#apdu.push(b);
          break;
        case "body-dle":
          if (b === DLE) {
            this.#apdu.push(DLE);
            this.#state = "body";
          } else if (b === ETX) {
            this.#state = "crc";
          } else if (b === STX) {
            out.push({ type: "bad-frame", reason: "a new frame began before the last one ended" });
            this.#start();
          } else {
            out.push({ type: "bad-frame", reason: `DLE followed by 0x${b.toString(16).padStart(2, "0")}` });
            this.#state = "idle";
          }
          break;
        case "crc":
          this.#crc.push(b);
          if (this.#crc.length === 2) {
            const got = (this.#crc[0] ?? 0) | ((this.#crc[1] ?? 0) << 8);
            const want = frameCrc(this.#apdu);
            out.push(
              got === want
                ? { type: "frame", apdu: Uint8Array.from(this.#apdu) }
                : { type: "bad-frame", reason: "CRC mismatch" },
            );
            this.#state = "idle";
          }
          break;
      }
    }
    flushGarbage();
    return out;
  }

  /** Forgets a frame in progress (a new link). */
  reset(): void {
    this.#state = "idle";
    this.#apdu = [];
    this.#crc = [];
    this.#garbage = 0;
  }

  #start(): void {
    this.#state = "body";
    this.#apdu = [];
    this.#crc = [];
  }
}

export interface ZvtSerialOptions {
  /** How long the peer may take to ACK or NAK a frame before it is sent again (2000 ms). */
  ackTimeoutMs?: number;
  /** Tries per frame (the first and the repeats) before the line is given up. */
  maxTries?: number;
  /**
   * What a frame refused `maxTries` times costs: "close" (the ECR's view: the
   * terminal is gone, the link ends) or "drop" (the terminal's view: that
   * frame is dropped, the line stays for the next ECR session).
   */
  onGiveUp?: "close" | "drop";
  timers?: Timers;
}

/** Transport counters, for logs and tests. */
export interface ZvtSerialCounters {
  framesSent: number;
  framesReceived: number;
  /** Frames we sent again (after a NAK or no answer). */
  repeats: number;
  /** NAKs we sent for broken frames. */
  naksSent: number;
  garbageBytes: number;
}

interface Outgoing {
  frame: Uint8Array;
  resolve: () => void;
  reject: (err: Error) => void;
}

/**
 * The serial transport layer over a raw byte link: a SerialLink of APDUs.
 * Frames go out one at a time, each waiting for the peer's ACK. A frame the
 * peer will not take after `maxTries` ends the link (onClose with the
 * reason), which the ZVT driver treats like a pulled cable.
 */
export function zvtSerialLink(
  raw: SerialLink,
  opts: ZvtSerialOptions = {},
): SerialLink & {
  readonly counters: ZvtSerialCounters;
} {
  const timers = opts.timers ?? realTimers;
  const ackTimeoutMs = opts.ackTimeoutMs ?? 2000;
  const maxTries = opts.maxTries ?? 3;
  const onGiveUp = opts.onGiveUp ?? "close";
  const listeners = new LinkListeners();
  const decoder = new SerialFrameDecoder();
  const queue: Outgoing[] = [];
  const counters: ZvtSerialCounters = { framesSent: 0, framesReceived: 0, repeats: 0, naksSent: 0, garbageBytes: 0 };
  let inFlight: (Outgoing & { tries: number; timer: unknown }) | undefined;

  const end = (err: Error | undefined) => {
    if (listeners.closed) return;
    if (inFlight) timers.clearTimeout(inFlight.timer);
    const pending = [...(inFlight ? [inFlight] : []), ...queue.splice(0)];
    inFlight = undefined;
    for (const p of pending) p.reject(err ?? new SerialLinkError(`${raw.path} was closed`));
    listeners.emitClose(err);
  };
  const transmit = () => {
    if (!inFlight) return;
    counters.framesSent++;
    raw.write(inFlight.frame).catch(() => {}); // a failed write ends the raw link: onClose below
    const current = inFlight;
    current.timer = timers.setTimeout(() => retry("no ACK"), ackTimeoutMs);
  };
  const retry = (why: "no ACK" | "NAK") => {
    const current = inFlight;
    if (!current) return;
    timers.clearTimeout(current.timer);
    if (current.tries >= maxTries) {
      const reason = why === "NAK" ? "refused (NAK)" : "not acknowledged";
      if (onGiveUp === "drop") {
        inFlight = undefined;
        current.reject(new SerialLinkError(`${raw.path}: a frame was ${reason} ${maxTries} times and dropped`));
        pump();
        return;
      }
      const err = new SerialLinkError(`${raw.path}: a frame was ${reason} ${maxTries} times; the line is given up`);
      end(err);
      void raw.close();
      return;
    }
    current.tries++;
    counters.repeats++;
    transmit();
  };
  const pump = () => {
    if (inFlight || listeners.closed) return;
    const next = queue.shift();
    if (!next) return;
    inFlight = { ...next, tries: 1, timer: undefined };
    transmit();
  };

  raw.onData((chunk) => {
    for (const e of decoder.push(chunk)) {
      switch (e.type) {
        case "frame":
          counters.framesReceived++;
          raw.write(Uint8Array.of(ACK_BYTE)).catch(() => {});
          listeners.emitData(e.apdu);
          break;
        case "bad-frame":
          counters.naksSent++;
          raw.write(Uint8Array.of(NAK_BYTE)).catch(() => {});
          break;
        case "ack":
          if (inFlight) {
            timers.clearTimeout(inFlight.timer);
            const done = inFlight;
            inFlight = undefined;
            done.resolve();
            pump();
          }
          break;
        case "nak":
          retry("NAK");
          break;
        case "discard":
          counters.garbageBytes += e.bytes;
          break;
      }
      if (listeners.closed) return;
    }
  });
  raw.onClose((err) => end(err));

  return {
    path: raw.path,
    counters,
    get isOpen() {
      return raw.isOpen && !listeners.closed;
    },
    write(apdu) {
      if (listeners.closed || !raw.isOpen) return notOpen(raw.path);
      return new Promise<void>((resolve, reject) => {
        queue.push({ frame: encodeSerialFrame(apdu), resolve, reject });
        pump();
      });
    },
    async close() {
      end(undefined);
      await raw.close();
    },
    onData: (l) => listeners.onData(l),
    onClose: (l) => listeners.onClose(l),
  };
}
