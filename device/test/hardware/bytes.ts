/** Bytes as the protocol specs print them, for byte-exact assertions on frames. */

/** "00 00 FF" → the bytes. */
export function hex(text: string): Uint8Array {
  return Uint8Array.from(text.trim().split(/\s+/), (h) => Number.parseInt(h, 16));
}

/** The bytes → "00 00 FF". */
export function show(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).toUpperCase().padStart(2, "0")).join(" ");
}
