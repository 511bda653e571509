/**
 * A linked pair of pseudo-terminals made by socat, so the daemon opens a real
 * device path (exactly as /dev/ttyS0 on a Pi) while a simulator sits on the
 * other end:
 *
 *   socat -d -d pty,raw,echo=0,link=DEVICE pty,raw,echo=0,link=PEER
 *
 * Ready when socat logs "starting data transfer loop" (both ptys open, links
 * made). close() stops socat, which removes the links: to the process holding
 * the device path that looks like a pulled USB adapter.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { lstat, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { realTimers, type Timers } from "../../timers.ts";

export interface PtyPair {
  /** The path the driver opens. */
  devicePath: string;
  /** The path the simulated device opens. */
  peerPath: string;
  /** Stops socat; the links disappear. Safe to call twice. */
  close(): Promise<void>;
}

export interface PtyPairOptions {
  /** Defaults to a fresh temp dir, removed on close. */
  devicePath?: string;
  peerPath?: string;
  /** How long socat may take to set up. */
  timeoutMs?: number;
  /** Defaults to "socat" on PATH. */
  socatPath?: string;
  timers?: Timers;
}

export class PtyPairError extends Error {
  override name = "PtyPairError";
}

const READY = "starting data transfer loop";

export async function openPtyPair(opts: PtyPairOptions = {}): Promise<PtyPair> {
  const timers = opts.timers ?? realTimers;
  const timeoutMs = opts.timeoutMs ?? 5000;
  let tempDir: string | undefined;
  if (!opts.devicePath || !opts.peerPath) tempDir = await mkdtemp(join(tmpdir(), "paylane-pty-"));
  const devicePath = opts.devicePath ?? join(tempDir ?? "", "device");
  const peerPath = opts.peerPath ?? join(tempDir ?? "", "peer");
  const socat = opts.socatPath ?? "socat";

  // socat runs under a small sh guard that holds a pipe from us: when this process ends in any
  // way (kill -9 included), the pipe closes, `read` returns and the guard stops socat, so a
  // crashed kiosk never leaves a socat behind. 127: socat is not installed.
  const guard =
    'command -v "$0" >/dev/null || exit 127; "$0" "$@" & pid=$!; read -r _; kill $pid 2>/dev/null; wait $pid';
  const child = spawn(
    "sh",
    ["-c", guard, socat, "-d", "-d", `pty,raw,echo=0,link=${devicePath}`, `pty,raw,echo=0,link=${peerPath}`],
    { stdio: ["pipe", "ignore", "pipe"] },
  );
  // Keep the last lines for error messages; keep draining so socat never blocks on stderr.
  const log: string[] = [];
  child.stderr?.setEncoding("utf8");
  const onStderr = (text: string) => {
    log.push(...text.split("\n").filter(Boolean));
    log.splice(0, Math.max(0, log.length - 20));
  };
  child.stderr?.on("data", onStderr);

  try {
    await waitReady(child, log, socat, timers, timeoutMs);
    await Promise.all([lstat(devicePath), lstat(peerPath)]);
  } catch (err) {
    await stop(child, timers);
    child.stderr?.off("data", onStderr);
    if (tempDir) await rm(tempDir, { recursive: true, force: true });
    if (err instanceof PtyPairError) throw err;
    throw new PtyPairError(`socat reported ready but a pty link is missing: ${(err as Error).message}`);
  }

  let closing: Promise<void> | undefined;
  return {
    devicePath,
    peerPath,
    close() {
      closing ??= (async () => {
        await stop(child, timers);
        child.stderr?.off("data", onStderr);
        if (tempDir) await rm(tempDir, { recursive: true, force: true });
      })();
      return closing;
    },
  };
}

function waitReady(
  child: ChildProcess,
  log: string[],
  socat: string,
  timers: Timers,
  timeoutMs: number,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      timers.clearTimeout(timer);
      child.off("error", onError);
      child.off("exit", onExit);
      child.stderr?.off("data", onData);
      if (err) reject(err);
      else resolve();
    };
    const onData = () => {
      if (log.some((l) => l.includes(READY))) done();
    };
    const onError = (err: NodeJS.ErrnoException) => {
      done(
        err.code === "ENOENT"
          ? new PtyPairError(
              `socat not found ("${socat}"): install socat (Debian package socat: apt-get install socat) to create virtual serial ports`,
            )
          : new PtyPairError(`cannot start socat: ${err.message}`),
      );
    };
    const onExit = (code: number | null, signal: string | null) => {
      done(
        code === 127
          ? new PtyPairError(
              `socat not found ("${socat}"): install socat (Debian package socat: apt-get install socat) to create virtual serial ports`,
            )
          : new PtyPairError(
              `socat exited (${signal ?? `code ${code}`}) before the ptys were ready: ${log.join(" | ")}`,
            ),
      );
    };
    const timer = timers.setTimeout(
      () => done(new PtyPairError(`socat did not set up the pty pair within ${timeoutMs} ms: ${log.join(" | ")}`)),
      timeoutMs,
    );
    child.on("error", onError);
    child.on("exit", onExit);
    child.stderr?.on("data", onData);
  });
}

/** Closes the guard's pipe (it stops socat and exits); SIGKILL if it has not exited within a second. */
function stop(child: ChildProcess, timers: Timers): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = timers.setTimeout(() => child.kill("SIGKILL"), 1000);
    child.once("exit", () => {
      timers.clearTimeout(timer);
      resolve();
    });
    child.stdin?.end();
  });
}
