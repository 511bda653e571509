/**
 * Finds card numbers (PANs) where none may be: logs, journals, SQLite files,
 * API payloads. A PAN here is a Luhn-valid run of 13–19 digits, either
 * unbroken or grouped the way cards are printed (4-4-4-4, 4-6-5, 4-6-4,
 * 4-4-4-4-3, …) with single spaces or single dashes.
 *
 * Unbroken runs are maximal: 20 or more digits in a row are not searched for
 * a 13–19 digit PAN inside them. Luhn passes one random number in ten, so a
 * 13–19 digit number that is not a PAN (a millisecond timestamp is 13 digits)
 * is reported one time in ten: scan data whose numbers are known.
 */
import { readFile } from "node:fs/promises";

export interface PanMatch {
  file: string;
  /** The text as found, separators included. */
  match: string;
}

/** The Luhn (mod 10) check every PAN's last digit satisfies. */
export function luhnValid(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

function isPan(digits: string): boolean {
  return digits.length >= 13 && digits.length <= 19 && luhnValid(digits);
}

/** Group lengths of a printed card number: 4-4-…-(1..4), or 4-6-4 / 4-6-5. */
function cardLayout(lengths: number[]): boolean {
  if (lengths.length < 3 || lengths[0] !== 4) return false;
  if (lengths.length === 3 && lengths[1] === 6) return lengths[2] === 4 || lengths[2] === 5;
  const last = lengths[lengths.length - 1] ?? 0;
  return lengths.slice(1, -1).every((n) => n === 4) && last >= 1 && last <= 4;
}

/** Every PAN-looking number in `text`, in order of appearance, as written. */
export function findPans(text: string): string[] {
  const found: { at: number; match: string }[] = [];
  for (const m of text.matchAll(/\d+/g)) {
    if (isPan(m[0])) found.push({ at: m.index, match: m[0] });
  }
  // Grouped: any run of whole digit groups inside a longer grouped sequence, one separator kind per number.
  for (const m of text.matchAll(/\d+(?:[ -]\d+)+/g)) {
    const groups = [...m[0].matchAll(/\d+/g)].map((g) => ({ at: m.index + g.index, digits: g[0] }));
    for (let i = 0; i < groups.length; i++) {
      for (let j = i + 2; j < groups.length; j++) {
        const span = groups.slice(i, j + 1);
        const first = span[0];
        const last = span[span.length - 1];
        if (!first || !last) continue;
        const written = text.slice(first.at, last.at + last.digits.length);
        const separators = new Set(written.replace(/\d+/g, ""));
        if (separators.size !== 1) continue;
        const digits = span.map((g) => g.digits).join("");
        if (digits.length > 19) break;
        if (cardLayout(span.map((g) => g.digits.length)) && isPan(digits)) found.push({ at: first.at, match: written });
      }
    }
  }
  return found.sort((a, b) => a.at - b.at).map((f) => f.match);
}

/**
 * Scans files for PANs. Files are read as latin1, so binary files (SQLite
 * databases, their -wal files) are scanned byte for byte like text. A path
 * that does not exist is skipped: SQLite's -wal and -shm files come and go.
 */
export async function scanFilesForPans(paths: string[]): Promise<PanMatch[]> {
  const out: PanMatch[] = [];
  for (const file of paths) {
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") continue;
      throw err;
    }
    for (const match of findPans(bytes.toString("latin1"))) out.push({ file, match });
  }
  return out;
}
