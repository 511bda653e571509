/**
 * A contactless card for vsmartcard's `vpcd` reader driver: the virtual ICC
 * (the role of vsmartcard's `vpicc`) that connects to the TCP port vpcd
 * listens on (reader.conf `DEVICENAME /dev/null:<port>`) and answers it.
 *
 * vpcd's socket protocol (vsmartcard `virtualsmartcard/src/vpcd/vpcd.c`):
 * every message either way is a 2-byte big-endian length and a payload. A
 * 1-byte payload from vpcd is a control code — 0 power off, 1 power on,
 * 2 reset (no answer), 4 "send your ATR" (answered with the ATR); any other
 * payload is a command APDU, answered with the response APDU. Connecting is
 * placing the card on the reader, closing the socket is taking it off.
 *
 * The card answers like a MIFARE Classic behind an ACR122U-class reader:
 * the PC/SC part 3 storage-card ATR and the pseudo-APDU GET DATA
 * (`FF CA 00 00 Le`) with its UID.
 */
import { connect, type Socket } from "node:net";
import { parseUid } from "../pn532/commands.ts";

/** PC/SC part 3 ATR of a MIFARE Classic 1K (RID A0 00 00 03 06, SS 03 = ISO 14443 A part 3, NN 00 01). */
export const MIFARE_CLASSIC_1K_ATR = Uint8Array.from([
  0x3b, 0x8f, 0x80, 0x01, 0x80, 0x4f, 0x0c, 0xa0, 0x00, 0x00, 0x03, 0x06, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
  0x6a,
]);

const CTRL_OFF = 0;
const CTRL_ON = 1;
const CTRL_RESET = 2;
const CTRL_ATR = 4;

export interface VirtualCardOptions {
  /** vpcd's port: the number after the colon in reader.conf's DEVICENAME. */
  port: number;
  host?: string;
  /** The card's UID as hex (4, 7 or 10 bytes; spaces and colons allowed). */
  uid: string;
  atr?: Uint8Array;
  /** The status word GET DATA answers with; anything but 0x9000 sends no UID (a card that refuses it). */
  getDataStatus?: number;
  /** Each message from vpcd and the card's answer (none for power on/off/reset), for a readable log. */
  onExchange?: (message: Uint8Array, answer: Uint8Array | undefined) => void;
  /** The reader dropped the card (vpcd closed the socket: pcscd stopped), not a remove() of ours. */
  onDropped?: () => void;
}

export class VirtualCard {
  readonly #o: Required<Omit<VirtualCardOptions, "getDataStatus" | "onExchange" | "onDropped">> &
    Pick<VirtualCardOptions, "onExchange" | "onDropped"> & { getDataStatus: number };
  readonly #uid: Uint8Array;
  #socket: Socket | undefined;
  /** The socket remove() is closing: its close is ours, not the reader dropping the card. */
  #removing: Socket | undefined;
  #rx = Buffer.alloc(0);
  #powered = false;
  /** Every command APDU received, as upper-case hex, in order. */
  readonly apdus: string[] = [];
  /** ATR requests: vpcd asks for the ATR each time pcscd polls for the card (every ~400 ms). */
  atrRequests = 0;
  /** Told after each message from vpcd has been answered (tests wait on it instead of sleeping). */
  onMessage: (() => void) | undefined;

  constructor(o: VirtualCardOptions) {
    this.#uid = parseUid(o.uid);
    this.#o = { host: "127.0.0.1", atr: MIFARE_CLASSIC_1K_ATR, getDataStatus: 0x9000, ...o };
  }

  /** True while the card is on the reader (its socket to vpcd is open). */
  get present(): boolean {
    return this.#socket !== undefined;
  }

  get powered(): boolean {
    return this.#powered;
  }

  /** Places the card on the reader; rejects when nothing listens on the port (no pcscd, or no vpcd reader). */
  insert(): Promise<void> {
    if (this.#socket) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const socket = connect({ host: this.#o.host, port: this.#o.port });
      socket.setNoDelay(true);
      socket.once("connect", () => {
        socket.off("error", reject);
        this.#socket = socket;
        this.#rx = Buffer.alloc(0);
        // A reader that goes away (pcscd stopped, reader removed) drops the card with it.
        socket.on("error", () => socket.destroy());
        socket.once("close", () => this.#onClose(socket));
        resolve();
      });
      socket.once("error", (err) =>
        reject(new Error(`no vpcd reader listens on ${this.#o.host}:${this.#o.port}: ${err.message}`)),
      );
      socket.on("data", (chunk: Buffer) => this.#onData(socket, chunk));
    });
  }

  /** Takes the card off the reader; resolves once the socket is closed. */
  remove(): Promise<void> {
    const socket = this.#socket;
    if (!socket) return Promise.resolve();
    this.#removing = socket;
    return new Promise((resolve) => {
      socket.once("close", () => resolve());
      socket.destroy();
    });
  }

  #onClose(socket: Socket): void {
    if (this.#socket !== socket) return;
    this.#socket = undefined;
    this.#powered = false;
    if (this.#removing !== socket) this.#o.onDropped?.();
  }

  #onData(socket: Socket, chunk: Buffer): void {
    this.#rx = Buffer.concat([this.#rx, chunk]);
    while (this.#rx.length >= 2) {
      const len = this.#rx.readUInt16BE(0);
      if (this.#rx.length < 2 + len) return;
      const payload = this.#rx.subarray(2, 2 + len);
      this.#rx = this.#rx.subarray(2 + len);
      const answer = this.#answer(payload);
      if (answer) socket.write(frame(answer));
      this.#o.onExchange?.(payload, answer);
      this.onMessage?.();
    }
  }

  #answer(payload: Uint8Array): Uint8Array | undefined {
    if (payload.length === 1) {
      switch (payload[0]) {
        case CTRL_OFF:
          this.#powered = false;
          return undefined;
        case CTRL_ON:
        case CTRL_RESET:
          this.#powered = true;
          return undefined;
        case CTRL_ATR:
          this.atrRequests++;
          return this.#o.atr;
        default:
          return undefined;
      }
    }
    this.apdus.push(Buffer.from(payload).toString("hex").toUpperCase());
    return this.#apdu(payload);
  }

  /** ISO 7816-4 answers; GET DATA as PC/SC part 3 §3.2.2.1.3 defines it for contactless cards. */
  #apdu(c: Uint8Array): Uint8Array {
    if (c.length < 4) return sw(0x6700);
    const [cla, ins, p1, p2] = c;
    if (cla !== 0xff) return sw(0x6e00);
    if (ins !== 0xca) return sw(0x6d00);
    if (p2 !== 0x00 || (p1 !== 0x00 && p1 !== 0x01)) return sw(0x6b00);
    // P1 = 01 asks for the ATS historical bytes: a MIFARE Classic has no ATS.
    if (p1 === 0x01) return sw(0x6a81);
    if (this.#o.getDataStatus !== 0x9000) return sw(this.#o.getDataStatus);
    const le = c.length > 4 ? (c[4] ?? 0) : 0;
    // Le = 00 means "all of it"; a shorter Le is answered with the right length (6C xx).
    if (le !== 0 && le < this.#uid.length) return sw(0x6c00 | this.#uid.length);
    return Uint8Array.from([...this.#uid, 0x90, 0x00]);
  }
}

function sw(word: number): Uint8Array {
  return Uint8Array.from([word >> 8, word & 0xff]);
}

function frame(payload: Uint8Array): Buffer {
  const out = Buffer.alloc(2 + payload.length);
  out.writeUInt16BE(payload.length, 0);
  out.set(payload, 2);
  return out;
}
