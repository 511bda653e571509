/**
 * The `paylane-gateway` CLI as a real child process, for tests that start it
 * (the gateway's own, and the security suite's through test/security/gateway-cli.ts):
 * its JSON log lines by `msg`, its exit, a SIGTERM stop. Tests wait on those,
 * never on the clock.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const MAIN = process.env.TEST_GATEWAY_MAIN ?? fileURLToPath(new URL("../../src/main.ts", import.meta.url));
const REPO = fileURLToPath(new URL("../../../", import.meta.url));

export type LogLine = Record<string, unknown> & { msg?: string };

export interface CliRun {
  child: ChildProcess;
  /** Resolves with the first JSON log line whose `msg` is `msg` (and matching `where`); rejects if the CLI exits first. */
  logLine(msg: string, where?: (line: LogLine) => boolean): Promise<LogLine>;
  lines: LogLine[];
  exit: Promise<{ code: number | null; stderr: string }>;
  /** SIGTERM, and the exit. */
  stop(): Promise<{ code: number | null; stderr: string }>;
}

/**
 * Starts the CLI with only PATH, LOG_LEVEL=info and `env` in its environment. `watchdogMs` only
 * guards against a hung child (no test waits for it).
 */
export function runGatewayCli(env: Record<string, string>, { watchdogMs = 20_000 } = {}): CliRun {
  const child = spawn(process.execPath, ["--import", "tsx", MAIN], {
    cwd: REPO,
    env: { PATH: process.env.PATH, LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const watchdog = setTimeout(() => child.kill("SIGKILL"), watchdogMs);
  watchdog.unref();
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const lines: LogLine[] = [];
  const waiting: { msg: string; where: (line: LogLine) => boolean; resolve: (line: LogLine) => void }[] = [];
  createInterface({ input: child.stdout! }).on("line", (text) => {
    let line: LogLine;
    try {
      line = JSON.parse(text) as LogLine;
    } catch {
      return;
    }
    lines.push(line);
    for (const w of waiting.filter((w) => w.msg === line.msg && w.where(line))) {
      waiting.splice(waiting.indexOf(w), 1);
      w.resolve(line);
    }
  });
  const exit = new Promise<{ code: number | null; stderr: string }>((resolve) => {
    child.once("close", (code) => {
      clearTimeout(watchdog);
      resolve({ code, stderr });
    });
  });
  return {
    child,
    lines,
    exit,
    logLine(msg, where = () => true) {
      const seen = lines.find((line) => line.msg === msg && where(line));
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        waiting.push({ msg, where, resolve });
        exit.then(({ code, stderr }) => reject(new Error(`gateway exited ${code} before "${msg}": ${stderr}`)));
      });
    },
    stop() {
      if (child.exitCode === null) child.kill("SIGTERM");
      return exit;
    },
  };
}
