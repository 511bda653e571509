/**
 * Operator passwords: argon2id (OWASP's first choice), verified by the
 * library's constant-time comparison. A login for a username that does not
 * exist verifies against a dummy hash of the same cost, so the answer's
 * timing does not tell which usernames exist.
 */
import { randomBytes } from "node:crypto";
import { type Algorithm, hash, verify } from "@node-rs/argon2";

/** The library's `Algorithm.Argon2id` (a const enum, which this build cannot read by name). */
const ARGON2ID = 2 as Algorithm;

/** OWASP's argon2id baseline (m=19 MiB, t=2, p=1): ~20-40 ms on a small server. */
export const ARGON2_OPTIONS = { algorithm: ARGON2ID, memoryCost: 19_456, timeCost: 2, parallelism: 1 };

export function hashPassword(password: string): Promise<string> {
  return hash(password, ARGON2_OPTIONS);
}

/** Whether `password` matches `stored`; a malformed hash is a mismatch, never an exception. */
export async function verifyPassword(stored: string, password: string): Promise<boolean> {
  try {
    return await verify(stored, password);
  } catch {
    return false;
  }
}

let dummy: Promise<string> | undefined;

/** Spends what a real verification costs and answers false: the path for unknown or disabled accounts. */
export async function verifyNobody(password: string): Promise<false> {
  dummy ??= hashPassword(randomBytes(24).toString("base64url"));
  await verifyPassword(await dummy, password);
  return false;
}

/** A password for a new account when none is given: 24 characters of base64url (144 bits). */
export function generatePassword(): string {
  return randomBytes(18).toString("base64url");
}
