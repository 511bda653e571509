/**
 * The `paylane-gateway` CLI as a real child process, for tests that start it:
 * its JSON log lines by `msg`, and its exit. Tests wait on those, never on
 * the clock.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const MAIN = fileURLToPath(new URL("../../src/main.ts", import.meta.url));
const REPO = fileURLToPath(new URL("../../../", import.meta.url));
/** Only a watchdog against a hung child; no test waits for it. */
const WATCHDOG_MS = 20_000;

export interface CliRun {
  child: ChildProcess;
  /** Resolves with the first JSON log line whose `msg` is `msg`; rejects if the CLI exits first. */
  logLine(msg: string): Promise<Record<string, unknown>>;
  exit: Promise<{ code: number | null; stderr: string }>;
}

/** Starts the CLI with only PATH, LOG_LEVEL=info and `env` in its environment. */
export function runGatewayCli(env: Record<string, string>): CliRun {
  const child = spawn(process.execPath, ["--import", "tsx", MAIN], {
    cwd: REPO,
    env: { PATH: process.env.PATH, LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const watchdog = setTimeout(() => child.kill("SIGKILL"), WATCHDOG_MS);
  watchdog.unref();
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const lines: Record<string, unknown>[] = [];
  const waiting: { msg: string; resolve: (line: Record<string, unknown>) => void }[] = [];
  createInterface({ input: child.stdout! }).on("line", (text) => {
    const line = JSON.parse(text) as Record<string, unknown>;
    lines.push(line);
    for (const w of waiting.filter((w) => w.msg === line.msg)) {
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
    exit,
    logLine(msg) {
      const seen = lines.find((line) => line.msg === msg);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        waiting.push({ msg, resolve });
        exit.then(({ code, stderr }) => reject(new Error(`exited ${code} before "${msg}": ${stderr}`)));
      });
    },
  };
}
