/**
 * The real `paylane-gateway` CLI as a child process, for the gateway's
 * security tests: its own process so its RSS is its own, its JSON log lines
 * to wait on (never the clock), its /metrics to read counters from.
 */
import { readFile } from "node:fs/promises";
import { type DeviceAddress, deviceIdentity, hashSecret, type RegistryFile } from "@paylane/protocol";
import { type CliRun, type LogLine, runGatewayCli } from "../../gateway/test/support/cli.ts";

export type { LogLine };
export type GatewayCli = CliRun;

/** The CLI on loopback with an ephemeral HTTP port; a long watchdog (floods and soaks run for minutes). */
export function runGateway(env: Record<string, string>): GatewayCli {
  return runGatewayCli({ MQTT_HOST: "127.0.0.1", GATEWAY_HTTP_PORT: "0", ...env }, { watchdogMs: 120_000 });
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
