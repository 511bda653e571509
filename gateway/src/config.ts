/**
 * The gateway's configuration from the environment: one schema that
 * validates each variable (every error names it) and documents it in
 * `paylane-gateway --help`; the TLS files it names, checked before anything
 * listens.
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import { hostname } from "node:os";
import {
  ConfigError,
  type Env,
  envInteger,
  envPort,
  envRegistryPollMs,
  LogLevelSchema,
  parseEnv,
} from "@paylane/protocol/service";
import type { LevelWithSilent } from "pino";
import { z } from "zod";
import { DEFAULT_LIMITS, type GatewayLimits } from "./limits.ts";
import { MAX_REMAINING_LENGTH } from "./packet-guard.ts";
import type { RedisSharing } from "./redis.ts";

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
  /** REGISTRY_POLL_MS: also look at the registry file this often (a network file system); unset: watch only. */
  registryPollMs?: number;
  logLevel: LevelWithSilent;
  limits: GatewayLimits;
  /** Set when MQTT_TLS_CERT and MQTT_TLS_KEY are. */
  tls: TlsConfig | undefined;
  /** Set with GATEWAY_REDIS_URL: state shared with other instances; unset: in memory. */
  redis: RedisSharing | undefined;
  /** GATEWAY_INSTANCE: this instance's name in logs and metrics. */
  instance: string;
}

export const DEFAULTS = {
  MQTT_PORT: 1883,
  MQTT_HOST: "127.0.0.1",
  MQTT_TLS_PORT: 8883,
  GATEWAY_HTTP_PORT: 8070,
  GATEWAY_REDIS_PREFIX: "paylane-gateway",
  GATEWAY_REDIS_HEARTBEAT_MS: 10_000,
} as const;

/** The host name when it is a valid instance name (a container's or pod's is), else gateway-1. */
export function defaultInstance(host = hostname()): string {
  return /^[A-Za-z0-9_.-]{1,63}$/.test(host) ? host : "gateway-1";
}

const limit = (min: number, max: number, fallback: number, description: string) =>
  envInteger(min, max).default(fallback).describe(description);
const filePath = (description: string) => z.string().trim().optional().describe(description);

export const GatewayEnvSchema = z
  .object({
    REGISTRY_PATH: z
      .string({
        error: "required: the path of the device registry JSON the gateway authenticates against",
      })
      .trim()
      .min(1, "required: the path of the device registry JSON the gateway authenticates against")
      .describe("device registry JSON (required); watched, and SIGHUP reloads it"),
    REGISTRY_POLL_MS: envRegistryPollMs(),
    MQTT_PORT: envPort().default(DEFAULTS.MQTT_PORT).describe("plain MQTT port"),
    MQTT_HOST: z.string().trim().default(DEFAULTS.MQTT_HOST).describe("listen address for every listener and HTTP"),
    MQTT_TLS_CERT: filePath("PEM certificate chain; with MQTT_TLS_KEY it turns on mqtts"),
    MQTT_TLS_KEY: filePath("PEM private key of MQTT_TLS_CERT"),
    MQTT_TLS_PORT: envPort().optional().describe("mqtts port (8883 when the certificate is set)"),
    MQTT_WSS_PORT: envPort().optional().describe("MQTT over secure WebSocket port, same certificate (unset: off)"),
    // The fixed header alone is 2 to 5 bytes; a 4-byte Remaining Length carries at most 268,435,455.
    MQTT_MAX_PACKET_BYTES: limit(
      64,
      MAX_REMAINING_LENGTH + 5,
      DEFAULT_LIMITS.maxPacketBytes,
      "largest MQTT packet, header included",
    ),
    MQTT_CONNECT_TIMEOUT_MS: limit(
      100,
      600_000,
      DEFAULT_LIMITS.connectTimeoutMs,
      "close a connection with no CONNECT by then",
    ),
    MQTT_CONNECTS_PER_ADDRESS: limit(
      1,
      1_000_000,
      DEFAULT_LIMITS.connectsPerAddress,
      "new connections per source address per window",
    ),
    MQTT_CONNECT_WINDOW_S: limit(1, 3600, DEFAULT_LIMITS.connectWindowSeconds, "that window, seconds"),
    MQTT_AUTH_CHECKS_PER_ADDRESS: limit(
      1,
      64,
      DEFAULT_LIMITS.authChecksPerAddress,
      "password checks running at once per source address",
    ),
    MQTT_AUTH_FAILURES_PER_ADDRESS: limit(
      1,
      1_000_000,
      DEFAULT_LIMITS.authFailuresPerAddress,
      "failed password checks per source address per minute",
    ),
    MQTT_MESSAGES_PER_SECOND: limit(
      1,
      1_000_000,
      DEFAULT_LIMITS.messagesPerSecond,
      "PUBLISH packets per second per device; more closes it",
    ),
    GATEWAY_HTTP_PORT: envPort().default(DEFAULTS.GATEWAY_HTTP_PORT).describe("/healthz and /metrics port"),
    GATEWAY_REDIS_URL: z
      .url({
        protocol: /^rediss?$/,
        error: "expected a redis:// or rediss:// URL such as redis://127.0.0.1:6379 (user, password, /db allowed)",
      })
      // ioredis reads the path as the database index: /abc would SELECT NaN and crash the process at connect.
      .refine((u) => /^\/?(\d{1,5})?$/.test(new URL(u).pathname), {
        error: "expected the path to be a database number such as redis://127.0.0.1:6379/2, or no path (database 0)",
      })
      .optional()
      .describe(
        "share sessions, subscriptions, retained messages and shared subscriptions with every gateway on this Redis (unset: in memory, one instance)",
      ),
    GATEWAY_REDIS_PREFIX: z
      .string()
      .trim()
      .regex(/^[A-Za-z0-9_.:-]{1,64}$/, {
        error: "expected 1 to 64 letters, digits, '_', '.', ':' or '-' (it names Redis keys and channels)",
      })
      .default(DEFAULTS.GATEWAY_REDIS_PREFIX)
      .describe(
        "Redis keys ({prefix}:…) and pub/sub channels ({prefix}/…) of this fleet: gateways that share state share it",
      ),
    GATEWAY_REDIS_HEARTBEAT_MS: limit(
      200,
      600_000,
      DEFAULTS.GATEWAY_REDIS_HEARTBEAT_MS,
      "with Redis: each instance's heartbeat; after 3 missed, another publishes its clients' Wills (the same on every instance)",
    ),
    GATEWAY_INSTANCE: z
      .string()
      .trim()
      .regex(/^[A-Za-z0-9_.-]{1,63}$/, { error: "expected 1 to 63 letters, digits, '_', '.' or '-'" })
      .optional()
      .describe("this instance's name in logs and metrics (default: the host name, else gateway-1)"),
    LOG_LEVEL: LogLevelSchema,
  })
  .superRefine((env, ctx) => {
    // A TLS port or one half of the pair, without the other half: say what is missing.
    if (env.MQTT_TLS_CERT && env.MQTT_TLS_KEY) return;
    const wants = [
      env.MQTT_TLS_PORT !== undefined && "MQTT_TLS_PORT",
      env.MQTT_WSS_PORT !== undefined && "MQTT_WSS_PORT",
      env.MQTT_TLS_CERT && "MQTT_TLS_CERT",
      env.MQTT_TLS_KEY && "MQTT_TLS_KEY",
    ].filter(Boolean);
    if (wants.length === 0) return;
    const missing = [!env.MQTT_TLS_CERT && "MQTT_TLS_CERT", !env.MQTT_TLS_KEY && "MQTT_TLS_KEY"].filter(Boolean);
    ctx.addIssue({
      code: "custom",
      path: [missing[0] as string],
      message: `${wants.join(" and ")} set, so ${missing.join(" and ")} is required too (PEM files: certificate chain, key)`,
    });
  });

/** Reads the whole configuration; throws one ConfigError naming every bad variable. */
export function parseGatewayEnv(env: Env): GatewayConfig {
  const e = parseEnv(GatewayEnvSchema, env);
  return {
    mqttPort: e.MQTT_PORT,
    mqttHost: e.MQTT_HOST || DEFAULTS.MQTT_HOST,
    httpPort: e.GATEWAY_HTTP_PORT,
    registryPath: e.REGISTRY_PATH,
    // Only when set: a configuration without it reads (and compares) as it did before the key existed.
    ...(e.REGISTRY_POLL_MS !== undefined && { registryPollMs: e.REGISTRY_POLL_MS }),
    logLevel: e.LOG_LEVEL,
    limits: {
      maxPacketBytes: e.MQTT_MAX_PACKET_BYTES,
      connectTimeoutMs: e.MQTT_CONNECT_TIMEOUT_MS,
      connectsPerAddress: e.MQTT_CONNECTS_PER_ADDRESS,
      connectWindowSeconds: e.MQTT_CONNECT_WINDOW_S,
      authChecksPerAddress: e.MQTT_AUTH_CHECKS_PER_ADDRESS,
      authFailuresPerAddress: e.MQTT_AUTH_FAILURES_PER_ADDRESS,
      messagesPerSecond: e.MQTT_MESSAGES_PER_SECOND,
    },
    redis: e.GATEWAY_REDIS_URL
      ? { url: e.GATEWAY_REDIS_URL, prefix: e.GATEWAY_REDIS_PREFIX, heartbeatMs: e.GATEWAY_REDIS_HEARTBEAT_MS }
      : undefined,
    instance: e.GATEWAY_INSTANCE ?? defaultInstance(),
    // A certificate alone means mqtts on its usual port; with only MQTT_WSS_PORT, only wss.
    tls:
      e.MQTT_TLS_CERT && e.MQTT_TLS_KEY
        ? {
            certPath: e.MQTT_TLS_CERT,
            keyPath: e.MQTT_TLS_KEY,
            port: e.MQTT_TLS_PORT ?? (e.MQTT_WSS_PORT === undefined ? DEFAULTS.MQTT_TLS_PORT : undefined),
            wssPort: e.MQTT_WSS_PORT,
          }
        : undefined,
  };
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

/**
 * Advice for a taken MQTT port: on 1883 it is most likely a broker such as
 * Mosquitto, which the kiosks and the cloud can use instead of this gateway.
 */
export function mqttPortHint(port: number): string | undefined {
  return port === DEFAULTS.MQTT_PORT
    ? "an MQTT broker such as Mosquitto may already be running there: to use it instead of this gateway, set MQTT_URL=mqtt://127.0.0.1:1883"
    : undefined;
}
