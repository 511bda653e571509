/**
 * The local API's per-boot token. The daemon makes a new one at each start
 * and writes it to `<dataDir>/local-api-token` (the file name is a contract:
 * `npm run tap` and diagnostics on the kiosk read it), mode 0600, atomically
 * (a reader sees the old token or the new one, never half a file). The UI
 * page gets it injected by the daemon. It is never logged.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { open, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";

export const LOCAL_API_TOKEN_FILE = "local-api-token";

export function localApiTokenPath(dataDir: string): string {
  return join(dataDir, LOCAL_API_TOKEN_FILE);
}

/** Makes this boot's token and writes it to `<dataDir>/local-api-token` (0600, atomic rename). */
export async function issueLocalApiToken(dataDir: string): Promise<string> {
  const token = randomBytes(32).toString("base64url");
  const path = localApiTokenPath(dataDir);
  const tmp = `${path}.${process.pid}.tmp`;
  // A leftover temp file could carry a wider mode; "wx" creates a fresh one with 0600.
  await rm(tmp, { force: true });
  const file = await open(tmp, "wx", 0o600);
  try {
    await file.writeFile(`${token}\n`);
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(tmp, path);
  return token;
}

/** Reads the running kiosk's token, with an error that says what to do when there is none. */
export async function readLocalApiToken(dataDir: string): Promise<string> {
  const path = localApiTokenPath(dataDir);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(
      code === "EACCES"
        ? `cannot read ${path}: run as the kiosk daemon's user`
        : `no local API token at ${path}: is the kiosk daemon running with dataDir ${dataDir}?`,
    );
  }
  const token = text.trim();
  if (!token) throw new Error(`${path} is empty: restart the kiosk daemon`);
  return token;
}

/** A comparison of `presented` with `expected` whose time does not depend on where they differ, nor on length. */
export function sameToken(presented: string, expected: string): boolean {
  const a = createHash("sha256").update(presented).digest();
  const b = createHash("sha256").update(expected).digest();
  return timingSafeEqual(a, b);
}
