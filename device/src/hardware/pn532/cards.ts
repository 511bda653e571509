/**
 * Cards for the PN532 simulator's field: what a tag answers to the commands a
 * host sends through InDataExchange / InCommunicateThru. A 4-byte UID is a
 * MIFARE Classic 1K (NXP MF1S50yyX), a 7-byte UID an NTAG213 (NXP NTAG213/215/216
 * data sheet); both carry an NDEF URI record laid out as the NFC Forum
 * mappings describe (Type 2 Tag, and MIFARE Classic per NXP AN1304/AN1305).
 */
import { parseUid } from "./commands.ts";

/** PN532 status byte of InDataExchange / InCommunicateThru (UM0701-02 §7.1, Table 4). */
export const Status = {
  ok: 0x00,
  /** The target has not answered (also a NAK, a removed card). */
  timeout: 0x01,
  /** MIFARE authentication error. */
  authError: 0x14,
  /** Command not acceptable in the current context (no target selected). */
  wrongContext: 0x27,
} as const;

export interface CardAnswer {
  status: number;
  data: Uint8Array;
}

export interface SimCard {
  readonly kind: "MIFARE Classic 1K" | "NTAG213";
  readonly uid: Uint8Array;
  /** ATQA as sent (SENS_RES). */
  readonly sensRes: number;
  /** SAK (SEL_RES). */
  readonly selRes: number;
  /** One command to the card as InDataExchange carries it (MIFARE auth included). */
  exchange(command: Uint8Array): CardAnswer;
  /** The card left the field or was re-selected: authentication is lost. */
  reset(): void;
}

/** The record every simulated card carries: NDEF URI, prefix 0x04 "https://". */
export const DEFAULT_URI = "paylane.example/card";

function ndefUriMessage(uri: string): number[] {
  const body = [0x04, ...new TextEncoder().encode(uri)];
  // MB ME SR, TNF well-known, type "U".
  return [0xd1, 0x01, body.length, 0x55, ...body];
}

/** NDEF message TLV + terminator TLV. */
function ndefTlv(uri: string): number[] {
  const msg = ndefUriMessage(uri);
  return [0x03, msg.length, ...msg, 0xfe];
}

const ok = (data: ArrayLike<number>): CardAnswer => ({ status: Status.ok, data: Uint8Array.from(data) });
const fail = (status: number): CardAnswer => ({ status, data: new Uint8Array(0) });

// ---- MIFARE Classic 1K ------------------------------------------------------

/** Keys of the NFC Forum MIFARE Classic mapping: MAD sector key A, NDEF sectors key A, and the transport key. */
export const KEY_MAD = Uint8Array.of(0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5);
export const KEY_NDEF = Uint8Array.of(0xd3, 0xf7, 0xd3, 0xf7, 0xd3, 0xf7);
export const KEY_DEFAULT = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff);

class MifareClassic1k implements SimCard {
  readonly kind = "MIFARE Classic 1K" as const;
  readonly sensRes = 0x0004;
  readonly selRes = 0x08;
  readonly uid: Uint8Array;
  /** 16 sectors × 4 blocks × 16 bytes. */
  readonly #blocks: Uint8Array[] = [];
  #authSector: number | undefined;

  constructor(uid: Uint8Array, uri: string) {
    this.uid = uid;
    for (let i = 0; i < 64; i++) this.#blocks.push(new Uint8Array(16));
    const bcc = uid.reduce((a, b) => a ^ b, 0);
    this.#blocks[0]?.set([...uid, bcc, this.selRes, 0x04, 0x00, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69]);
    // MAD v1 (AN10787): CRC, info byte, then AID 03E1 (NDEF) for sectors 1..15.
    const mad = [0x00, 0x01, ...new Array<number>(15).fill(0).flatMap(() => [0x03, 0xe1])];
    mad[0] = madCrc(mad.slice(1));
    this.#blocks[1]?.set(mad.slice(0, 16));
    this.#blocks[2]?.set(mad.slice(16, 32));
    const tlv = ndefTlv(uri);
    for (let i = 0, block = 4; i < tlv.length; i += 16, block++) {
      if (block % 4 === 3) block++;
      this.#blocks[block]?.set(tlv.slice(i, i + 16));
    }
    for (let sector = 0; sector < 16; sector++) {
      const keyA = sector === 0 ? KEY_MAD : KEY_NDEF;
      // Access bits: sector 0 read-only with key A (78 77 88 C1), NDEF sectors read with A, write with B (7F 07 88 40).
      const access = sector === 0 ? [0x78, 0x77, 0x88, 0xc1] : [0x7f, 0x07, 0x88, 0x40];
      this.#blocks[sector * 4 + 3]?.set([...keyA, ...access, ...KEY_DEFAULT]);
    }
  }

  exchange(c: Uint8Array): CardAnswer {
    const op = c[0];
    const block = c[1] ?? 0;
    if ((op === 0x60 || op === 0x61) && c.length >= 12) {
      const trailer = this.#blocks[(block | 3) & 0x3f];
      const key = op === 0x60 ? trailer?.subarray(0, 6) : trailer?.subarray(10, 16);
      const uidOk = equal(c.subarray(8, 12), this.uid.subarray(this.uid.length - 4));
      if (block < 64 && key && uidOk && equal(c.subarray(2, 8), key)) {
        this.#authSector = block >> 2;
        return ok([]);
      }
      this.#authSector = undefined;
      return fail(Status.authError);
    }
    if (block >= 64 || this.#authSector !== block >> 2) {
      // Without authentication the card stays silent; a failed command ends the session.
      this.#authSector = undefined;
      return fail(Status.timeout);
    }
    const data = this.#blocks[block] ?? new Uint8Array(16);
    if (op === 0x30 && c.length === 2) {
      // A sector trailer reads key A as zeros (the keys are never readable).
      return ok(block % 4 === 3 ? [0, 0, 0, 0, 0, 0, ...data.subarray(6)] : data);
    }
    if (op === 0xa0 && c.length === 18 && block !== 0) {
      data.set(c.subarray(2, 18));
      return ok([]);
    }
    this.#authSector = undefined;
    return fail(Status.timeout);
  }

  reset(): void {
    this.#authSector = undefined;
  }
}

/** CRC-8 of the MAD (AN10787: polynomial 0x1D, preset 0xC7). */
function madCrc(bytes: number[]): number {
  let crc = 0xc7;
  for (const b of bytes) {
    crc ^= b;
    for (let i = 0; i < 8; i++) crc = crc & 0x80 ? ((crc << 1) ^ 0x1d) & 0xff : (crc << 1) & 0xff;
  }
  return crc;
}

// ---- NTAG213 ---------------------------------------------------------------

/** GET_VERSION of an NTAG213: vendor NXP, type NTAG, subtype 50 pF, v1.0, 144-byte storage, ISO 14443-3. */
export const NTAG213_VERSION = Uint8Array.of(0x00, 0x04, 0x04, 0x02, 0x01, 0x00, 0x0f, 0x03);
const NTAG213_PAGES = 45;

class Ntag213 implements SimCard {
  readonly kind = "NTAG213" as const;
  readonly sensRes = 0x0044;
  readonly selRes = 0x00;
  readonly uid: Uint8Array;
  readonly #mem = new Uint8Array(NTAG213_PAGES * 4);

  constructor(uid: Uint8Array, uri: string) {
    this.uid = uid;
    const [u0 = 0, u1 = 0, u2 = 0, u3 = 0, u4 = 0, u5 = 0, u6 = 0] = uid;
    const bcc0 = 0x88 ^ u0 ^ u1 ^ u2;
    const bcc1 = u3 ^ u4 ^ u5 ^ u6;
    this.#mem.set([u0, u1, u2, bcc0, u3, u4, u5, u6, bcc1, 0x48, 0x00, 0x00]);
    // Capability container: NDEF magic, v1.0, 144 bytes (0x12 × 8), read/write.
    this.#mem.set([0xe1, 0x10, 0x12, 0x00], 12);
    this.#mem.set(ndefTlv(uri).slice(0, 144), 16);
    // Configuration pages 29h..2Ch: dynamic lock, CFG0 (AUTH0 = FF: no password), CFG1, PWD, PACK.
    this.#mem.set([0x00, 0x00, 0x00, 0xbd, 0x04, 0x00, 0x00, 0xff, 0x00, 0x05], 0x28 * 4);
  }

  exchange(c: Uint8Array): CardAnswer {
    const op = c[0];
    const page = c[1] ?? 0;
    if (op === 0x60 && c.length === 1) return ok(NTAG213_VERSION);
    if (op === 0x30 && c.length === 2 && page < NTAG213_PAGES) {
      // READ returns four pages, rolling over to page 0 past the last one.
      const out: number[] = [];
      for (let i = 0; i < 16; i++) out.push(this.#mem[(page * 4 + i) % (NTAG213_PAGES * 4)] ?? 0);
      return ok(out);
    }
    if (op === 0xa2 && c.length === 6 && page >= 4 && page < 0x28) {
      this.#mem.set(c.subarray(2, 6), page * 4);
      return ok([]);
    }
    // Anything else earns a NAK, which the PN532 reports as no answer.
    return fail(Status.timeout);
  }

  reset(): void {}
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** A card for a hex UID: 4 bytes → MIFARE Classic 1K, 7 bytes → NTAG213. */
export function createCard(uid: string, uri = DEFAULT_URI): SimCard {
  const bytes = parseUid(uid);
  if (bytes.length === 4) return new MifareClassic1k(bytes, uri);
  if (bytes.length === 7) return new Ntag213(bytes, uri);
  throw new Error(
    `the simulator models 4-byte UIDs (MIFARE Classic 1K) and 7-byte UIDs (NTAG213), got ${bytes.length} bytes ("${uid}")`,
  );
}
