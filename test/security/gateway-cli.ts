/**
 * The real `paylane-gateway` CLI as a child process, for the gateway's
 * security tests: its own process so its RSS is its own, its JSON log lines
 * to wait on (never the clock), its /metrics to read counters from.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { type DeviceAddress, deviceIdentity, hashSecret, type RegistryFile } from "@paylane/protocol";

const MAIN = process.env.TEST_GATEWAY_MAIN ?? fileURLToPath(new URL("../../gateway/src/main.ts", import.meta.url));
const REPO = fileURLToPath(new URL("../../", import.meta.url));
/** Only a watchdog against a hung child; no test waits for it. */
const WATCHDOG_MS = 120_000;

export type LogLine = Record<string, unknown> & { msg?: string };

export interface GatewayCli {
  child: ChildProcess;
  /** Resolves with the first JSON log line whose `msg` is `msg` (and matching `where`). */
  logLine(msg: string, where?: (line: LogLine) => boolean): Promise<LogLine>;
  lines: LogLine[];
  exit: Promise<{ code: number | null; stderr: string }>;
  /** SIGTERM, and the exit. */
  stop(): Promise<{ code: number | null; stderr: string }>;
}

export function runGateway(env: Record<string, string>): GatewayCli {
  const child = spawn(process.execPath, ["--import", "tsx", MAIN], {
    cwd: REPO,
    env: { PATH: process.env.PATH, LOG_LEVEL: "info", MQTT_HOST: "127.0.0.1", GATEWAY_HTTP_PORT: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const watchdog = setTimeout(() => child.kill("SIGKILL"), WATCHDOG_MS);
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

/** The child's resident set size in MiB, from /proc. */
export async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1]);
  return Math.round((kb / 1024) * 10) / 10;
}

/** One sample of a counter from a Prometheus text scrape, summed over the series matching `labels`. */
export async function metric(httpPort: number, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  let sum = 0;
  for (const line of text.split("\n")) {
    const m = /^([a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const set = m[2] ?? "";
    if (Object.entries(labels).every(([k, v]) => set.includes(`${k}="${v}"`))) sum += Number(m[3]);
  }
  return sum;
}

/** A registry file with one device per address, each with its secret. */
export async function registryFile(devices: { address: DeviceAddress; secret: string }[]): Promise<RegistryFile> {
  return {
    version: 1,
    devices: await Promise.all(
      devices.map(async ({ address, secret }) => ({ ...address, secretHash: await hashSecret(secret) })),
    ),
    services: [],
  };
}

export const deviceLogin = (address: DeviceAddress, secret: string) => ({
  clientId: deviceIdentity.clientId(address),
  username: deviceIdentity.username(address),
  password: secret,
});

/** The MQTT 3.1.1 variable byte integer (§2.2.3). */
export function encodeLength(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return out;
}

/** A CONNECT (MQTT 3.1.1 §3.1) with clean session, username and password, by hand: what a flood sends. */
export function connectPacket(clientId: string, username: string, password: string): Buffer {
  const str = (s: string) => {
    const b = Buffer.from(s, "utf8");
    return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
  };
  const variable = Buffer.concat([str("MQTT"), Buffer.from([4, 0xc2, 0, 60])]);
  const body = Buffer.concat([variable, str(clientId), str(username), str(password)]);
  return Buffer.concat([Buffer.from([0x10, ...encodeLength(body.length)]), body]);
}
