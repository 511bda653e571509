/**
 * The one APDU the kiosk sends a contactless card through a PC/SC reader:
 * GET DATA for the UID, the pseudo-APDU of PC/SC part 3 §3.2.2.1.3 that
 * ACR122U / ACR1252U-class readers (and every CCID contactless reader built
 * to that part) answer themselves, whatever the card type.
 */
import { hex, toHex } from "../pn532/commands.ts";

/** CLA FF, INS CA, P1 00 (UID), P2 00, Le 00 (all of it). */
export const GET_DATA_UID = Uint8Array.from([0xff, 0xca, 0x00, 0x00, 0x00]);

/** The status words PC/SC part 3 defines for GET DATA, in words a technician can act on. */
const MEANINGS: Record<number, string> = {
  25218: "end of data reached before Le bytes",
  25344: "the reader could not read the card (held too briefly or too far away)",
  27265: "function not supported: this card or reader has no GET DATA for the UID",
  27392: "wrong parameter P1/P2",
  27904: "instruction not supported: the reader does not know GET DATA (not a PC/SC part 3 contactless reader)",
  28160: "class FF not supported: the reader passes pseudo-APDUs to the card (not a PC/SC part 3 contactless reader)",
};

export class ApduError extends Error {
  override name = "ApduError";
  constructor(
    message: string,
    /** SW1SW2, or undefined when the answer had none. */
    readonly sw?: number,
  ) {
    super(message);
  }
}

/** The UID (upper-case hex) from a GET DATA answer; any status but 90 00 is an ApduError naming it. */
export function parseGetDataUid(answer: Uint8Array): string {
  if (answer.length < 2) throw new ApduError(`GET DATA answer of ${answer.length} byte(s) has no status word`);
  const sw1 = answer[answer.length - 2] ?? 0;
  const sw2 = answer[answer.length - 1] ?? 0;
  const sw = (sw1 << 8) | sw2;
  if (sw !== 0x9000) {
    const meaning = sw1 === 0x6c ? `wrong Le, the UID has ${sw2} bytes` : (MEANINGS[sw] ?? "unexpected status");
    throw new ApduError(`GET DATA (FF CA 00 00 00) answered SW ${hex(sw1)} ${hex(sw2)}: ${meaning}`, sw);
  }
  const uid = answer.subarray(0, answer.length - 2);
  // 4, 7 or 10 bytes for ISO 14443 A, 4 for B's PUPI, 8 for FeliCa's IDm and ISO 15693.
  if (uid.length === 0 || uid.length > 16)
    throw new ApduError(`GET DATA answered 90 00 with a ${uid.length}-byte UID; expected 1 to 16 bytes`, sw);
  return toHex(uid);
}
