/**
 * Where a standalone simulator sits: `--link <path>` becomes a pseudo-terminal
 * at that path (the end a tool such as nfc-list opens), with the simulator on
 * the other end. The path must not exist yet; it disappears when the simulator
 * stops, which to the tool looks like a pulled USB adapter.
 */
import { lstat } from "node:fs/promises";
import { openPtyPair, type PtyPair } from "../hardware/serial/pty-pair.ts";
import { openSerialPort, type SerialLink } from "../hardware/serial/serial-link.ts";

export class SimLinkError extends Error {
  override name = "SimLinkError";
}

export interface SimLink {
  /** The path tools open. */
  path: string;
  /** The simulator's end. */
  link: SerialLink;
  close(): Promise<void>;
}

export async function openSimLink(path: string): Promise<SimLink> {
  if (await exists(path)) {
    throw new SimLinkError(`--link ${path}: already exists; give a path that does not (the simulator creates it)`);
  }
  const pty: PtyPair = await openPtyPair({ devicePath: path, peerPath: `${path}.sim` });
  const link = await openSerialPort(pty.peerPath, { baudRate: 115_200 });
  return {
    path,
    link,
    close: async () => {
      await link.close().catch(() => {});
      await pty.close();
    },
  };
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}
