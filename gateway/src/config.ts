/**
 * The CLI's configuration from the environment, and the words for the errors
 * a person starting it is most likely to meet. Every message names the
 * variable that fixes it.
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { LevelWithSilent } from "pino";
import { DEFAULT_LIMITS, type GatewayLimits } from "./limits.ts";
import { MAX_REMAINING_LENGTH } from "./packet-guard.ts";

export interface TlsConfig {
  certPath: string;
  keyPath: string;
  /** mqtts port; undefined when only wss is wanted. */
  port: number | undefined;
  wssPort: number | undefined;
}

export interface GatewayConfig {
  mqttPort: number;
  mqttHost: string;
  httpPort: number;
  registryPath: string;
  logLevel: LevelWithSilent;
  limits: GatewayLimits;
  /** Set when MQTT_TLS_CERT and MQTT_TLS_KEY are. */
  tls: TlsConfig | undefined;
}

export const DEFAULTS = {
  MQTT_PORT: 1883,
  MQTT_HOST: "127.0.0.1",
  MQTT_TLS_PORT: 8883,
  GATEWAY_HTTP_PORT: 8070,
  LOG_LEVEL: "info",
} as const;

/** Each limit's variable, its bounds, and the field it sets. */
const LIMIT_VARIABLES: readonly { name: string; key: keyof GatewayLimits; min: number; max: number }[] = [
  // The fixed header alone is 2 to 5 bytes; a 4-byte Remaining Length carries at most 268,435,455.
  { name: "MQTT_MAX_PACKET_BYTES", key: "maxPacketBytes", min: 64, max: MAX_REMAINING_LENGTH + 5 },
  { name: "MQTT_CONNECT_TIMEOUT_MS", key: "connectTimeoutMs", min: 100, max: 600_000 },
  { name: "MQTT_CONNECTS_PER_ADDRESS", key: "connectsPerAddress", min: 1, max: 1_000_000 },
  { name: "MQTT_CONNECT_WINDOW_S", key: "connectWindowSeconds", min: 1, max: 3600 },
  { name: "MQTT_AUTH_CHECKS_PER_ADDRESS", key: "authChecksPerAddress", min: 1, max: 64 },
  { name: "MQTT_AUTH_FAILURES_PER_ADDRESS", key: "authFailuresPerAddress", min: 1, max: 1_000_000 },
  { name: "MQTT_MESSAGES_PER_SECOND", key: "messagesPerSecond", min: 1, max: 1_000_000 },
];

const LOG_LEVELS: readonly LevelWithSilent[] = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

export class ConfigError extends Error {
  override name = "ConfigError";
}

type Env = Readonly<Record<string, string | undefined>>;

/** Reads the whole configuration; throws one ConfigError listing every bad variable. */
export function parseEnv(env: Env): GatewayConfig {
  const problems: string[] = [];

  const optionalPort = (name: string): number | undefined => {
    const raw = env[name]?.trim();
    if (raw === undefined || raw === "") return undefined;
    const value = /^\d{1,5}$/.test(raw) ? Number(raw) : Number.NaN;
    if (!(value >= 0 && value <= 65535)) {
      problems.push(`${name}=${JSON.stringify(raw)} is not a TCP port (an integer from 0 to 65535)`);
    }
    return value;
  };
  const port = (name: "MQTT_PORT" | "GATEWAY_HTTP_PORT"): number => optionalPort(name) ?? DEFAULTS[name];

  const mqttPort = port("MQTT_PORT");
  const httpPort = port("GATEWAY_HTTP_PORT");

  const limits: GatewayLimits = { ...DEFAULT_LIMITS };
  for (const { name, key, min, max } of LIMIT_VARIABLES) {
    const raw = env[name]?.trim();
    if (raw === undefined || raw === "") continue;
    const value = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
    if (!(value >= min && value <= max)) {
      problems.push(`${name}=${JSON.stringify(raw)} is not an integer from ${min} to ${max}`);
    }
    limits[key] = value;
  }

  const tls = parseTls(env, optionalPort, problems);

  const mqttHost = env.MQTT_HOST?.trim() || DEFAULTS.MQTT_HOST;

  const registryPath = env.REGISTRY_PATH?.trim() ?? "";
  if (registryPath === "") {
    problems.push("REGISTRY_PATH is required: the path of the device registry JSON the gateway authenticates against");
  }

  const rawLevel = env.LOG_LEVEL?.trim() || DEFAULTS.LOG_LEVEL;
  const logLevel = LOG_LEVELS.find((level) => level === rawLevel);
  if (!logLevel) problems.push(`LOG_LEVEL=${JSON.stringify(rawLevel)} is not one of ${LOG_LEVELS.join(", ")}`);

  if (problems.length > 0 || !logLevel) throw new ConfigError(problems.join("; "));
  return { mqttPort, mqttHost, httpPort, registryPath, logLevel, limits, tls };
}

/**
 * MQTT_TLS_CERT and MQTT_TLS_KEY turn on mqtts (MQTT_TLS_PORT, default
 * 8883); MQTT_WSS_PORT adds MQTT over secure WebSocket with the same pair.
 */
function parseTls(
  env: Env,
  optionalPort: (name: string) => number | undefined,
  problems: string[],
): TlsConfig | undefined {
  const certPath = env.MQTT_TLS_CERT?.trim() || undefined;
  const keyPath = env.MQTT_TLS_KEY?.trim() || undefined;
  const tlsPort = optionalPort("MQTT_TLS_PORT");
  const wssPort = optionalPort("MQTT_WSS_PORT");
  if (!certPath || !keyPath) {
    const wants = [
      tlsPort !== undefined && "MQTT_TLS_PORT",
      wssPort !== undefined && "MQTT_WSS_PORT",
      certPath && "MQTT_TLS_CERT",
      keyPath && "MQTT_TLS_KEY",
    ].filter(Boolean);
    if (wants.length > 0) {
      const missing = [!certPath && "MQTT_TLS_CERT", !keyPath && "MQTT_TLS_KEY"].filter(Boolean).join(" and ");
      problems.push(`${wants.join(" and ")} set, so ${missing} is required too (PEM files: certificate chain, key)`);
    }
    return undefined;
  }
  // A certificate alone means mqtts on its usual port; with only MQTT_WSS_PORT, only wss.
  const port = tlsPort ?? (wssPort === undefined ? DEFAULTS.MQTT_TLS_PORT : undefined);
  return { certPath, keyPath, port, wssPort };
}

/**
 * Reads and checks the certificate and key files; every failure is one line
 * naming the variable. Never prints the key.
 */
export async function loadTlsFiles(tls: TlsConfig): Promise<{ cert: Buffer; key: Buffer }> {
  const read = async (name: string, path: string) => {
    try {
      return await readFile(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : (err as Error).message;
      throw new ConfigError(`${name}=${path}: cannot read it (${why})`);
    }
  };
  const cert = await read("MQTT_TLS_CERT", tls.certPath);
  const key = await read("MQTT_TLS_KEY", tls.keyPath);
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(cert);
  } catch {
    throw new ConfigError(
      `MQTT_TLS_CERT=${tls.certPath} is not a PEM certificate (expected -----BEGIN CERTIFICATE-----)`,
    );
  }
  let privateKey: ReturnType<typeof createPrivateKey>;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw new ConfigError(
      `MQTT_TLS_KEY=${tls.keyPath} is not an unencrypted PEM private key (expected -----BEGIN PRIVATE KEY-----)`,
    );
  }
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new ConfigError(`MQTT_TLS_KEY=${tls.keyPath} is not the key of the certificate in MQTT_TLS_CERT`);
  }
  return { cert, key };
}

export interface Listener {
  /** What listens, for the message: "MQTT", "MQTT over TLS", "MQTT over secure WebSocket" or "HTTP". */
  what: string;
  host: string;
  port: number;
  portVariable: string;
  hostVariable: string;
}

/** One line that says why a listen failed and which variable changes it. */
export function listenErrorMessage(err: unknown, l: Listener): string {
  const code = err instanceof Error && "code" in err ? err.code : undefined;
  const where = `${l.host}:${l.port}`;
  switch (code) {
    case "EADDRINUSE": {
      const base = `${l.what} port ${l.port} on ${l.host} is already in use; set ${l.portVariable} to another port.`;
      if (l.what === "MQTT" && l.port === DEFAULTS.MQTT_PORT) {
        return `${base} An MQTT broker such as Mosquitto may already be running there: to use it instead of this gateway, set MQTT_URL=mqtt://127.0.0.1:1883.`;
      }
      return base;
    }
    case "EACCES":
      return `no permission to listen for ${l.what} on ${where} (ports below 1024 need privileges); set ${l.portVariable} to another port.`;
    case "EADDRNOTAVAIL":
    case "ENOTFOUND":
      return `cannot listen for ${l.what} on ${where}: the address is not on this machine; set ${l.hostVariable}.`;
    default:
      return `cannot listen for ${l.what} on ${where}: ${err instanceof Error ? err.message : String(err)}`;
  }
}
