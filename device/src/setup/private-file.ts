/** Files only the kiosk's user may read (keys, secrets, kiosk.json), written so a power cut leaves the old or the new. */
import { open, rename, rm } from "node:fs/promises";

/** Writes `text` to `path` through a temp file (0600, fsynced) and a rename. */
export async function writePrivateFile(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  // A leftover temp file could carry a wider mode; "wx" makes a fresh one with 0600.
  await rm(tmp, { force: true });
  const file = await open(tmp, "wx", 0o600);
  try {
    await file.writeFile(text);
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(tmp, path);
}

/** kiosk.json with `changes` applied (undefined removes a key), written atomically with 0600. */
export async function rewriteKioskFile(
  path: string,
  raw: Record<string, unknown>,
  changes: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const next: Record<string, unknown> = { ...raw };
  for (const [k, v] of Object.entries(changes)) {
    if (v === undefined) delete next[k];
    else next[k] = v;
  }
  await writePrivateFile(path, `${JSON.stringify(next, null, 2)}\n`);
  return next;
}
