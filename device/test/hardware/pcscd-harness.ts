/**
 * A private, real pcscd for one test file, with vsmartcard's vpcd as its
 * reader: Debian's pcscd and libifdvpcd, nothing of ours but the config.
 *
 * pcscd 1.9.9 always serves /run/pcscd/pcscd.comm (its client library honours
 * PCSCLITE_CSOCK_NAME, the daemon does not), so each pcscd runs in its own
 * mount namespace with a temp folder bind-mounted on /run/pcscd: two test
 * files (the runner runs two at a time) never meet, and a kiosk's own pcscd
 * is never touched. This process, pcsc_scan and every client it spawns find
 * the socket through PCSCLITE_CSOCK_NAME. Where mount namespaces are refused
 * (no CAP_SYS_ADMIN), pcscd serves the system path and must have it to
 * itself; `isolation` says which ran.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PCSCD_SOCKET } from "../../src/hardware/pcsc/binding.ts";

export const VPCD_DRIVER = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so";
const FRIENDLY_NAME = "PayLane Virtual";
const READY_MS = 15_000;

export interface PrivatePcscd {
  /** vpcd's port for the first slot (the virtual card connects here); the second slot listens on port + 1. */
  readonly port: number;
  /** The PC/SC name of vpcd's first slot, as pcsc_scan lists it. */
  readonly readerName: string;
  readonly socketPath: string;
  readonly isolation: "mount-namespace" | "system-socket";
  readonly running: boolean;
  start(): Promise<void>;
  /** SIGTERM (pcscd cleans up) or SIGKILL (a crash: its socket file stays behind). */
  stop(signal?: "SIGTERM" | "SIGKILL"): Promise<void>;
  /** pcscd's own log so far (for a failing test's message). */
  log(): string;
  /** Stops pcscd and removes the temp folder. */
  dispose(): Promise<void>;
}

/** Sets PCSCLITE_CSOCK_NAME for this process: call before anything opens a PC/SC context. */
export async function privatePcscd(): Promise<PrivatePcscd> {
  if (!existsSync(VPCD_DRIVER)) throw new Error(`${VPCD_DRIVER} missing: apt-get install vsmartcard-vpcd`);
  const dir = await mkdtemp(join(tmpdir(), "paylane-pcscd-"));
  const runDir = join(dir, "run");
  await mkdir(runDir);
  const isolation = (await canUnshareMounts()) ? "mount-namespace" : "system-socket";
  const socketPath = isolation === "mount-namespace" ? join(runDir, "pcscd.comm") : PCSCD_SOCKET;
  process.env.PCSCLITE_CSOCK_NAME = socketPath;
  const port = await freePortPair();
  const conf = join(dir, "reader.conf");
  await writeFile(
    conf,
    `FRIENDLYNAME "${FRIENDLY_NAME}"\nDEVICENAME /dev/null:${port}\nLIBPATH ${VPCD_DRIVER}\nCHANNELID ${port}\n`,
  );
  let child: ChildProcess | undefined;
  let output = "";

  const start = async (): Promise<void> => {
    if (child) throw new Error("pcscd is already running");
    if (isolation === "system-socket" && existsSync(PCSCD_SOCKET))
      throw new Error(`${PCSCD_SOCKET} exists: another pcscd serves this machine; stop it to run this test`);
    const pcscd = ["pcscd", "--foreground", "--debug", "--config", conf];
    const proc =
      isolation === "mount-namespace"
        ? spawn(
            "unshare",
            [
              "--mount",
              "--propagation",
              "private",
              "sh",
              "-c",
              // pcscd creates /run/pcscd itself, but a bind mount needs it to exist first.
              'mkdir -p /run/pcscd && mount --bind "$0" /run/pcscd && exec "$@"',
              runDir,
              ...pcscd,
            ],
            { stdio: ["ignore", "pipe", "pipe"] },
          )
        : spawn(pcscd[0] as string, pcscd.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
    child = proc;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`pcscd not ready within ${READY_MS} ms`)), READY_MS);
      const fail = (err: Error) => {
        clearTimeout(timer);
        reject(new Error(`${err.message}\n--- pcscd log ---\n${output.slice(-3000)}`));
      };
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        if (process.env.PCSC_TEST_DEBUG) process.stderr.write(chunk);
        if (output.includes("daemon ready")) {
          clearTimeout(timer);
          resolve();
        }
      };
      proc.stdout?.on("data", onData);
      proc.stderr?.on("data", onData);
      proc.once("error", fail);
      proc.once("exit", (code, signal) => {
        if (child === proc) child = undefined;
        fail(new Error(`pcscd exited (${signal ?? `code ${code}`}) before it was ready`));
      });
    });
  };

  const stop = async (signal: "SIGTERM" | "SIGKILL" = "SIGTERM"): Promise<void> => {
    const proc = child;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) {
      child = undefined;
      return;
    }
    const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
    child = undefined;
  };

  return {
    port,
    readerName: `${FRIENDLY_NAME} 00 00`,
    socketPath,
    isolation,
    get running() {
      return child !== undefined;
    },
    start,
    stop,
    log: () => output,
    dispose: async () => {
      await stop();
      await rm(dir, { recursive: true, force: true });
      // The binding can keep a native handle after its close (a reader closed in a narrow window before its
      // thread ran): the daemon ends by process.exit and never notices, but a test file would hang until the
      // runner's 8-minute kill. Once all is disposed and uvu has reported, end as the daemon does.
      setTimeout(() => process.exit(), 5000).unref();
    },
  };
}

function canUnshareMounts(): Promise<boolean> {
  return new Promise((resolve) => {
    execFile("unshare", ["--mount", "true"], (err) => resolve(!err));
  });
}

/** Two consecutive free TCP ports: vpcd listens on the configured one and the next. */
async function freePortPair(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await listenOn(0);
    if (port !== undefined && port < 65535 && (await listenOn(port + 1)) !== undefined) return port;
  }
  throw new Error("no two consecutive free TCP ports for vpcd");
}

function listenOn(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(undefined));
    server.listen(port, "0.0.0.0", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : undefined));
    });
  });
}

/** Runs pcsc_scan (pcsc-tools) against this pcscd for `seconds` and returns what it printed. */
export function pcscScan(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile("pcsc_scan", args, { timeout: 10_000 }, (err, stdout, stderr) => {
      // -t ends it with a non-zero status on some versions; its output is what counts.
      if (err && !stdout) reject(new Error(`pcsc_scan ${args.join(" ")} failed: ${err.message} ${stderr}`));
      else resolve(stdout);
    });
  });
}
