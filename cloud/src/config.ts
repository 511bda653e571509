/**
 * The cloud's configuration, from the environment: one schema that validates
 * each variable (errors name it) and, through `.describe()`, documents it in
 * `paylane-cloud --help`.
 */

import { ID_PATTERN, RESERVED_SITES } from "@paylane/protocol";
import {
  ConfigError,
  envBoolean,
  envInteger,
  envPort,
  envRegistryPollMs,
  LogLevelSchema,
  parseEnv,
  timeZone,
} from "@paylane/protocol/service";
import { z } from "zod";
import { parsePgUrl } from "./db/pg-url.ts";

/** A Postgres URL, libpq's multi-host form included (node-postgres reads one host only; the cloud picks among them). */
function pgUrl() {
  return z.string().superRefine((value, ctx) => {
    try {
      parsePgUrl(value);
    } catch (err) {
      ctx.addIssue({ code: "custom", message: (err as Error).message });
    }
  });
}

/** What one cloud process runs (docs/scale-bridges.md). */
export const CLOUD_ROLES = ["all", "api", "bridge"] as const;
export type CloudRole = (typeof CLOUD_ROLES)[number];

export const CloudEnvSchema = z.object({
  REGISTRY_PATH: z
    .string({ error: "required: the path of the device registry JSON" })
    .min(1, "path to the device registry JSON")
    .describe("device registry JSON (required; watched, SIGHUP reloads it)"),
  REGISTRY_POLL_MS: envRegistryPollMs(),
  CLOUD_PORT: envPort().default(8080).describe("HTTP API port"),
  CLOUD_HOST: z.string().default("127.0.0.1").describe("HTTP API address"),
  CLOUD_TLS_CERT: z
    .string()
    .trim()
    .min(1)
    .optional()
    .describe("PEM certificate chain; with CLOUD_TLS_KEY the API listens on HTTPS (kiosks enrol over it)"),
  CLOUD_TLS_KEY: z.string().trim().min(1).optional().describe("PEM private key of CLOUD_TLS_CERT"),
  MQTT_URL: z
    .url({ protocol: /^mqtts?$|^wss?$/ })
    .default("mqtt://127.0.0.1:1883")
    .describe("the broker"),
  /** The cloud bridge's service identity on the broker (username `svc:cloud`). */
  CLOUD_MQTT_SECRET: z.string().optional().describe("the bridge's secret on the broker (username svc:cloud)"),
  DATABASE_URL: pgUrl()
    .optional()
    .describe(
      "Postgres (unset: PGlite, in PGLITE_DIR or in memory); several hosts as libpq, postgres://h1:5432,h2:5432/db?target_session_attrs=read-write, follow a failover",
    ),
  DATABASE_READ_URL: pgUrl()
    .optional()
    .describe(
      "a streaming replica for read-only API queries (check-in lists, conflicts, CSV exports); the primary answers while it is down",
    ),
  DATABASE_SCHEMA: z
    .string()
    .regex(/^[a-z_][a-z0-9_]{0,62}$/)
    .default("paylane")
    .describe("Postgres schema"),
  PGLITE_DIR: z.string().optional().describe("where PGlite keeps its files when DATABASE_URL is unset"),
  CLOUD_ADMIN_CREDENTIALS_FILE: z
    .string()
    .min(1)
    .optional()
    .describe(
      "with no operator account yet, creates admin with a random password and writes it here (JSON, 0600; npm start); unset: use paylane-admin user add",
    ),
  REDIS_URL: z
    .url({ protocol: /^rediss?$/ })
    // ioredis reads the path as the database index: /abc would SELECT NaN and crash the process at connect.
    .refine((u) => /^\/?(\d{1,5})?$/.test(new URL(u).pathname), {
      error: "expected the path to be a database number such as redis://127.0.0.1:6379/2, or no path (database 0)",
    })
    .optional()
    .describe("presence and rate limits in Redis (unset: in process)"),
  REDIS_PREFIX: z.string().default("paylane:").describe("prefix of every Redis key"),
  SEED_DEMO_SITE: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/)
    .optional()
    .describe("seeds a demo venue with members on start, with this site id (npm start)"),
  SITE_TIMEZONE: timeZone().default("UTC").describe("the demo venue's IANA time zone"),
  CLOUD_INSTANCE: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/)
    .default("cloud-1")
    .describe("this instance's name, when several share a database"),
  CLOUD_ROLE: z
    .enum(CLOUD_ROLES)
    .default("all")
    .describe(
      "all: API and bridge in one process; api: the HTTP API, MQTT only for commands and configs, no ingest; bridge: ingest and fleet listeners, HTTP only /healthz /readyz /metrics (docs/scale-bridges.md)",
    ),
  CLOUD_SHARE_GROUP: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}$/, "letters, digits, _ and - only (it is an MQTT topic level)")
    .default("bridge")
    .describe(
      "the MQTT shared-subscription group of the ingest: $share/<group>/paylane/v1/<site>/+/events, so N bridges split the kiosks' events",
    ),
  CLOUD_SITES: z
    .string()
    .optional()
    .transform((value, ctx) => {
      if (value === undefined || value.trim() === "") return undefined;
      const sites = [...new Set(value.split(",").map((s) => s.trim()))];
      const bad = sites.find((s) => !ID_PATTERN.test(s) || RESERVED_SITES.has(s));
      if (bad !== undefined) {
        ctx.addIssue({
          code: "custom",
          message: `"${bad}" is not a site id (a comma list like venue-1,venue-2: lower-case letters, digits, _ and -; not "cloud")`,
        });
        return z.NEVER;
      }
      return sites;
    })
    .describe(
      "the sites this deployment owns, a comma list (unset: every site): the bridge subscribes only their topics, listings and metrics cover only them (docs/partitioning.md)",
    ),
  DATABASE_QUERY_TIMEOUT_MS: envInteger(100, 3_600_000)
    .default(30_000)
    .describe("a statement with no answer by then fails and is retried"),
  CLOCK_SKEW_BOUND_S: envInteger(1, 86_400)
    .default(300)
    .describe("device time further than this from receive time is flagged as clock skew"),
  CLOUD_JWT_SECRET: z
    .string()
    .min(32, "expected at least 32 characters")
    .optional()
    .describe("verifies operator JWTs (HS256) for the money routes; unset: they answer 503"),
  CLOUD_JWT_ISSUER: z.string().min(1).default("paylane-cloud").describe("the iss every operator JWT must carry"),
  CLOUD_JWT_AUDIENCE: z.string().min(1).default("paylane-api").describe("the aud every operator JWT must carry"),
  METRICS_TOKEN: z
    .string()
    .min(16, "expected at least 16 characters")
    .optional()
    .describe("bearer token for /metrics on the API port; unset: refused there"),
  CLOUD_METRICS_PORT: envPort()
    .optional()
    .describe("a second listener with /metrics and /healthz only, no auth; unset: none"),
  CLOUD_METRICS_HOST: z.string().default("127.0.0.1").describe("where CLOUD_METRICS_PORT listens"),
  CLOUD_RATE_WINDOW_S: envInteger(1, 3600).default(10).describe("the window every rate limit counts over, seconds"),
  CLOUD_RATE_PER_CREDENTIAL: envInteger(0, Number.MAX_SAFE_INTEGER, "an integer, 0 or more")
    .default(5000)
    .describe("requests per window per credential; 0: no limit"),
  CLOUD_RATE_PER_ADDRESS: envInteger(0, Number.MAX_SAFE_INTEGER, "an integer, 0 or more")
    .default(50_000)
    .describe("requests per window per client address; 0: no limit"),
  CLOUD_RATE_AUTH_FAILURES: envInteger(0, Number.MAX_SAFE_INTEGER, "an integer, 0 or more")
    .default(100)
    .describe("failed authentications per window per address before 429; 0: no limit"),
  CLOUD_ENROL_FAILURES_PER_MIN: envInteger(0, 1_000_000, "an integer, 0 or more")
    .default(10)
    .describe("failed enrolments (POST /api/v1/enrol) per minute per client address before 429; 0: no limit"),
  CLOUD_TRUST_PROXY: envBoolean()
    .default(false)
    .describe("the client address is the last X-Forwarded-For hop (behind one trusted proxy only)"),
  ALERT_DEVICE_OFFLINE_S: envInteger(1, 86_400)
    .default(120)
    .describe("a device offline this long (seconds, from its last offline status) raises device-offline"),
  ALERT_BACKLOG_MAX: envInteger(1, 10_000_000)
    .default(500)
    .describe("a kiosk reporting more unacked journal entries than this raises backlog-high"),
  ALERT_OLDEST_UNACKED_S: envInteger(1, 604_800)
    .default(300)
    .describe("a kiosk whose oldest unacked entry waited longer than this (seconds) raises oldest-unacked-high"),
  ALERT_EXPOSURE_PERCENT: envInteger(1, 100)
    .default(80)
    .describe("offline payment exposure at or above this percentage of the kiosk's cap raises exposure-near-cap"),
  ALERT_EVENT_RESOLVE_S: envInteger(1, 604_800)
    .default(900)
    .describe("event-like alerts (staff called, journal rolled back, ledger exception) resolve after this, seconds"),
  ALERT_SCAN_INTERVAL_S: envInteger(1, 3600)
    .default(30)
    .describe("how often the journal and ledger are scanned for event-like alerts besides after each commit"),
  ALERT_WEBHOOK_URL: z
    .url({ protocol: /^https?$/ })
    .optional()
    .describe("POSTs every alert change as JSON, signed with ALERT_WEBHOOK_SECRET (docs/alerts.md); unset: none"),
  ALERT_WEBHOOK_SECRET: z
    .string()
    .min(16, "expected at least 16 characters")
    .optional()
    .describe("the HMAC-SHA256 key of the webhook's X-PayLane-Signature header (required with ALERT_WEBHOOK_URL)"),
  PAGERDUTY_ROUTING_KEY: z
    .string()
    .regex(/^[A-Za-z0-9]{20,64}$/, "expected the 32-character integration key of an Events API v2 integration")
    .optional()
    .describe("sends alerts to PagerDuty (Events API v2) with this integration key; unset: none"),
  PAGERDUTY_EVENTS_URL: z
    .url({ protocol: /^https?$/ })
    .default("https://events.pagerduty.com/v2/enqueue")
    .describe("where PagerDuty events are POSTed"),
  ALERT_SINK_MAX_ATTEMPTS: envInteger(1, 100)
    .default(8)
    .describe("tries per alert and sink (webhook, PagerDuty, MQTT) before it is dropped and counted as failed"),
  ALERT_SINK_RETRY_MS: envInteger(1, 600_000)
    .default(1000)
    .describe("the first retry's delay; each next one doubles, up to 5 minutes"),
  IDEMPOTENCY_RETENTION_DAYS: envInteger(7, 3650, "at least 7 days (an integer up to 3650)")
    .default(7)
    .describe("how long the first answer for an idempotency key is kept, days"),
  GAP_WAIT_MS: envInteger(50, 600_000)
    .default(2000)
    .describe("how long a gap in a device's seqs may stay open before it is asked to replay"),
  CLOUD_HEARTBEAT_SECONDS: envInteger(1, 3600)
    .default(3)
    .describe("the cloud republishes its retained online status this often; kiosks that miss it take it as hung"),
  TELEMETRY_RETENTION_DAYS: envInteger(1, 3650)
    .default(30)
    .describe("how long the telemetry history is kept, days (older rows are deleted hourly)"),
  LOG_LEVEL: LogLevelSchema,
});
export type CloudConfig = z.infer<typeof CloudEnvSchema>;

/** Throws a ConfigError naming every bad variable. */
export function parseCloudEnv(env: Record<string, string | undefined>): CloudConfig {
  const config = parseEnv(CloudEnvSchema, env);
  // An unsigned webhook could be forged by anyone who learns its URL.
  if (config.ALERT_WEBHOOK_URL && !config.ALERT_WEBHOOK_SECRET) {
    throw new ConfigError("ALERT_WEBHOOK_SECRET: required when ALERT_WEBHOOK_URL is set (at least 16 characters)");
  }
  if (config.DATABASE_READ_URL && !config.DATABASE_URL) {
    throw new ConfigError("DATABASE_READ_URL: a replica needs its primary in DATABASE_URL (set both, or neither)");
  }
  if (Boolean(config.CLOUD_TLS_CERT) !== Boolean(config.CLOUD_TLS_KEY)) {
    const [set, missing] = config.CLOUD_TLS_CERT
      ? ["CLOUD_TLS_CERT", "CLOUD_TLS_KEY"]
      : ["CLOUD_TLS_KEY", "CLOUD_TLS_CERT"];
    throw new ConfigError(`${missing}: required when ${set} is set (PEM files: certificate chain, key)`);
  }
  return config;
}
