/** The cloud's configuration, from the environment, with errors that name the variable. */
import { z } from "zod";

const port = (def: number) => z.coerce.number().int().min(0).max(65535).default(def);

export const CloudEnvSchema = z.object({
  CLOUD_PORT: port(8080),
  CLOUD_HOST: z.string().default("127.0.0.1"),
  MQTT_URL: z.url({ protocol: /^mqtts?$|^wss?$/ }).default("mqtt://127.0.0.1:1883"),
  /** The cloud bridge's service identity on the broker (username `svc:cloud`). */
  CLOUD_MQTT_SECRET: z.string().optional(),
  DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/ }).optional(),
  DATABASE_SCHEMA: z
    .string()
    .regex(/^[a-z_][a-z0-9_]{0,62}$/)
    .default("paylane"),
  /** Where PGlite keeps its files when DATABASE_URL is unset; in memory if unset too. */
  PGLITE_DIR: z.string().optional(),
  REDIS_URL: z.url({ protocol: /^rediss?$/ }).optional(),
  REDIS_PREFIX: z.string().default("paylane:"),
  REGISTRY_PATH: z.string().min(1, "path to the device registry JSON"),
  /** Seeds a demo venue with members on start (used by `npm start`): `site-id` or unset. */
  SEED_DEMO_SITE: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/)
    .optional(),
  SITE_TIMEZONE: z.string().default("UTC"),
  CLOUD_INSTANCE: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/)
    .default("cloud-1"),
  /** A database statement with no answer by then fails (and is retried): a lost reply never wedges ingest. */
  DATABASE_QUERY_TIMEOUT_MS: z.coerce.number().int().min(100).max(3_600_000).default(30_000),
  /** Device time further than this from the cloud's receive time is flagged as clock skew (seconds). */
  CLOCK_SKEW_BOUND_S: z.coerce.number().int().min(1).max(86_400).default(300),
  /** Verifies operator JWTs (HS256) for the money routes; at least 32 characters. Unset: those routes answer 503. */
  CLOUD_JWT_SECRET: z.string().min(32, "expected at least 32 characters").optional(),
  /** The `iss` every operator JWT must carry (and `mintOperatorToken` sets). */
  CLOUD_JWT_ISSUER: z.string().min(1).default("paylane-cloud"),
  /** The `aud` every operator JWT must carry (and `mintOperatorToken` sets). */
  CLOUD_JWT_AUDIENCE: z.string().min(1).default("paylane-api"),
  /** `/metrics` on the API port answers `Authorization: Bearer <METRICS_TOKEN>` only; unset: refused there (403). */
  METRICS_TOKEN: z.string().min(16, "expected at least 16 characters").optional(),
  /** A second listener with `/metrics` and `/healthz` only, no auth, on CLOUD_METRICS_HOST; unset: none. */
  CLOUD_METRICS_PORT: z.coerce.number().int().min(0).max(65535).optional(),
  /** Where CLOUD_METRICS_PORT listens: loopback unless a scraper elsewhere must reach it. */
  CLOUD_METRICS_HOST: z.string().default("127.0.0.1"),
  /** The window every rate limit counts over (seconds). */
  CLOUD_RATE_WINDOW_S: z.coerce.number().int().min(1).max(3600).default(10),
  /** Requests per window per presented credential (an operator token, a kiosk's Basic credentials); 0: no limit. */
  CLOUD_RATE_PER_CREDENTIAL: z.coerce.number().int().min(0).default(5000),
  /** Requests per window per client address (a venue's kiosks share one NAT address); 0: no limit. */
  CLOUD_RATE_PER_ADDRESS: z.coerce.number().int().min(0).default(50_000),
  /** Failed authentications (401) per window per client address before it gets 429; 0: no limit. */
  CLOUD_RATE_AUTH_FAILURES: z.coerce.number().int().min(0).default(100),
  /** The client address is the last X-Forwarded-For hop (set only behind one trusted reverse proxy). */
  CLOUD_TRUST_PROXY: z
    .enum(["true", "false", "1", "0"], { error: "expected true or false" })
    .default("false")
    .transform((v) => v === "true" || v === "1"),
  /** How long the first answer for an idempotency key is kept (days; at least 7). */
  IDEMPOTENCY_RETENTION_DAYS: z.coerce.number().int().min(7, "expected at least 7 days").max(3650).default(7),
  /** How long a gap in a device's seqs may stay open before the device is asked to replay. */
  GAP_WAIT_MS: z.coerce.number().int().min(50).max(600_000).default(2000),
});
export type CloudConfig = z.infer<typeof CloudEnvSchema>;

export function parseCloudEnv(env: Record<string, string | undefined>): CloudConfig {
  const picked = Object.fromEntries(
    Object.keys(CloudEnvSchema.shape).map((k) => [k, env[k] === "" ? undefined : env[k]]),
  );
  const result = CloudEnvSchema.safeParse(picked);
  if (!result.success) {
    const detail = result.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    throw new Error(`invalid cloud configuration: ${detail}`);
  }
  return result.data;
}
