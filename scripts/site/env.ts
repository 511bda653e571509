/**
 * `npm start`'s environment, read through one zod object (protocol's
 * `parseEnv`): a bad value stops the site before anything is written or
 * spawned, with the variable named and the form it takes.
 */
import { ID_PATTERN, RESERVED_SITES } from "@paylane/protocol";
import { type Env, envInteger, parseEnv, timeZone } from "@paylane/protocol/service";
import { z } from "zod";

// The site's ports are printed and handed to the kiosks, so 0 ("any free port") is not one.
const port = (fallback: number) => envInteger(1, 65_535, "a port number 1-65535").default(fallback);

export const SiteEnvSchema = z.object({
  SITE_ID: z
    .string()
    .regex(ID_PATTERN, {
      error: (issue) =>
        `'${issue.input}' is not a site id: expected lower-case letters, digits, "-" or "_", starting with a letter or digit, at most 63 (e.g. demo, venue-12)`,
    })
    .refine((id) => !RESERVED_SITES.has(id), {
      error: (issue) => `'${issue.input}' is reserved (the cloud's own topic)`,
    })
    .default("demo")
    .describe("the site's id"),
  SITE_TIMEZONE: timeZone().optional().describe("the site's time zone, an IANA name (unset: UTC)"),
  MQTT_PORT: port(1883).describe("embedded gateway's MQTT port"),
  GATEWAY_HTTP_PORT: port(8070).describe("gateway's /healthz and /metrics"),
  CLOUD_PORT: port(8080).describe("cloud API"),
  KIOSK_PORT_BASE: port(8081).describe("kiosk k1 on this port, k2 on the next"),
  MQTT_URL: z.string().optional().describe("use this broker instead of the embedded gateway"),
  DATABASE_URL: z.string().optional().describe("use this Postgres instead of PGlite"),
  REDIS_URL: z.string().optional().describe("use this Redis for presence"),
  PAYLANE_DATA: z.string().optional().describe("where the site keeps its state (unset: .paylane)"),
});

export type SiteEnv = z.output<typeof SiteEnvSchema>;

export const parseSiteEnv = (env: Env): SiteEnv => parseEnv(SiteEnvSchema, env);
