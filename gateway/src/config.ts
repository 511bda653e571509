/**
 * The CLI's configuration from the environment, and the words for the errors
 * a person starting it is most likely to meet. Every message names the
 * variable that fixes it.
 */
import type { LevelWithSilent } from "pino";

export interface GatewayConfig {
  mqttPort: number;
  mqttHost: string;
  httpPort: number;
  registryPath: string;
  logLevel: LevelWithSilent;
}

export const DEFAULTS = {
  MQTT_PORT: 1883,
  MQTT_HOST: "0.0.0.0",
  GATEWAY_HTTP_PORT: 8070,
  LOG_LEVEL: "info",
} as const;

const LOG_LEVELS: readonly LevelWithSilent[] = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

export class ConfigError extends Error {
  override name = "ConfigError";
}

type Env = Readonly<Record<string, string | undefined>>;

/** Reads the whole configuration; throws one ConfigError listing every bad variable. */
export function parseEnv(env: Env): GatewayConfig {
  const problems: string[] = [];

  const port = (name: "MQTT_PORT" | "GATEWAY_HTTP_PORT"): number => {
    const raw = env[name]?.trim();
    if (raw === undefined || raw === "") return DEFAULTS[name];
    const value = /^\d{1,5}$/.test(raw) ? Number(raw) : Number.NaN;
    if (!(value >= 0 && value <= 65535)) {
      problems.push(`${name}=${JSON.stringify(raw)} is not a TCP port (an integer from 0 to 65535)`);
    }
    return value;
  };

  const mqttPort = port("MQTT_PORT");
  const httpPort = port("GATEWAY_HTTP_PORT");

  const mqttHost = env.MQTT_HOST?.trim() || DEFAULTS.MQTT_HOST;

  const registryPath = env.REGISTRY_PATH?.trim() ?? "";
  if (registryPath === "") {
    problems.push("REGISTRY_PATH is required: the path of the device registry JSON the gateway authenticates against");
  }

  const rawLevel = env.LOG_LEVEL?.trim() || DEFAULTS.LOG_LEVEL;
  const logLevel = LOG_LEVELS.find((level) => level === rawLevel);
  if (!logLevel) problems.push(`LOG_LEVEL=${JSON.stringify(rawLevel)} is not one of ${LOG_LEVELS.join(", ")}`);

  if (problems.length > 0 || !logLevel) throw new ConfigError(problems.join("; "));
  return { mqttPort, mqttHost, httpPort, registryPath, logLevel };
}

export interface Listener {
  /** What listens, for the message: "MQTT" or "HTTP". */
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
