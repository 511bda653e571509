/**
 * The first admin: a cloud whose database has no operator account yet
 * creates `admin` (role admin, every site) with a random password and writes
 * `{ "username", "password" }` to a file only its owner can read (0600): how
 * `npm start`'s demo site hands out its first login. A database that already
 * has an account is left alone, and so is its file. A production cloud makes
 * its first admin with `paylane-admin user add` instead (docs/console-accounts.md).
 */
import { randomBytes } from "node:crypto";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import type { Database } from "../db/database.ts";
import { generatePassword } from "./password.ts";
import { AccountError, OperatorStore } from "./store.ts";

export const FIRST_ADMIN = "admin";

export interface AdminCredentials {
  username: string;
  password: string;
}

/** Creates the first admin when there is no account; true when it did (and wrote `path`). */
export async function bootstrapFirstAdmin(db: Database, path: string, now?: () => Date): Promise<boolean> {
  const store = new OperatorStore({ db, now });
  if ((await store.count()) > 0) return false;
  const credentials: AdminCredentials = { username: FIRST_ADMIN, password: generatePassword() };
  // Written before the account exists: a cloud that dies in between leaves a file without an account, which the
  // next start overwrites, never an account whose password nobody has.
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${randomBytes(4).toString("hex")}.tmp`;
  await writeFile(tmp, `${JSON.stringify(credentials, null, 2)}\n`, { mode: 0o600 });
  try {
    await store.create({ ...credentials, role: "admin", sites: null });
  } catch (err) {
    // Another instance on the same database made its admin first: its file stands, this one is dropped.
    await rm(tmp, { force: true });
    if (err instanceof AccountError && err.code === "exists") return false;
    throw err;
  }
  await rename(tmp, path);
  return true;
}
