/**
 * Where a standalone simulator sits: `--link <path>` becomes a pseudo-terminal
 * at that path (the end a tool such as nfc-list opens), with the simulator on
 * the other end. The path must not exist yet; it disappears when the simulator
 * stops, which to the tool looks like a pulled USB adapter.
 */
import { lstat } from "node:fs/promises";
import { dirname } from "node:path";
import { ConfigError } from "@paylane/protocol/service";
import { openPtyPair, type PtyPair } from "../hardware/serial/pty-pair.ts";
import { openSerialPort, type SerialLink } from "../hardware/serial/serial-link.ts";

export class SimLinkError extends ConfigError {
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
  // socat would fail at once but say so only after its set-up timeout, in its own words.
  if (!(await exists(dirname(path)))) {
    throw new SimLinkError(`--link ${path}: folder ${dirname(path)} does not exist; create it or pick another path`);
  }
  const pty: PtyPair = await openPtyPair({ devicePath: path, peerPath: `${path}.sim` });
  let link: SerialLink;
  try {
    link = await openSerialPort(pty.peerPath, { baudRate: 115_200 });
  } catch (err) {
    await pty.close(); // or its socat would outlive us
    throw err;
  }
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

/** Pause before making a lost pty again, so a failing socat cannot spin. */
const RELINK_MS = 200;

export interface ServePtyOptions {
  /** Puts the simulator on the link; returns how to take it off. */
  attach(link: SerialLink): () => void;
  /** The pty is there: the first time, or again after socat ended. */
  ready(path: string, first: boolean): void;
  out(line: string): void;
}

/**
 * Keeps a pty at `path` until the signal aborts, the simulator on its far end.
 * socat may end when a tool closes its side (nfc-list does, each run): the pty
 * is then made again at the same path, so the tool can open it again. The first
 * failure to make it is the user's to fix (the path exists, no socat): thrown.
 */
export async function servePty(path: string, signal: AbortSignal, o: ServePtyOptions): Promise<void> {
  let first = true;
  while (!signal.aborted) {
    let sim: SimLink;
    try {
      sim = await openSimLink(path);
    } catch (err) {
      if (first) throw err;
      o.out(`  pty not made again yet: ${(err as Error).message}`);
      await pause(RELINK_MS, signal);
      continue;
    }
    const detach = o.attach(sim.link);
    o.ready(sim.path, first);
    first = false;
    const lost = await untilClosedOrAborted(sim.link, signal);
    detach();
    await sim.close();
    if (!lost) break;
    o.out("  pty lost (socat ended); making it again");
    await pause(RELINK_MS, signal);
  }
}

/** Resolves true when the link closed by itself, false when the signal aborted. */
function untilClosedOrAborted(link: SerialLink, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve(false);
      return;
    }
    const onAbort = () => {
      off();
      resolve(false);
    };
    const off = link.onClose(() => {
      signal.removeEventListener("abort", onAbort);
      resolve(true);
    });
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
